"""Result of rerank: `{results: [{index, relevance_score, document}]}`, the shape Cohere
and Jina use.

Models answer `{scores (document order), token_counts}`; the request's `top_n` and
`return_documents` shape the result.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from schemas.results.base import Finished, OutputMismatch

Text = Annotated[str, StringConstraints(min_length=1)]


class RerankDocument(BaseModel):
    text: Text


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


def result(done: Finished) -> Any:
    """A RerankList as JSON data."""
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
