"""Choosing the FAQ snippets relevant to a question: BM25 over stemmed words, sparse.

Each snippet is one document made of its fields, weighted: its question counts twice,
its other questions and tags once, its answer half (an answer is long and says more than
what it answers, so it should tip a choice, not make it). Tokens are lower-cased,
Snowball-stemmed words without stop words.

The index is an inverted one: for every word, the snippets that use it and what it adds
to their score. A query adds up the lists of its own words, so it costs what those lists
hold, not the size of the FAQ; in a large FAQ (MaxScore) it only looks up, for the
snippets still in the running, the words too common to change its best matches.

BM25 scores depend on the query, so a match also gets a confidence in [0, 1): its score
divided by the highest score any snippet could reach for this query (the sum of the query
words' IDFs; a word the FAQ never uses counts as much as its rarest word). A snippet whose
question uses every query word, at average length, scores about 0.5. "Matches well
enough" thresholds use the confidence.

With a sentence encoder (`faq_retriever = "hybrid"`), each snippet's questions are also
embedded, and a match's confidence blends the two: see `HYBRID_WEIGHT`.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING

import numpy as np
import Stemmer

from botkit.prompting.faq import FaqSnippet

if TYPE_CHECKING:
    from botkit.prompting.embeddings import SentenceEncoder

_WORD = re.compile(r"\w\w+")
_NON_WORD = re.compile(r"\W+")
_STEMS_KEPT = 100_000  # words a Tokenizer remembers the stems of
# Contractions typed without the apostrophe ("dont") are as empty as the rest.
_ENGLISH_CONTRACTIONS = ("dont", "doesnt", "didnt", "cant", "wont", "isnt", "im", "ive")
# Lucene's BM25 with a little less saturation than its default 1.2: a snippet whose
# questions repeat a word is about that word.
_K1 = 2.0
_B = 0.75
_FIELD_WEIGHTS = {"question": 2.0, "questions": 1.0, "tags": 1.0, "answer": 0.5}
_FIELDS: dict[str, Callable[[FaqSnippet], str]] = {
    "question": lambda s: s.question.lower(),
    "questions": lambda s: "\n".join(s.questions).lower(),
    "tags": lambda s: "\n".join(s.tags).lower(),
    "answer": lambda s: s.answer.lower(),
}
# Upper case: no lower-cased text holds it, so it marks where one snippet's text ends.
_SEPARATOR = "\nSNIPPET\n"
_SEPARATOR_ID = -2
# Up to this many snippets, a query scans every list of its words: that costs less than
# keeping track of which lists it can skip.
_SCAN_ALL_UP_TO = 20_000
HYBRID_WEIGHT = 0.3
"""The hybrid retriever's confidence: this share of BM25's, and the rest from meaning, the
mean of two cosine similarities: the query's to the nearest of the snippet's questions,
and to their centroid. Tuned on BANKING77's training questions, not its test set."""


