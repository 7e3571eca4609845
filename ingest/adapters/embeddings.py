"""embeddings: OpenAI's `POST /v1/embeddings` body and `list` of embeddings.

Models take `{texts: [...]}` → `{embeddings, token_counts}` (many texts at once), or
`{text}` → `{embedding}` (one text per request).
"""

from __future__ import annotations

import base64
import struct
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from inferhook.catalog import CatalogEntry
from ingest.adapters.base import Adapter, Finished, ModelRequest, OutputMismatch, TaskBody, examples
from ingest.adapters.media import refuse
from schemas.tasks import TaskKind

Text = Annotated[str, StringConstraints(min_length=1)]


class EmbeddingsBody(TaskBody):
    """Body of `POST /v1/async/embeddings` (OpenAI's, less token-array inputs)."""

    model_config = examples({"model": "inferhook/all-minilm-l6-v2", "input": ["a cat", "a kitten"]})

    input: Text | Annotated[list[Text], Field(min_length=1, max_length=2048)] = Field(
        description="A text or a list of texts to embed")
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="float: arrays of numbers; base64: little-endian float32 bytes")
    user: str | None = Field(default=None, max_length=256, description="Accepted and ignored")


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


def _takes_many(entry: CatalogEntry) -> bool:
    return entry.validator.is_valid({"texts": ["a text"]})


def request(body: EmbeddingsBody, entry: CatalogEntry) -> ModelRequest:
    """`{texts}` for models that embed many texts at once, else `{text}` for one text."""
    texts = [body.input] if isinstance(body.input, str) else body.input
    options = {"encoding_format": body.encoding_format}
    if _takes_many(entry):
        return ModelRequest({"texts": texts}, options)
    if len(texts) > 1:
        raise refuse(("input",), f"{entry.name} embeds one text per request; send a string, or "
                                  "use a model that embeds many")
    return ModelRequest({"text": texts[0]}, options)


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


ADAPTER = Adapter(TaskKind.EMBEDDINGS, EmbeddingsBody, request, result, EmbeddingList,
                  fields={"texts": ("input",), "text": ("input",)})
