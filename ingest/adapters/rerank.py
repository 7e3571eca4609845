"""rerank: `{model, query, documents, top_n}` → `{results: [{index, relevance_score, document}]}`,
the shape Cohere and Jina use.

Models take `{query, documents: [...]}` → `{scores (document order), token_counts}`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from inferhook.catalog import CatalogEntry
from ingest.adapters.base import Adapter, ModelRequest, TaskBody, examples
from schemas.results.rerank import RerankDocument
from schemas.tasks import TaskKind

Text = Annotated[str, StringConstraints(min_length=1)]


class RerankBody(TaskBody):
    """Body of `POST /v1/async/rerank`."""

    model_config = examples({
        "model": "inferhook/all-minilm-l6-v2", "query": "How do I bake bread?",
        "documents": ["Stocks fell.", "Knead the dough, let it rise, bake it."], "top_n": 1})

    query: Text
    documents: list[Text | RerankDocument] = Field(
        min_length=1, max_length=1000, description="Texts, or objects with a `text`")
    top_n: int | None = Field(default=None, ge=1, description="Return only the best top_n")
    return_documents: bool = Field(default=True, description="Include each document's text")


def request(body: RerankBody, entry: CatalogEntry) -> ModelRequest:
    documents = [d if isinstance(d, str) else d.text for d in body.documents]
    return ModelRequest({"query": body.query, "documents": documents},
                        {"top_n": body.top_n, "return_documents": body.return_documents})


ADAPTER = Adapter(TaskKind.RERANK, RerankBody, request)