def _stopwords(language: str) -> frozenset[str]:
    from bm25s import stopwords

    lists = {
        "english": (*stopwords.STOPWORDS_EN, *_ENGLISH_CONTRACTIONS),
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
    return frozenset(lists.get(language, ()))


@dataclass(frozen=True, slots=True)
class FaqMatch:
    """A snippet chosen for a question, with how sure the choice is (0–1)."""

    snippet: FaqSnippet
    confidence: float


class Tokenizer:
    """Lower-cased words, stop words dropped, Snowball-stemmed."""

    def __init__(self, language: str = "english") -> None:
        self._stopwords = _stopwords(language)
        self._stemmer = None if language == "none" else Stemmer.Stemmer(language)
        # word → stem ("" for a stop word): a FAQ says the same words again and again.
        self._stems: dict[str, str] = {}

    def __call__(self, text: str) -> list[str]:
        cache = self._stems
        words = _WORD.findall(text.lower())
        missing = [w for w in words if w not in cache]
        if missing:
            if len(cache) > _STEMS_KEPT:  # bound what odd queries can make it hold
                cache.clear()
                missing = words
            cache.update(zip(missing, self.stems(missing), strict=True))
        return [s for w in words if (s := cache[w])]

    def stems(self, words: list[str]) -> list[str]:
        """The stem of each lower-cased word; "" for a stop word or a single letter."""
        stems = words if self._stemmer is None else self._stemmer.stemWords(words)
        stop = self._stopwords
        return ["" if w in stop or len(w) < 2 else s for w, s in zip(words, stems, strict=True)]


class FaqIndex:
    """A bot's FAQ snippets, indexed once at start-up for BM25 (and embeddings, if given)."""

    def __init__(
        self,
        snippets: Sequence[FaqSnippet],
        *,
        language: str = "english",
        encoder: SentenceEncoder | None = None,
    ) -> None:
        self.snippets = list(snippets)
        self.encoder = encoder
        self._tokenize = Tokenizer(language)
        self._vocab: dict[str, int] = {}
        self._scratch = threading.local()
        self._everyone = np.arange(len(self.snippets), dtype=np.int32)
        self._build(self.snippets)
        if encoder is not None and self.snippets:
            self._embed(encoder)

    def _build(self, snippets: Sequence[FaqSnippet]) -> None:
        vocab, tokenize = self._vocab, self._tokenize
        # Lower-cased word → its stem's id in the vocabulary, -1 for a stop word.
        known: dict[str, int] = {_SEPARATOR.strip(): _SEPARATOR_ID}
        words: list[np.ndarray] = []
        docs: list[np.ndarray] = []
        tfs: list[np.ndarray] = []
        for field, weight in _FIELD_WEIGHTS.items():
            # One regex pass over a whole field of the FAQ, the snippets' texts joined by
            # a separator no lower-cased text can contain; words then cost a lookup each.
            # (Splitting at non-word runs finds what _WORD does, and 1-letter words, faster.)
            text = _SEPARATOR.join(map(_FIELDS[field], snippets))
            found = _NON_WORD.sub(" ", text).split()
            if fresh := set(found).difference(known):
                new = list(fresh)
                known.update(
                    (w, vocab.setdefault(s, len(vocab)) if s else -1)
                    for w, s in zip(new, tokenize.stems(new), strict=True)
                )
            ids = np.fromiter(map(known.__getitem__, found), dtype=np.int64, count=len(found))
            separator = ids == _SEPARATOR_ID
            kept = ids >= 0
            words.append(ids[kept])
            docs.append(np.cumsum(separator)[kept])
            tfs.append(np.full(int(kept.sum()), weight))
        n, size = len(snippets), len(vocab)
        word, doc, tf = np.concatenate(words), np.concatenate(docs), np.concatenate(tfs)
        lengths = np.bincount(doc, weights=tf, minlength=n)
        # One entry per (word, snippet), grouped by word, snippets ascending within a word.
        pair, where = np.unique(word * max(n, 1) + doc, return_inverse=True)
        tf = np.bincount(where, weights=tf)
        word, doc = pair // max(n, 1), pair % max(n, 1)
        doc_freq = np.bincount(word, minlength=size).astype(np.float64)
        self._idf = np.log1p((n - doc_freq + 0.5) / (doc_freq + 0.5))
        self._unknown_idf = float(self._idf.max()) if size else 0.0
        average = max(float(lengths.mean()), 1e-9) if n else 1.0
        norm = _K1 * (1 - _B + _B * lengths[doc] / average)
        self._docs = doc.astype(np.int32)
        self._weights = (self._idf[word] * tf / (tf + norm)).astype(np.float32)
        self._start = np.zeros(size + 1, dtype=np.int64)
        np.cumsum(doc_freq.astype(np.int64), out=self._start[1:])
        # The most a word adds to any snippet's score: what lets a query skip the long
        # lists of common words when they cannot change its best matches.
        self._most = np.zeros(size, dtype=np.float32)
        if len(word):
            np.maximum.at(self._most, word, self._weights)

    def search(self, query: str, *, top_k: int, min_confidence: float = 0.0) -> list[FaqMatch]:
        """The best `top_k` snippets whose confidence reaches `min_confidence`, best first."""
        if top_k <= 0 or not self.snippets:
            return []
        words = self._tokenize(query)
        ids = [self._vocab[w] for w in words if w in self._vocab]
        if self.encoder is not None:
            return self._hybrid(query, words, ids, top_k, min_confidence)
        if not ids:
            return []
        ceiling = self._ceiling(words, ids)
        candidates, scores, repeats = self._bm25(ids, top_k, min_confidence * ceiling)
        return self._best(candidates, scores, top_k, min_confidence, repeats, ceiling)

    def _ceiling(self, words: list[str], ids: list[int]) -> float:
        unknown = len(words) - len(ids)
        return float(self._idf[ids].sum()) + self._unknown_idf * unknown

    def _bm25(self, ids: list[int], top_k: int, floor: float) -> tuple[np.ndarray, np.ndarray, int]:
        """Snippets that share a word with the query, their BM25 scores, and how many times
        one snippet may be listed: every snippet that can be among the `top_k` best scoring
        at least `floor` is there, and maybe others.

        A large FAQ is searched with MaxScore, a word at a time: the query's words go most
        valuable first, each list added into a buffer, until the words left could not lift
        a snippet none of the lists so far named past the current top_k-th score; those
        words are then only looked up for the snippets still in the running, never scanned.
        """
        start, docs, weights = self._start, self._docs, self._weights
        counted = Counter(ids)
        # A buffer as long as the FAQ, zero between queries: adding each list into it and
        # reading back costs only the lists' lengths.
        buffer: np.ndarray | None = getattr(self._scratch, "buffer", None)
        if buffer is None:
            buffer = self._scratch.buffer = np.zeros(len(self.snippets), dtype=np.float32)
        if len(self.snippets) <= _SCAN_ALL_UP_TO or len(ids) == 1:
            spans = [(int(start[w]), int(start[w + 1])) for w in ids]  # repeated words repeat
            if sum(hi - lo for lo, hi in spans) > len(self.snippets) // 4:
                # Lists naming much of the FAQ: scoring every snippet costs less than
                # keeping track of the ones named.
                dense = np.zeros(len(self.snippets), dtype=np.float32)
                for lo, hi in spans:
                    np.add.at(dense, docs[lo:hi], weights[lo:hi])
                return self._everyone, dense, 1
            candidates = np.concatenate([docs[lo:hi] for lo, hi in spans])
            adds = np.concatenate([weights[lo:hi] for lo, hi in spans])
            np.add.at(buffer, candidates, adds)
            scores = buffer.take(candidates)
            buffer[candidates] = 0.0
            return candidates, scores, len(ids)
        # (word, times the query says it, the most it can add), most valuable first
        most = self._most
        terms = sorted(
            ((w, n, n * float(most[w])) for w, n in counted.items()), key=lambda t: -t[2]
        )
        # left[j]: the most that words j… can still add to a snippet's score
        left = list(accumulate((t[2] for t in reversed(terms)), initial=0.0))[::-1]
        found: list[np.ndarray] = []
        threshold = floor
        scanned = 0
        try:
            for j, (word, repeated, _) in enumerate(terms):
                if j and left[j] < threshold:
                    break
                lo, hi = start[word], start[word + 1]
                listed, adds = docs[lo:hi], weights[lo:hi]
                if repeated > 1:
                    adds = adds * np.float32(repeated)
                before = buffer.take(listed)
                found.append(listed[before == 0])  # weights are > 0: these are new
                np.add.at(buffer, listed, adds)
                scanned = j + 1
                if scanned < len(terms) and len(listed) >= top_k:
                    # The top_k-th best of this list's snippets so far: the best top_k
                    # can only score more.
                    kth = -np.partition(-(before + adds), top_k - 1)[top_k - 1]
                    threshold = max(threshold, float(kth))
            candidates = found[0] if len(found) == 1 else np.concatenate(found)
            scores = buffer.take(candidates).astype(np.float64)
        finally:
            for listed in found:
                buffer[listed] = 0.0
        # The rest, looked up for the candidates that can still make it, dropping more
        # as the threshold rises and less is left to add.
        for j in range(scanned, len(terms)):
            word, repeated, _ = terms[j]
            alive = scores + left[j] >= threshold
            candidates, scores = candidates[alive], scores[alive]
            lo, hi = start[word], start[word + 1]
            listed = docs[lo:hi]
            at = np.minimum(np.searchsorted(listed, candidates), len(listed) - 1)
            hit = listed[at] == candidates
            found_weights = weights[lo + at[hit]]
            scores[hit] += found_weights if repeated == 1 else repeated * found_weights
            if len(scores) > top_k:
                threshold = max(threshold, float(-np.partition(-scores, top_k - 1)[top_k - 1]))
        return candidates, scores, 1

    def _best(
        self,
        candidates: np.ndarray,
        scores: np.ndarray,
        top_k: int,
        min_confidence: float,
        repeats: int = 1,
        scale: float = 1.0,
    ) -> list[FaqMatch]:
        """The `top_k` best candidates whose confidence (score / `scale`) reaches
        `min_confidence`; a candidate listed up to `repeats` times (always with the same
        score) counts once."""
        wanted = top_k * repeats
        if wanted < len(scores):
            # (Partitioning the negated scores near their start stays fast on the many
            # zeros of a dense array; near the end it does not.)
            keep = np.argpartition(-scores, wanted - 1)[:wanted]
            kth = scores[keep].min()
            if kth <= 0:  # fewer matches than wanted: no equals worth ranking
                keep = keep[scores[keep] > 0]
            elif np.count_nonzero(scores >= kth) > wanted:
                # Equals of the last one kept: all of them, to be ranked by their place
                # in the FAQ, not by where the partition happened to leave them.
                keep = np.flatnonzero(scores >= kth)
        else:
            keep = np.arange(len(scores))
        # Best first; among equals, the snippet that comes first in the FAQ.
        best = scores[keep]
        order = np.lexsort((candidates[keep], -best))
        matches: list[FaqMatch] = []
        seen: set[int] = set()
        for confidence, doc in zip(
            (best[order] / scale).tolist(), candidates[keep[order]].tolist(), strict=True
        ):
            if confidence <= 0 or confidence < min_confidence or len(matches) == top_k:
                break
            if doc not in seen:
                seen.add(doc)
                matches.append(FaqMatch(self.snippets[doc], confidence))
        return matches

    def _embed(self, encoder: SentenceEncoder) -> None:
        texts: list[str] = []
        first_row: list[int] = []  # a snippet's questions are rows first_row[i]…
        for snippet in self.snippets:
            first_row.append(len(texts))
            texts += (snippet.question, *snippet.questions)
        self._vectors = encoder.encode(texts)
        self._first_row = np.asarray(first_row)
        centroids = np.add.reduceat(self._vectors, self._first_row, axis=0)
        norms = np.linalg.norm(centroids, axis=1, keepdims=True)
        self._centroids = centroids / np.maximum(norms, 1e-12)

    def _hybrid(
        self, query: str, words: list[str], ids: list[int], top_k: int, min_confidence: float
    ) -> list[FaqMatch]:
        assert self.encoder is not None
        vector = self.encoder.encode([query])[0]
        # How close the query comes to the nearest of a snippet's questions, and to
        # what they have in common; answers are not embedded (they say more than
        # what they answer).
        nearest = np.maximum.reduceat(self._vectors @ vector, self._first_row)
        meaning = np.clip((nearest + self._centroids @ vector) / 2, 0.0, None)
        confidence = (1 - HYBRID_WEIGHT) * meaning.astype(np.float64)
        if ids:
            candidates, scores, _ = self._bm25(ids, len(self.snippets), 0.0)
            words_ = np.zeros(len(self.snippets))
            words_[candidates] = scores / self._ceiling(words, ids)  # repeats: same score
            confidence += HYBRID_WEIGHT * words_
        return self._best(self._everyone, confidence, top_k, min_confidence)
