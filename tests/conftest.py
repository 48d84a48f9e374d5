from __future__ import annotations

import os
from pathlib import Path

import pytest

from botkit.home import BotDefinition, BotHome
from botkit.testing import faq_file, write_bot

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

_ENV_PREFIXES = ("BOTKIT_", "OPENAI_", "TELEGRAM_", "SLACK_")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A developer's environment (or .env file) never leaks into a test."""
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


SHOP_FAQ = {
    "hours.md": faq_file(
        "When are you open?",
        "We are open Monday to Friday, 9:00 to 17:00.",
        questions=["What are your opening hours?"],
        tags=["hours"],
    ),
    "refund.md": faq_file(
        "Can I get a refund?",
        "Refunds are possible within 30 days of purchase.",
        questions=["I want my money back"],
        tags=["billing"],
    ),
    "shipping.md": faq_file(
        "How long does shipping take?",
        "Parcels arrive in 2 to 4 working days.",
        questions=["When will my order arrive?"],
        tags=["delivery"],
    ),
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    write_bot(tmp_path, "shop", faq=SHOP_FAQ)
    return tmp_path


@pytest.fixture
def shop(home: Path) -> BotDefinition:
    return BotHome(home).load_checked("shop")
