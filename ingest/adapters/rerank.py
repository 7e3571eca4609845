"""rerank: `{model, query, documents, top_n}` → `{results: [{index, relevance_score, document}]}`,
the shape Cohere and Jina use.

Models take `{query, documents: [...]}` → `{scores (document order), token_counts}`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from inferhook.catalog import CatalogEntry
from ingest.adapters.base import Adapter, Finished, ModelRequest, OutputMismatch, TaskBody, examples
from schemas.tasks import TaskKind

Text = Annotated[str, StringConstraints(min_length=1)]


class RerankDocument(BaseModel):
    text: Text


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


class RerankResult(BaseModel):
    index: int = Field(description="Position of the document in the request")
    relevance_score: float
    document: RerankDocument | None = None


class RerankUsage(BaseModel):
    total_tokens: int


class RerankList(BaseModel):
    """The documents, most relevant first."""

    id: str
    model: str
    results: list[RerankResult]
    usage: RerankUsage | None = None


def request(body: RerankBody, entry: CatalogEntry) -> ModelRequest:
    documents = [d if isinstance(d, str) else d.text for d in body.documents]
    return ModelRequest({"query": body.query, "documents": documents},
                        {"top_n": body.top_n, "return_documents": body.return_documents})


def result(done: Finished) -> Any:
    scores: list[float] = done.output["scores"]
    documents: list[str] = done.input["documents"]
    if len(scores) != len(documents):
        raise OutputMismatch(f"{len(scores)} scores for {len(documents)} documents")
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    top_n = done.options.get("top_n")
    if top_n is not None:
        order = order[:int(top_n)]
    keep = bool(done.options.get("return_documents", True))
    counts = done.output.get("token_counts")
    return RerankList(
        id=done.id, model=done.model,
        results=[RerankResult(index=i, relevance_score=scores[i],
                              document=RerankDocument(text=documents[i]) if keep else None)
                 for i in order],
        usage=None if counts is None else RerankUsage(total_tokens=sum(counts)),
    ).model_dump(mode="json", exclude_none=True)


ADAPTER = Adapter(TaskKind.RERANK, RerankBody, request, result, RerankList)
