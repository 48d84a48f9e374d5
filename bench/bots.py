"""A bot home for benchmarks: the demo bot's templates with a FAQ of any size."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.data import write_faq

REPO = Path(__file__).resolve().parents[1]


def make_home(root: Path, snippets: int, *, settings: str = "") -> Path:
    """`root` holds prompts/bench/ (demo templates, `snippets` FAQ files) and bots/bench.toml."""
    folder = root / "prompts" / "bench"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(REPO / "prompts" / "nimbus", folder, ignore=shutil.ignore_patterns("faq"))
    write_faq(folder, snippets)
    (root / "bots").mkdir(exist_ok=True)
    demo = (REPO / "bots" / "nimbus.toml").read_text()
    (root / "bots" / "bench.toml").write_text(settings + "\n" + demo)
    return root
