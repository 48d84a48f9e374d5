"""The benchmark runs (`python -m bench --quick CASE`), so it cannot rot. It asserts that
each case produced figures, never how fast they are: speed lives in the benchmark's own
tables. One test per case, so the suite can run them side by side."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import CASES

REPO = Path(__file__).resolve().parent.parent


def test_every_case_is_tested() -> None:
    assert set(CASES) == {
        "client",
        "pipeline",
        "burst",
        "web",
        "workers",
        "retrieval",
        "store",
        "startup",
    }


@pytest.mark.parametrize("name", CASES)
def test_the_case_runs_in_quick_mode(tmp_path: Path, name: str) -> None:
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", name, "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    case = json.loads(output.read_text())["cases"][name]
    assert case["setup"], name
    if name != "retrieval" or not any("skipped" in n for n in case["notes"]):
        assert case["rows"], f"{name} produced no figures"
    for row in case["rows"]:
        assert len(row) == len(case["columns"]), name
    if name == "client":
        assert "== Completion client" in result.stdout and "× openai-aiohttp" in result.stdout
