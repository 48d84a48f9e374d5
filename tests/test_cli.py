from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from botkit.cli import main
from botkit.testing import faq_file, write_bot
from tests.loopback import free_port

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


def test_verbose_works_before_and_after_the_command(home: Path) -> None:
    def debug_lines(*args: str) -> int:
        result = subprocess.run([*BOTKIT, *args], capture_output=True, text=True, cwd=home)
        assert result.returncode == 0, result.stderr
        return result.stderr.count(" DEBUG ")  # e.g. how many FAQ snippets a bot has

    assert debug_lines("check", "shop") == 0
    assert debug_lines("-vv", "check", "shop") > 0  # the form `botkit --help` shows
    assert debug_lines("-v", "check", "shop", "-v") > 0  # after the command too, counted together


def test_input_that_is_not_utf8_is_answered_line_by_line(home: Path) -> None:
    result = subprocess.run(
        [*BOTKIT, "chat", "shop"],
        input=b"Can I get a refund, caf\xe9?\nHow long does shipping take?\n",
        capture_output=True,
        cwd=home,
        timeout=60,
    )
    assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr
    assert result.stdout.decode() == (
        "Refunds are possible within 30 days of purchase.\n\n"
        "Parcels arrive in 2 to 4 working days.\n\n"
    )
    assert [c for _, c in turns(home)][::2] == [
        "Can I get a refund, caf\ufffd?",
        "How long does shipping take?",
    ]


@pytest.mark.parametrize("errors", ["strict", "surrogateescape"])
def test_a_bad_byte_becomes_a_replacement_character_whatever_the_stream(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    errors: str,
) -> None:
    stdin = io.TextIOWrapper(
        io.BytesIO(b"Can I get a refund, caf\xe9?\n"), encoding="utf-8", errors=errors
    )
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["chat", "shop"]) == 0
    assert capsys.readouterr().out == "Refunds are possible within 30 days of purchase.\n\n"


def test_a_store_that_cannot_be_opened_is_one_clear_line_every_time(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A directory where the file should be fails the same way as a read-only folder
    # (which root, running the tests, could write to anyway).
    (home / "store.db").mkdir()
    monkeypatch.setenv("BOTKIT_STORE_URL", f"sqlite:///{home}/store.db")
    failures: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda hook: failures.append(repr(hook.exc_value)))
    for _ in range(20):
        code, out, err = chat(monkeypatch, capsys, "hi\n", "shop")
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join(5)  # aiosqlite's thread, which used to outlive the event loop
        assert (code, out) == (1, "")
        reason = "unable to open database file"
        assert err == f"botkit: cannot open the SQLite store {home}/store.db: {reason}\n"
    assert failures == []


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("BOTKIT_LLM_PRICES", "notjson", "BOTKIT_LLM_PRICES: not valid JSON"),
        ("BOTKIT_LLM_HEADERS", "notjson", "BOTKIT_LLM_HEADERS: not valid JSON"),
        ("BOTKIT_LLM_BASE_URL", "notaurl", "BOTKIT_LLM_BASE_URL: expected an http:// or https://"),
    ],
)
@pytest.mark.parametrize("command", ["list", "chat"])
def test_a_bad_setting_is_one_line_naming_the_variable(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    expected: str,
    command: str,
) -> None:
    monkeypatch.setenv(variable, value)
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi\n"))
    code = main([command, "shop"] if command == "chat" else [command])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 1 and err.startswith(expected), err


FALLBACK_WITHOUT_KEY = (
    'model = "m"\n\n[[fallbacks]]\nbase_url = "https://openrouter.ai/api/v1"\n'
    'model = "llama"\napi_key_env = "OPENROUTER_API_KEY"\n'
)


def test_check_reports_a_fallback_key_variable_that_is_unset(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_bot(home, "shop", settings=FALLBACK_WITHOUT_KEY)
    assert main(["check", "shop"]) == 1
    assert capsys.readouterr().out == (
        "bots/shop.toml:6: fallbacks.0.api_key_env: OPENROUTER_API_KEY is not set in the"
        " environment (requests to https://openrouter.ai/api/v1 need its key)\n"
    )


def test_serve_refuses_to_start_with_a_fallback_key_unset(home: Path) -> None:
    write_bot(home, "shop", settings=FALLBACK_WITHOUT_KEY)
    result = subprocess.run(
        [*BOTKIT, "serve", "shop", "--port", "0"],
        capture_output=True,
        text=True,
        cwd=home,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("bots/shop.toml:6: fallbacks.0.api_key_env: OPENROUTER_API_KEY")
    assert len(result.stderr.splitlines()) == 1


def test_check_refuses_more_than_one_choice(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_bot(home, "shop", settings="[params]\nseed = 7\nn = 2\n")
    assert main(["check", "shop"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("bots/shop.toml:3: params.n: botkit uses only the first of the n answers")


def test_check_reports_settings_with_no_prompt_folder(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / "bots").mkdir(exist_ok=True)
    (home / "bots" / "shpo.toml").write_text('model = "m"\n')
    (home / "bots" / "orphan.toml").write_text('model = "m"\n')
    assert main(["check"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "bots/orphan.toml: no prompt folder prompts/orphan/, so no bot uses these settings",
        "bots/shpo.toml: no prompt folder prompts/shpo/, so no bot uses these settings"
        " (did you mean bots/shop.toml, for prompts/shop/?)",
        "shop: ok",
    ]


def test_list_marks_broken_bots_and_exits_1(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_bot(home, "billing", settings='description = "Bills"\ntemperature = 9\n')
    write_bot(home, "faulty", system="{{ oops }")
    (home / "bots" / "orphan.toml").write_text("")
    assert main(["list"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "billing  BROKEN (1 problem): see botkit check billing",
        "faulty   BROKEN (1 problem): see botkit check faulty",
        "shop     A test bot",
        "orphan   BROKEN: no prompt folder prompts/orphan/, so no bot uses these settings",
    ]


def test_list_says_where_it_found_no_bots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "--home", "."]) == 0
    out = capsys.readouterr().out
    assert out == f"no bots in {tmp_path.resolve()}; create one with 'botkit new NAME'\n"


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("redis://:hunter2@127.0.0.1:{port}/0", "Redis store at 127.0.0.1:{port}"),
        ("postgresql://botkit:hunter2@127.0.0.1:{port}/db", "PostgreSQL store at 127.0.0.1:{port}"),
    ],
)
def test_an_unreachable_store_at_start_is_one_line_and_exit_1(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    named: str,
) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("BOTKIT_STORE_URL", url.format(port=port))
    assert main(["serve", "shop", "--port", str(free_port())]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and named.format(port=port) in lines[0], err
    assert "hunter2" not in err and "Traceback" not in err
