"""Benchmark data: real customer questions from ../shared/data when present, else synthetic."""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BANKING77 = SHARED / "banking77"
BITEXT = SHARED / "bitext" / "Bitext_Sample_Customer_Support_Training_Dataset.csv"

_WORDS = [
    "card",
    "account",
    "payment",
    "refund",
    "transfer",
    "balance",
    "fee",
    "limit",
    "app",
    "password",
    "login",
    "delivery",
    "order",
    "invoice",
    "plan",
    "upgrade",
    "cancel",
    "export",
    "sync",
    "device",
    "email",
    "phone",
    "verify",
    "identity",
    "statement",
    "currency",
    "exchange",
    "top",
    "up",
    "pending",
    "declined",
]


def banking77() -> tuple[dict[str, list[str]], list[tuple[str, str]]] | None:
    """(training questions per intent, [(test question, intent)]), or None when absent."""
    if not BANKING77.is_dir():
        return None
    train: dict[str, list[str]] = defaultdict(list)
    with (BANKING77 / "train.csv").open() as f:
        for row in csv.DictReader(f):
            train[row["category"]].append(row["text"])
    with (BANKING77 / "test.csv").open() as f:
        test = [(row["text"], row["category"]) for row in csv.DictReader(f)]
    return dict(train), test


def bitext() -> tuple[dict[str, list[str]], list[tuple[str, str]]] | None:
    """The Bitext set split alike: 10 questions per intent to build from, the rest to query."""
    if not BITEXT.is_file():
        return None
    train: dict[str, list[str]] = defaultdict(list)
    test = []
    with BITEXT.open() as f:
        for row in csv.DictReader(f):
            if len(train[row["intent"]]) < 10:
                train[row["intent"]].append(row["instruction"])
            else:
                test.append((row["instruction"], row["intent"]))
    return dict(train), test


def workload() -> str:
    """Which questions `questions()` hands out, for the cases to say so."""
    if BANKING77.is_dir():
        return "questions from BANKING77 (../shared/data)"
    return "made-up questions from a 31-word vocabulary: ../shared/data is absent"


def questions(count: int, seed: int = 7) -> list[str]:
    """`count` customer questions: BANKING77's when present, else made up."""
    data = banking77()
    if data is not None:
        pool = [q for qs in data[0].values() for q in qs] + [q for q, _ in data[1]]
    else:
        rng = random.Random(seed)
        pool = [" ".join(rng.choices(_WORDS, k=8)) + "?" for _ in range(20_000)]
    return [pool[i % len(pool)] + ("" if i < len(pool) else f" ({i})") for i in range(count)]


def write_faq(folder: Path, count: int) -> None:
    """`count` FAQ snippets, one per question, under `folder/faq/`."""
    faq = folder / "faq"
    faq.mkdir(parents=True, exist_ok=True)
    for i, question in enumerate(questions(count)):
        text = question.replace('"', "'")
        (faq / f"q{i:05}.md").write_text(
            f'---\nquestion: "{text}"\ntags: [bench]\n---\n'
            f"Answer {i}: open the app, go to Settings and follow the steps for this case.\n"
        )
