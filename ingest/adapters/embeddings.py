"""embeddings: OpenAI's `POST /v1/embeddings` body and `list` of embeddings.

Models take `{texts: [...]}` → `{embeddings, token_counts}` (many texts at once), or
`{text}` → `{embedding}` (one text per request).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from inferhook.catalog import CatalogEntry
from ingest.adapters.base import Adapter, ModelRequest, TaskBody, examples
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


ADAPTER = Adapter(TaskKind.EMBEDDINGS, EmbeddingsBody, request,
                  fields={"texts": ("input",), "text": ("input",)})
