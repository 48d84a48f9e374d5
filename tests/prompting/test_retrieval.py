from __future__ import annotations

import random

import pytest

from botkit.prompting import retrieval
from botkit.prompting.faq import FaqSnippet
from botkit.prompting.retrieval import FaqIndex, Tokenizer

SNIPPETS = [
    FaqSnippet(
        "How do I reset my password?",
        "Use the Forgot password link.",
        "a.md",
        ("I forgot my password", "can't log in"),
        ("account",),
    ),
    FaqSnippet(
        "Can I get a refund?",
        "Refunds within 30 days.",
        "b.md",
        ("I want my money back",),
        ("billing",),
    ),
    FaqSnippet(
        "When will my card arrive?",
        "Cards arrive within a week.",
        "c.md",
        ("my card has not arrived",),
        ("cards",),
    ),
    FaqSnippet(
        "Why was my card declined?",
        "Check your balance and limits.",
        "d.md",
        ("card payment declined",),
        ("cards",),
    ),
]


@pytest.fixture(scope="module")
def index() -> FaqIndex:
    return FaqIndex(SNIPPETS)


@pytest.mark.parametrize(
    ("query", "source"),
    [
        ("I forgot my password", "a.md"),
        ("how can I get my money back?", "b.md"),
        ("refunds", "b.md"),  # stemming: refunds ~ refund
        ("my card still hasn't arrived", "c.md"),
        ("card declined at the shop", "d.md"),
    ],
)
def test_the_best_snippet_comes_first(index: FaqIndex, query: str, source: str) -> None:
    assert index.search(query, top_k=2)[0].snippet.source == source


def test_confidence_is_between_zero_and_one_and_ordered(index: FaqIndex) -> None:
    matches = index.search("my card has not arrived", top_k=4)
    confidences = [m.confidence for m in matches]
    assert confidences == sorted(confidences, reverse=True)
    assert all(0 < c < 1 for c in confidences)
    assert confidences[0] > 0.5


def test_unrelated_questions_score_low_or_not_at_all(index: FaqIndex) -> None:
    assert index.search("hello there", top_k=3) == []
    matches = index.search("what is the weather in Paris on my card", top_k=3)
    assert matches and matches[0].confidence < 0.2


def test_min_confidence_and_top_k_limit_the_matches(index: FaqIndex) -> None:
    assert len(index.search("card", top_k=1)) == 1
    everything = index.search("card password refund", top_k=4)
    strict = index.search("card password refund", top_k=4, min_confidence=0.5)
    assert len(strict) < len(everything)
    assert index.search("password", top_k=0) == []


def test_an_empty_faq_finds_nothing() -> None:
    assert FaqIndex([]).search("anything", top_k=3) == []


def test_tokenizer_stems_and_drops_stop_words() -> None:
    assert Tokenizer()("The cards are declined, dont know why") == ["card", "declin", "know", "whi"]
    assert Tokenizer("none")("The cards") == ["the", "cards"]


def test_questions_weigh_more_than_answers() -> None:
    asked = FaqSnippet("How do I close my account?", "Write to us.", "close.md")
    mentioned = FaqSnippet(
        "How do I export my notes?", "Export them before you close your account.", "export.md"
    )
    assert [
        m.snippet.source for m in FaqIndex([mentioned, asked]).search("close account", top_k=2)
    ] == [
        "close.md",
        "export.md",
    ]


def test_a_large_faq_skips_common_words_yet_finds_what_scanning_all_finds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Over _SCAN_ALL_UP_TO snippets a query skips the lists of words too common to change
    # its best matches (MaxScore); the matches must be the ones a full scan finds.
    rng = random.Random(3)
    words = [f"w{i}" for i in range(400)]
    snippets = [
        FaqSnippet(
            " ".join(rng.choices(words[:20], k=3) + rng.choices(words, k=4)),
            "common words in every answer",
            f"{i}.md",
        )
        for i in range(retrieval._SCAN_ALL_UP_TO + 5_000)
    ]
    index = FaqIndex(snippets)
    queries = [" ".join(rng.choices(words[:20], k=3) + rng.choices(words, k=3)) for _ in range(60)]
    queries += ["common words answer w1", "w399 w398 w1 w2 w3 w4"]
    skipping = [index.search(q, top_k=3, min_confidence=0.1) for q in queries]
    monkeypatch.setattr(retrieval, "_SCAN_ALL_UP_TO", len(snippets))
    scanning = [index.search(q, top_k=3, min_confidence=0.1) for q in queries]
    for skipped, scanned in zip(skipping, scanning, strict=True):
        assert [round(m.confidence, 5) for m in skipped] == [
            round(m.confidence, 5) for m in scanned
        ]
        assert [m.snippet for m in skipped] == [m.snippet for m in scanned]


def test_the_tokenizer_forgets_stems_it_remembers_too_many_of(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retrieval, "_STEMS_KEPT", 2)
    tokenize = Tokenizer()
    assert tokenize("cards declined") == ["card", "declin"]
    assert tokenize("refunds cards payments") == ["refund", "card", "payment"]
    assert tokenize("cards arrive") == ["card", "arriv"]  # over the bound: starts afresh
