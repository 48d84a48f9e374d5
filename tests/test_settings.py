from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from botkit.errors import ConfigError
from botkit.settings import BotSettings, Settings, load_bot_settings


def test_environment_fills_nested_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTKIT_HOME", "/srv/bots")
    monkeypatch.setenv("BOTKIT_STORE_URL", "memory://")
    monkeypatch.setenv("BOTKIT_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("BOTKIT_LLM_API_KEY", "sk-secret")
    monkeypatch.setenv("BOTKIT_LLM_MODEL", "my-new-model")
    settings = Settings.from_environment()
    assert settings.home == Path("/srv/bots")
    assert settings.store.url == "memory://"
    assert settings.llm.base_url == "http://127.0.0.1:9/v1"
    assert settings.llm.model == "my-new-model"
    assert settings.llm_api_key is not None
    assert settings.llm_api_key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(settings) and "sk-secret" not in str(settings)


def test_openai_api_key_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    settings = Settings.from_environment()
    assert settings.llm_api_key is not None
    assert settings.llm_api_key.get_secret_value() == "sk-openai"
    assert settings.llm_configured
    monkeypatch.setenv("BOTKIT_LLM_API_KEY", "sk-botkit")
    assert Settings.from_environment().llm_api_key.get_secret_value() == "sk-botkit"  # type: ignore[union-attr]


def test_no_key_and_no_url_means_offline() -> None:
    settings = Settings.from_environment()
    assert not settings.llm_configured
    assert settings.store.url == "sqlite:///.botkit/botkit.db"


def test_dotenv_file_in_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BOTKIT_LLM_BASE_URL=http://localhost:8000/v1\n")
    assert Settings.from_environment().llm.base_url == "http://localhost:8000/v1"
    assert Settings.from_environment().llm_configured


def test_a_bot_without_settings_file_runs_on_defaults(tmp_path: Path) -> None:
    assert load_bot_settings(tmp_path / "missing.toml") == BotSettings()


def test_bot_settings_are_read(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text(
        'model = "m"\ntemperature = 0.5\nidle_reset = "30m"\nfaq_top_k = 5\n'
        '[vars]\ncompany = "Acme"\n'
    )
    settings = load_bot_settings(path)
    assert (settings.model, settings.temperature, settings.faq_top_k) == ("m", 0.5, 5)
    assert settings.idle_reset == 1800
    assert settings.vars == {"company": "Acme"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('model = "m"\n\ntempreature = 0.3\n', "b.toml:3: unknown key 'tempreature'"),
        ("[vars]\nx = 1\n[nope]\ny = 2\n", "b.toml:3: unknown key 'nope'"),
        ("temperature = 7\n", "b.toml:1: temperature: Input should be less than or equal to 2"),
        ('idle_reset = "soon"\n', "b.toml:1: idle_reset: Value error, expected a duration"),
        ('faq_language = "klingon"\n', "b.toml:1: faq_language: Value error, must be 'none' or"),
        ('model = "m"\nmax_tokens = \n', "b.toml:2: invalid TOML: "),
    ],
)
def test_bad_bot_settings_name_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "b.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_bot_settings(path)
    assert str(caught.value.problems[0]).startswith(f"{tmp_path}/{expected}")


def test_channel_settings_come_from_platform_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:tg")
    monkeypatch.setenv("BOTKIT_TELEGRAM_BASE_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("BOTKIT_TELEGRAM_BOT_TOKENS", '{"shop": "456:shop"}')
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cr3t-sig")
    monkeypatch.setenv("BOTKIT_SLACK_API_URL", "http://127.0.0.1:9001/api/")
    monkeypatch.setenv("BOTKIT_WEB_API_KEYS", "k1, k2,,")
    settings = Settings.from_environment()
    assert settings.telegram.bot_token.get_secret_value() == "123:tg"  # type: ignore[union-attr]
    assert settings.telegram.bot_tokens["shop"].get_secret_value() == "456:shop"
    assert settings.telegram.base_url == "http://127.0.0.1:9000"
    assert settings.slack.bot_token.get_secret_value() == "xoxb-1"  # type: ignore[union-attr]
    assert settings.slack.signing_secret.get_secret_value() == "s3cr3t-sig"  # type: ignore[union-attr]
    assert settings.slack.app_token is None
    assert settings.slack.api_url == "http://127.0.0.1:9001/api/"
    assert settings.web.keys == ["k1", "k2"]
    for secret in ("123:tg", "456:shop", "xoxb-1", "s3cr3t-sig", "k1"):
        assert secret not in repr(settings)


def test_plain_settings_never_read_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A host application's key must not switch an embedded offline bot to the LLM.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-app")
    monkeypatch.setenv("BOTKIT_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    (tmp_path / ".env").write_text("BOTKIT_STORE_URL=memory://\n")
    settings = Settings(home=tmp_path)
    assert not settings.llm_configured
    assert settings.store.url == "sqlite:///.botkit/botkit.db"
    assert Settings.from_environment().llm_configured


def test_openai_base_url_is_honoured_and_the_botkit_variable_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    settings = Settings.from_environment()
    assert settings.llm_configured and settings.llm_base_url == "http://127.0.0.1:8000/v1"
    monkeypatch.setenv("BOTKIT_LLM_BASE_URL", "http://127.0.0.1:9000/v1")
    assert Settings.from_environment().llm_base_url == "http://127.0.0.1:9000/v1"


def test_dotenv_in_the_bot_home_wins_over_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "bots-home"
    home.mkdir()
    (tmp_path / ".env").write_text(
        f"BOTKIT_HOME={home}\nBOTKIT_LLM_MODEL=from-cwd\nBOTKIT_STORE_URL=memory://\n"
    )
    (home / ".env").write_text("BOTKIT_LLM_MODEL=from-home\nOPENAI_API_KEY=sk-home\n")
    settings = Settings.from_environment()
    assert settings.home == home
    assert settings.llm.model == "from-home"  # the home's file wins
    assert settings.store.url == "memory://"  # the current directory's still counts
    assert settings.llm_api_key is not None
    assert settings.llm_api_key.get_secret_value() == "sk-home"
    # --home names the home directly; the environment beats both files.
    monkeypatch.setenv("BOTKIT_LLM_MODEL", "from-environment")
    assert Settings.from_environment(home=home).llm.model == "from-environment"


UNPARSABLE = [
    ("BOTKIT_LLM_PRICES", "notjson", "BOTKIT_LLM_PRICES: not valid JSON"),
    ("BOTKIT_LLM_HEADERS", "notjson", "BOTKIT_LLM_HEADERS: not valid JSON"),
    ("BOTKIT_TELEGRAM_BOT_TOKENS", "{'shop': 1}", "BOTKIT_TELEGRAM_BOT_TOKENS: not valid JSON"),
    (
        "BOTKIT_LLM_PRICES",
        '{"m": {"input": -1, "output": 1}}',
        "BOTKIT_LLM_PRICES: m.input: Input should be greater than or equal to 0",
    ),
    ("BOTKIT_LLM_MAX_RETRIES", "many", "BOTKIT_LLM_MAX_RETRIES: Input should be a valid integer"),
    ("BOTKIT_LLM", "x", "BOTKIT_LLM: Input should be a valid dictionary"),
    ("BOTKIT_LLM_BASE_URL", "notaurl", "BOTKIT_LLM_BASE_URL: expected an http:// or https:// URL"),
    ("OPENAI_BASE_URL", "llm.internal/v1", "OPENAI_BASE_URL: expected an http:// or https:// URL"),
    ("BOTKIT_TELEGRAM_BASE_URL", "ftp://x", "BOTKIT_TELEGRAM_BASE_URL: expected an http://"),
    ("BOTKIT_SLACK_API_URL", "http://:80/", "BOTKIT_SLACK_API_URL: expected an http://"),
    ("BOTKIT_LLM_BASE_URL", "http://h:port/v1", "BOTKIT_LLM_BASE_URL: expected an http://"),
]


@pytest.mark.parametrize(("variable", "value", "expected"), UNPARSABLE)
def test_a_bad_variable_is_one_problem_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        Settings.from_environment()
    assert len(caught.value.problems) == 1
    assert str(caught.value.problems[0]).startswith(expected)
    assert value not in str(caught.value) or value == "x"  # values may be secrets


def test_every_dict_setting_can_be_given_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    # A dict setting added later without FromJSON would not parse from the environment.
    sections = {name: f.annotation for name, f in Settings.model_fields.items() if name != "home"}
    for section, model in sections.items():
        assert isinstance(model, type) and issubclass(model, BaseModel)
        for name, field in model.model_fields.items():
            if getattr(field.annotation, "__origin__", None) is dict:
                monkeypatch.setenv(f"BOTKIT_{section}_{name}".upper(), "{}")
                assert getattr(getattr(Settings.from_environment(), section), name) == {}
                monkeypatch.setenv(f"BOTKIT_{section}_{name}".upper(), "{")
                with pytest.raises(ConfigError, match="not valid JSON"):
                    Settings.from_environment()
                monkeypatch.delenv(f"BOTKIT_{section}_{name}".upper())


BAD_TOML = [
    (
        "[params]\ntop_p = 0.5\nn = 2\n",
        "b.toml:3: params.n: botkit uses only the first of the n answers",
    ),
    ("[params]\nseed = 1\nmax_tokens = 9\n", "b.toml:3: params.max_tokens: set max_tokens at"),
    (
        '[[fallbacks]]\nbase_url = "http://a/v1"\nmodel = "m"\n'
        '[[fallbacks]]\nmodel = "m"\nbase_url = "notaurl"\n',
        "b.toml:6: fallbacks.1.base_url: Value error, expected an http:// or https:// URL",
    ),
    (
        '[[fallbacks]]\nbase_url = "http://a/v1"\nmodel = "m"\n[[fallbacks]]\nmodel = "m"\n',
        "b.toml:4: fallbacks.1.base_url: Field required",
    ),
    (
        '[[fallbacks]]\nbase_url = "http://a/v1"\nmodel = "m"\napi_key_env = "sk-abc123"\n',
        "b.toml:4: fallbacks.0.api_key_env: Value error, must name an environment variable",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_TOML)
def test_bad_params_and_fallbacks_name_file_and_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "b.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_bot_settings(path)
    assert [str(p) for p in caught.value.problems][0].startswith(f"{tmp_path}/{expected}")
    assert "sk-abc123" not in str(caught.value)


def test_a_fallback_whose_key_variable_is_unset_is_a_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "b.toml"
    path.write_text(
        '[[fallbacks]]\nbase_url = "http://a/v1"\nmodel = "m"\n\n'
        '[[fallbacks]]\nbase_url = "http://b/v1"\nmodel = "m"\napi_key_env = "B_KEY"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_bot_settings(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:8: fallbacks.1.api_key_env: B_KEY is not set in the environment"
        " (requests to http://b/v1 need its key)"
    ]
    monkeypatch.setenv("B_KEY", "sk-b")
    key = load_bot_settings(path).fallbacks[1].api_key
    assert key is not None and key.get_secret_value() == "sk-b"
