"""Choosing the FAQ snippets relevant to a question: BM25 (bm25s) over stemmed words.

Each snippet is indexed as one document made of its questions, tags and answer;
tokens are its lower-cased, Snowball-stemmed words without stop words.

BM25 scores depend on the query, so a match also gets a confidence in [0, 1):
its score divided by the highest score any snippet could reach for this query
(the sum of the query words' IDFs; a word the FAQ never uses counts as much as
its rarest word). A snippet that uses every query word once, at average length, scores
about 0.4. "Matches well enough" thresholds use the confidence.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import bm25s
import numpy as np
import Stemmer
from bm25s import stopwords

from botkit.prompting.faq import FaqSnippet

# bm25s sets its own logger to DEBUG on import; leave its level to the application.
logging.getLogger("bm25s").setLevel(logging.NOTSET)

_WORD = re.compile(r"\w\w+")
# Contractions typed without the apostrophe ("dont") are as empty as the rest.
_ENGLISH_CONTRACTIONS = ("dont", "doesnt", "didnt", "cant", "wont", "isnt", "im", "ive")
_STOPWORDS: dict[str, tuple[str, ...]] = {
    "english": stopwords.STOPWORDS_EN + _ENGLISH_CONTRACTIONS,
    "german": stopwords.STOPWORDS_GERMAN,
    "french": stopwords.STOPWORDS_FRENCH,
    "spanish": stopwords.STOPWORDS_SPANISH,
    "italian": stopwords.STOPWORDS_ITALIAN,
    "portuguese": stopwords.STOPWORDS_PORTUGUESE,
    "dutch": stopwords.STOPWORDS_DUTCH,
    "swedish": stopwords.STOPWORDS_SWEDISH,
    "norwegian": stopwords.STOPWORDS_NORWEGIAN,
    "danish": stopwords.STOPWORDS_DANISH,
    "turkish": stopwords.STOPWORDS_TURKISH,
    "russian": stopwords.STOPWORDS_RUSSIAN,
}


@dataclass(frozen=True, slots=True)
class FaqMatch:
    """A snippet chosen for a question, with how sure the choice is (0–1)."""

    snippet: FaqSnippet
    confidence: float


class Tokenizer:
    """Lower-cased words, stop words dropped, Snowball-stemmed."""

    def __init__(self, language: str = "english") -> None:
        self._stopwords = frozenset(_STOPWORDS.get(language, ()))
        self._stemmer = None if language == "none" else Stemmer.Stemmer(language)

    def __call__(self, text: str) -> list[str]:
        words = [w for w in _WORD.findall(text.lower()) if w not in self._stopwords]
        return words if self._stemmer is None else list(self._stemmer.stemWords(words))


class FaqIndex:
    """A BM25 index over a bot's FAQ snippets, built once at start-up."""

    def __init__(self, snippets: Sequence[FaqSnippet], *, language: str = "english") -> None:
        self.snippets = list(snippets)
        self._tokenize = Tokenizer(language)
        self._bm25 = bm25s.BM25()
        self._vocab: dict[str, int] = {}
        if not self.snippets:
            return
        documents = [self._tokenize(_document(s)) for s in self.snippets]
        if not any(documents):  # not one word in any snippet ("OK", "?"): nothing can match
            return
        self._bm25.index(documents, show_progress=False)
        self._vocab = self._bm25.vocab_dict
        # Under bm25s's default (Lucene) variant a word can add at most its IDF to a
        # score, however often a snippet repeats it: the confidence's yardstick.
        n = len(self.snippets)
        doc_freq = np.diff(self._bm25.scores["indptr"])
        self._idf = np.log1p((n - doc_freq + 0.5) / (doc_freq + 0.5))
        self._unknown_idf = float(self._idf.max())

    def search(self, query: str, *, top_k: int, min_confidence: float = 0.0) -> list[FaqMatch]:
        """The best `top_k` snippets whose confidence reaches `min_confidence`, best first."""
        if top_k <= 0 or not self.snippets:
            return []
        words = self._tokenize(query)
        ids = [self._vocab[w] for w in words if w in self._vocab]
        if not ids:
            return []
        scores = self._bm25.get_scores(ids)
        unknown = len(words) - len(ids)
        ceiling = float(self._idf[ids].sum()) + self._unknown_idf * unknown
        if top_k < len(scores):
            top = np.argpartition(-scores, top_k)[:top_k]
            top = top[np.argsort(-scores[top])]
        else:
            top = np.argsort(-scores)
        matches = []
        for i in top:
            confidence = float(scores[i]) / ceiling
            if confidence <= 0 or confidence < min_confidence:
                break
            matches.append(FaqMatch(self.snippets[i], confidence))
        return matches


def _document(snippet: FaqSnippet) -> str:
    return "\n".join((snippet.question, *snippet.questions, *snippet.tags, snippet.answer))
