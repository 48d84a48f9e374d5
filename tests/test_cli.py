from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from botkit.cli import main
from botkit.testing import faq_file, write_bot

BOTKIT = [str(Path(sys.executable).parent / "botkit")]


def chat(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], lines: str, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    code = main(["chat", *args])
    out, err = capsys.readouterr()
    return code, out, err


def turns(home: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(home / ".botkit" / "botkit.db") as db:
        return list(db.execute("SELECT conversation, content FROM turns ORDER BY id"))


def test_list_shows_each_bot_with_its_description(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_bot(home, "billing", settings='description = "Answers billing questions"\n')
    assert main(["list", "--home", str(home)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "billing  Answers billing questions",
        "shop     A test bot",
    ]


def test_home_comes_from_the_environment(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir("/")
    monkeypatch.setenv("BOTKIT_HOME", str(home))
    assert main(["list"]) == 0
    assert capsys.readouterr().out.startswith("shop")


def test_piped_chat_prints_one_reply_and_a_blank_line_per_line(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = chat(monkeypatch, capsys, "When are you open?\nCan I get a refund?\n", "shop")
    assert code == 0
    assert out == (
        "We are open Monday to Friday, 9:00 to 17:00.\n\n"
        "Refunds are possible within 30 days of purchase.\n\n"
    )


def test_history_survives_a_restart_and_reset_clears_it(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    chat(monkeypatch, capsys, "When are you open?\n", "shop", "--user", "ann")
    chat(monkeypatch, capsys, "Can I get a refund?\n", "shop", "--user", "ann")
    assert [c for _, c in turns(home)][::2] == ["When are you open?", "Can I get a refund?"]
    code, out, _ = chat(monkeypatch, capsys, "/reset\n", "shop", "--user", "ann")
    assert code == 0 and "forgotten" in out and out.endswith("\n\n")
    assert turns(home) == []


def test_new_starts_fresh_and_users_are_separate(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    chat(monkeypatch, capsys, "When are you open?\n", "shop", "--user", "ann")
    chat(monkeypatch, capsys, "When are you open?\n", "shop", "--user", "bob")
    chat(monkeypatch, capsys, "Can I get a refund?\n", "shop", "--user", "ann", "--new")
    by_user = sorted({(key, c) for key, c in turns(home) if not c.startswith(("We", "Ref"))})
    assert by_user == [
        ("shop/console/ann", "Can I get a refund?"),
        ("shop/console/bob", "When are you open?"),
    ]


def test_new_scaffolds_a_bot_that_checks_and_answers_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new", "acme"]) == 0
    assert "Try it: botkit chat acme" in capsys.readouterr().out
    assert main(["check", "acme"]) == 0
    assert capsys.readouterr().out == "acme: ok\n"
    code, out, _ = chat(monkeypatch, capsys, "what are your opening hours?\n", "acme")
    assert code == 0 and "Monday to Friday" in out
    assert main(["new", "acme"]) == 1
    assert "already exists" in capsys.readouterr().err


def test_a_brand_new_prompt_folder_answers_from_its_own_faq(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_bot(
        tmp_path,
        "garden",
        faq={
            "water.md": faq_file(
                "How often should I water tomatoes?", "Water tomatoes deeply twice a week."
            ),
            "frost.md": faq_file("When is the last frost?", "Usually mid-May in our region."),
        },
    )
    code, out, _ = chat(monkeypatch, capsys, "how often do tomatoes need water\n", "garden")
    assert (code, out) == (0, "Water tomatoes deeply twice a week.\n\n")


BAD_BOTS = {
    "missing system": (
        {"system": None},
        "prompts/bad/system.md.j2: missing: every bot needs a system prompt",
    ),
    "syntax error": ({"system": "Hi\n{% for x in %}\n"}, "prompts/bad/system.md.j2:2: "),
    "undefined variable": ({"system": "Hi\n{{ user.nickname }}\n"}, "prompts/bad/system.md.j2:2: "),
    "faq without question": (
        {"faq": {"q.md": "---\ntags: [a]\n---\nAn answer.\n"}},
        "prompts/bad/faq/q.md:2: front matter has no 'question'",
    ),
    "unknown settings key": (
        {"settings": 'model = "x"\ntopk = 3\n'},
        "bots/bad.toml:2: unknown key 'topk'",
    ),
}


@pytest.mark.parametrize("case", BAD_BOTS)
@pytest.mark.parametrize("command", ["check", "chat"])
def test_bad_input_gets_one_clear_message_and_exit_1(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
    command: str,
) -> None:
    files, expected = BAD_BOTS[case]
    folder = write_bot(tmp_path, "bad", **{k: v for k, v in files.items() if v is not None})
    if files.get("system", "") is None:
        (folder / "system.md.j2").unlink()
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n"))
    assert main([command, "bad", "--home", "."]) == 1
    out, err = capsys.readouterr()
    output = out + err
    assert expected in output
    assert "Traceback" not in output
    assert len([line for line in output.splitlines() if "bad" in line]) == 1


@pytest.mark.parametrize("command", ["check", "chat"])
def test_an_unknown_bot_is_exit_1(
    home: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "nope"]) == 1
    out, err = capsys.readouterr()
    assert "unknown bot 'nope'" in out + err


def test_check_without_name_checks_every_bot(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_bot(home, "broken", system="{{ oops }")
    assert main(["check"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("prompts/broken/system.md.j2:1: ")
    assert out[1] == "shop: ok"


def test_a_corrupt_store_is_a_clear_error(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / ".botkit").mkdir()
    (home / ".botkit" / "botkit.db").write_bytes(b"garbage" * 1000)
    code, out, err = chat(monkeypatch, capsys, "hi\n", "shop")
    assert code == 1
    assert "botkit.db: the file is not an SQLite database" in err
    assert "Traceback" not in err


def test_the_console_script_works_end_to_end(home: Path) -> None:
    assert subprocess.run([*BOTKIT, "--help"], capture_output=True, check=True).stdout
    result = subprocess.run(
        [*BOTKIT, "chat", "shop"],
        input="How long does shipping take?\n/help\n",
        capture_output=True,
        text=True,
        cwd=home,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    first, rest = result.stdout.split("\n\n", 1)
    assert first == "Parcels arrive in 2 to 4 working days."
    assert "/reset" in rest and rest.endswith("\n\n")


def test_check_finds_a_name_in_a_branch_no_sample_reaches_with_the_path_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_bot(tmp_path, "shop", system='Hi.\n{% if user.id == "bob" %}{{ typo_here }}{% endif %}\n')
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert out == "prompts/shop/system.md.j2:2: 'typo_here' is undefined\n"
    assert main(["check", "--home", str(tmp_path)]) == 1
    assert capsys.readouterr().out == out
