"""`botkit forget` and `botkit purge` on the default SQLite store, after real chats; and
the records other parts keep, which forgetting deletes by their key's format."""

from __future__ import annotations

import io
import sqlite3
import sys
from pathlib import Path

import pytest

from botkit.cli import main
from botkit.privacy import DESK_RECORDS, WEB_SESSION_RECORD
from botkit.testing import write_bot
from tests.conftest import SHOP_FAQ


def chat_as(monkeypatch: pytest.MonkeyPatch, user: str, lines: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    assert main(["chat", "shop", "--user", user]) == 0


def rows(home: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(home / ".botkit" / "botkit.db") as db:
        return list(db.execute(sql))


def test_forget_deletes_one_user_and_says_what(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    chat_as(monkeypatch, "u-1", "When are you open?\nCan I get a refund?\n")
    chat_as(monkeypatch, "u-10", "How long does shipping take?\n")
    capsys.readouterr()
    assert main(["forget", "--user", "u-1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("deleted what was kept about user 'u-1': 1 conversations")
    assert rows(home, "SELECT DISTINCT conversation FROM turns") == [("shop/console/u-10",)]
    assert rows(home, "SELECT DISTINCT user FROM outcomes") == [("u-10",)]
    assert main(["forget", "--user", "u-1"]) == 0
    assert capsys.readouterr().out == "nothing is kept about user 'u-1': nothing deleted\n"


def test_forget_of_an_unknown_user_says_so(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["forget", "--user", "nobody", "--bot", "shop"]) == 0
    assert "nothing is kept about user 'nobody' of bot shop" in capsys.readouterr().out


def test_purge_honours_each_bots_retention(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_bot(home, "shop", faq=SHOP_FAQ, settings='retention = "90d"\n')
    chat_as(monkeypatch, "ann", "When are you open?\n")
    with sqlite3.connect(home / ".botkit" / "botkit.db") as db:  # ann wrote 100 days ago
        db.execute("UPDATE outcomes SET at = at - 100 * 86400")
    chat_as(monkeypatch, "bob", "Can I get a refund?\n")
    write_bot(home, "help", faq=SHOP_FAQ)
    capsys.readouterr()
    assert main(["purge"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "help: no retention set in bots/help.toml; its conversations are kept",
        "shop: deleted 1 conversation past its retention",
    ]
    assert rows(home, "SELECT DISTINCT conversation FROM turns") == [("shop/console/bob",)]


def test_the_record_formats_are_those_their_modules_write() -> None:
    from botkit.adapters.web import sessions
    from botkit.desks import slack

    assert WEB_SESSION_RECORD.format(id="abc") == sessions._record_key("abc")
    assert (slack._record("{id}"),) == DESK_RECORDS
