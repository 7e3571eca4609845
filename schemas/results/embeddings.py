"""Result of embeddings (OpenAI's list of embeddings).

Models answer `{embeddings: [[float]]}` (many texts) or `{embedding: [float]}` (one), with
`token_counts` when they count tokens.
"""

from __future__ import annotations

import base64
import struct
from typing import Any, Literal

from pydantic import BaseModel

from schemas.results.base import Finished, OutputMismatch


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingsUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    """OpenAI's embeddings response; `usage` is absent when the model does not count tokens."""

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingsUsage | None = None


def encode(vector: list[float], encoding_format: str) -> list[float] | str:
    """The vector as floats, or as base64 of its little-endian float32 bytes."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def result(done: Finished) -> Any:
    """An EmbeddingList, built as plain data: validating 256 x 384 floats through the
    models cost 7 ms per poll, this a fraction of one."""
    output: dict[str, Any] = done.output
    vectors = output["embeddings"] if "embeddings" in output else [output["embedding"]]
    if not isinstance(vectors, list) or not all(isinstance(v, list) for v in vectors):
        raise OutputMismatch("embeddings must be lists of numbers")
    fmt = str(done.options.get("encoding_format", "float"))
    found: dict[str, Any] = {"object": "list", "model": done.model, "data": [
        {"object": "embedding", "index": i, "embedding": encode(v, fmt)}
        for i, v in enumerate(vectors)]}
    counts = output.get("token_counts")
    if counts is not None:
        found["usage"] = {"prompt_tokens": sum(counts), "total_tokens": sum(counts)}
    return found
