"""inferhook/all-minilm-l6-v2: int8 embeddings that rank meaning, and bi-encoder reranking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from executors.errors import PredictionFailed
from executors.runtime import LoadedModel, run_direct
from inferhook.catalog import CatalogEntry, load_catalog

MODEL = "inferhook/all-minilm-l6-v2"
QUERY = "How do I bake bread at home?"
DOCUMENTS = ["Stock prices fell sharply on Monday after the announcement.",
             "Mix flour, water, yeast and salt, let the dough rise, then bake it in a hot oven.",
             "The cat sleeps on the sofa all afternoon."]


@pytest.fixture(scope="module")
def entry(built_models: Path) -> CatalogEntry:
    return load_catalog(built_models)[MODEL]


@pytest.fixture(scope="module")
def model(entry: CatalogEntry) -> LoadedModel:
    return LoadedModel.load(entry)


def run(model: LoadedModel, payload: dict[str, Any]) -> dict[str, Any]:
    (outcome,) = run_direct(model, [payload])
    assert isinstance(outcome, dict), outcome
    return outcome


def test_similar_sentences_are_closer_than_unrelated(model: LoadedModel) -> None:
    out = run(model, {"texts": ["eating food", "eating bread", "The stock market fell sharply."]})
    a, b, c = np.asarray(out["embeddings"])
    assert np.allclose(np.linalg.norm([a, b, c], axis=1), 1.0, atol=1e-5)
    assert a @ b > 0.6
    assert a @ b > max(a @ c, b @ c) + 0.4
    assert out["token_counts"] == [4, 4, 8]  # [CLS] ... [SEP]


def test_rerank_puts_the_relevant_document_first(model: LoadedModel) -> None:
    out = run(model, {"query": QUERY, "documents": DOCUMENTS})
    scores = out["scores"]
    assert len(scores) == len(DOCUMENTS)
    assert int(np.argmax(scores)) == 1
    assert scores[1] > max(scores[0], scores[2]) + 0.3
    embedded = np.asarray(run(model, {"texts": [QUERY, *DOCUMENTS]})["embeddings"])
    assert np.allclose(scores, embedded[1:] @ embedded[0], atol=1e-5)
    assert len(out["token_counts"]) == 1 + len(DOCUMENTS)


def test_a_text_embeds_the_same_alone_and_among_many(model: LoadedModel) -> None:
    """Sorting by length, chunking and padding do not change any text's embedding."""
    texts = [f"sentence number {i} " + "with more words " * (i % 7) for i in range(70)]
    together = np.asarray(run(model, {"texts": texts})["embeddings"])
    for index in (0, 33, 69):
        alone = np.asarray(run(model, {"texts": [texts[index]]})["embeddings"][0])
        assert np.allclose(alone, together[index], atol=1e-4)


def test_long_text_is_cut_at_256_tokens(model: LoadedModel) -> None:
    out = run(model, {"texts": ["word " * 1000, "short"]})
    assert out["token_counts"] == [256, 3]


@pytest.mark.parametrize("payload", [
    {"texts": ["fine", "   "]},
    {"texts": []},
    {"query": "q"},
    {"query": " ", "documents": ["d"]},
    {},
])
def test_unusable_input_fails_as_input_invalid(model: LoadedModel, payload: dict[str, Any]) -> None:
    (outcome,) = run_direct(model, [payload])
    assert isinstance(outcome, PredictionFailed)
    assert outcome.reason.value == "input_invalid"


@pytest.mark.parametrize(("payload", "valid"), [
    ({"texts": ["a", "b"]}, True),
    ({"query": "q", "documents": ["d"]}, True),
    ({"texts": ["a"], "query": "q"}, False),
    ({"query": "q"}, False),
    ({"texts": "not a list"}, False),
    ({"texts": [""]}, False),
])
def test_schema_accepts_one_of_the_two_shapes(entry: CatalogEntry, payload: dict[str, Any],
                                              valid: bool) -> None:
    assert entry.validator.is_valid(payload) is valid
