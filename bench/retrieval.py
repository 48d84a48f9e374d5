"""Case 5: does the FAQ selection hand the model the right snippet? Real customer questions.

BANKING77 (77 intents) and Bitext (27 intents): one snippet per intent, built from its
name and its first 10 training questions; every test question is a query. A hit is the
right intent's snippet among the top 1 / top 3 the default retriever selects.
"""

from __future__ import annotations

import time

from bench.data import banking77, bitext
from bench.support import Table, median


def run(quick: bool) -> Table:
    table = Table(
        "FAQ retrieval quality",
        "default retriever (BM25 over stemmed words, no model download); one snippet per "
        "intent from its name + first 10 training questions; all test questions as queries",
        ["dataset", "snippets", "queries", "top-1", "top-3", "µs/query median", "target top-3"],
    )
    for name, data, target in (("BANKING77", banking77(), "≥ 0.90"), ("Bitext", bitext(), "-")):
        if data is None:
            table.notes.append(f"{name}: skipped, ../shared/data is absent")
            continue
        table.add(name, *evaluate(*data, limit=500 if quick else None), target)
    return table


def evaluate(
    train: dict[str, list[str]], test: list[tuple[str, str]], *, limit: int | None = None
) -> tuple[int, int, float, float, float]:
    from botkit.prompting.faq import FaqSnippet
    from botkit.prompting.retrieval import FaqIndex

    snippets = [
        FaqSnippet(
            question=intent.replace("_", " "),
            answer=f"How we help with {intent.replace('_', ' ')}.",
            source=intent,
            questions=tuple(questions[:10]),
        )
        for intent, questions in sorted(train.items())
    ]
    index = FaqIndex(snippets)
    queries = test[:limit] if limit else test
    top1 = top3 = 0
    timings = []
    for question, intent in queries:
        started = time.perf_counter()
        matches = index.search(question, top_k=3)
        timings.append((time.perf_counter() - started) * 1e6)
        sources = [m.snippet.source for m in matches]
        top1 += bool(sources) and sources[0] == intent
        top3 += intent in sources
    n = len(queries)
    return len(snippets), n, top1 / n, top3 / n, median(timings)
