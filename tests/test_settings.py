from __future__ import annotations

from pathlib import Path

import pytest

from botkit.errors import ConfigError
from botkit.settings import BotSettings, Settings, load_bot_settings


def test_environment_fills_nested_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTKIT_HOME", "/srv/bots")
    monkeypatch.setenv("BOTKIT_STORE_URL", "memory://")
    monkeypatch.setenv("BOTKIT_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("BOTKIT_LLM_API_KEY", "sk-secret")
    monkeypatch.setenv("BOTKIT_LLM_MODEL", "my-new-model")
    settings = Settings()
    assert settings.home == Path("/srv/bots")
    assert settings.store.url == "memory://"
    assert settings.llm.base_url == "http://127.0.0.1:9/v1"
    assert settings.llm.model == "my-new-model"
    assert settings.llm_api_key is not None
    assert settings.llm_api_key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(settings) and "sk-secret" not in str(settings)


def test_openai_api_key_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    settings = Settings()
    assert settings.llm_api_key is not None
    assert settings.llm_api_key.get_secret_value() == "sk-openai"
    assert settings.llm_configured
    monkeypatch.setenv("BOTKIT_LLM_API_KEY", "sk-botkit")
    assert Settings().llm_api_key.get_secret_value() == "sk-botkit"  # type: ignore[union-attr]


def test_no_key_and_no_url_means_offline() -> None:
    settings = Settings()
    assert not settings.llm_configured
    assert settings.store.url == "sqlite:///.botkit/botkit.db"


def test_dotenv_file_in_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BOTKIT_LLM_BASE_URL=http://localhost:8000/v1\n")
    assert Settings().llm.base_url == "http://localhost:8000/v1"
    assert Settings().llm_configured


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
    settings = Settings()
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
