"""Case 5: does the FAQ selection hand the model the right snippet, and how fast?

Quality, on real customer questions: BANKING77 (77 intents) and Bitext (27 intents), one
snippet per intent, built from its name and its first 10 training questions; every test
question is a query. A hit is the right intent's snippet among the top 1 / top 3. Both
retrievers: the default (BM25) and the hybrid one (BM25 + a local sentence-embedding
model, the `embeddings` extra).

Scale: FAQs of 10,000 and 100,000 snippets (one question each, with the answer text the
pipeline case uses), built in memory and from files; query time for 2,000 questions.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import banking77, bitext, questions, workload, write_faq
from bench.support import Table, median


def run(quick: bool) -> Table:
    from botkit.prompting.embeddings import EmbeddingsUnavailable, load_encoder, model_folder

    table = Table(
        "FAQ retrieval",
        "quality: one snippet per intent from its name + first 10 training questions, every "
        "test question a query; speed: CPU time of one search, median",
        [
            "dataset / FAQ",
            "retriever",
            "snippets",
            "queries",
            "top-1",
            "top-3",
            "load s",
            "µs/query",
            "target",
        ],
    )
    try:
        encoder = load_encoder(model_folder(None))
    except EmbeddingsUnavailable as err:
        encoder = None
        table.notes.append(f"hybrid: cannot run ({err})")
    datasets = (("BANKING77", banking77(), "top-3 ≥ 0.90 / ≥ 0.95"), ("Bitext", bitext(), "-"))
    for name, data, target in datasets:
        if data is None:
            table.notes.append(f"{name}: cannot run, ../shared/data is absent")
            continue
        table.add(name, "bm25", *evaluate(*data, limit=500 if quick else None), target)
        # Quick runs keep the hybrid path working on the smaller FAQ only.
        if encoder is not None and not (quick and name == "BANKING77"):
            figures = evaluate(*data, encoder=encoder, limit=50 if quick else None)
            table.add(name, "hybrid", *figures, target)
    sizes = (2_000,) if quick else (10_000, 100_000)
    table.notes.append(f"scale rows: {workload()}")
    for size in sizes:
        table.add(*scale(size, 200 if quick else 2_000), "≤ 300 µs, load < 3 s")
        table.add(*scale(size, 200 if quick else 2_000, peer=True), "-")
    table.notes.append(
        "bm25s: botkit's index before this one (the bm25s library, dense scores for every "
        "snippet), on the same words, as a peer measured in this run"
    )
    return table


def evaluate(
    train: dict[str, list[str]],
    test: list[tuple[str, str]],
    *,
    encoder: object = None,
    limit: int | None = None,
) -> tuple[int, int, float, float, float, float]:
    from botkit.prompting.embeddings import SentenceEncoder
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
    assert encoder is None or isinstance(encoder, SentenceEncoder)
    started = time.process_time()
    index = FaqIndex(snippets, encoder=encoder)
    loaded = time.process_time() - started
    queries = test[:limit] if limit else test
    top1 = top3 = 0
    timings = []
    for question, intent in queries:
        started = time.process_time()
        matches = index.search(question, top_k=3)
        timings.append((time.process_time() - started) * 1e6)
        sources = [m.snippet.source for m in matches]
        top1 += bool(sources) and sources[0] == intent
        top3 += intent in sources
    n = len(queries)
    return len(snippets), n, top1 / n, top3 / n, loaded, median(timings)


def scale(size: int, queries: int, *, peer: bool = False) -> tuple[object, ...]:
    """A FAQ of `size` one-question snippets: loaded from files as a bot's is, then asked."""
    from botkit.prompting.faq import load_faq
    from botkit.prompting.retrieval import FaqIndex

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_faq(folder, size)
        started = time.process_time()
        snippets, problems = load_faq(folder)
        read = time.process_time() - started
    assert not problems and len(snippets) == size
    started = time.process_time()
    search = Bm25sPeer(snippets).search if peer else FaqIndex(snippets).search
    built = time.process_time() - started
    timings = []
    for question in questions(size + queries)[size:]:
        started = time.process_time()
        search(question, top_k=3)
        timings.append((time.process_time() - started) * 1e6)
    return (
        f"{size:,} snippets" + ("" if peer else f" (files read in {read:.1f} s)"),
        "bm25s" if peer else "bm25",
        size,
        queries,
        "-",
        "-",
        built,
        median(timings),
    )


class Bm25sPeer:
    """botkit's index before this one: bm25s, dense scores for every snippet, on the same
    words and with the same confidences and matches handed back."""

    def __init__(self, snippets: list[Any]) -> None:
        import bm25s

        from botkit.prompting.retrieval import Tokenizer

        self.snippets = snippets
        self._tokenize = Tokenizer()
        self._bm25 = bm25s.BM25()
        texts = ["\n".join((s.question, *s.questions, *s.tags, s.answer)) for s in snippets]
        self._bm25.index([self._tokenize(t) for t in texts], show_progress=False)
        self._vocab = self._bm25.vocab_dict
        doc_freq = np.diff(self._bm25.scores["indptr"])
        n = len(snippets)
        self._idf = np.log1p((n - doc_freq + 0.5) / (doc_freq + 0.5))
        self._unknown_idf = float(self._idf.max())

    def search(self, query: str, *, top_k: int) -> list[Any]:
        from botkit.prompting.retrieval import FaqMatch

        words = self._tokenize(query)
        ids = [self._vocab[w] for w in words if w in self._vocab]
        if not ids:
            return []
        scores = self._bm25.get_scores(ids)
        ceiling = float(self._idf[ids].sum()) + self._unknown_idf * (len(words) - len(ids))
        top = np.argpartition(-scores, top_k)[:top_k]
        top = top[np.argsort(-scores[top])]
        return [FaqMatch(self.snippets[i], float(scores[i]) / ceiling) for i in top if scores[i]]
