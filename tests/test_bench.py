"""The benchmark runs (`python -m bench --quick`), so it cannot rot. It asserts that every
case produced figures, never how fast they are: speed lives in the benchmark's own tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CASES = {"client", "pipeline", "burst", "web", "retrieval", "store", "startup"}


def test_every_case_runs_in_quick_mode(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(output.read_text())
    assert set(results["cases"]) == CASES
    for name, case in results["cases"].items():
        assert case["setup"], name
        if name != "retrieval" or not any("skipped" in n for n in case["notes"]):
            assert case["rows"], f"{name} produced no figures"
        for row in case["rows"]:
            assert len(row) == len(case["columns"]), name
    assert "== Completion client" in result.stdout and "× openai-aiohttp" in result.stdout
