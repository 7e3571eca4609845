"""inferhook/efficientnet-lite0: real photos get their ImageNet class (scikit-image's samples)."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from skimage import data

from executors.errors import PredictionFailed
from executors.runtime import LoadedModel, run_direct
from inferhook.catalog import load_catalog

MODEL = "inferhook/efficientnet-lite0"
DOMESTIC_CATS = {281, 282, 283, 284, 285}
ESPRESSO = 967


@pytest.fixture(scope="module")
def model(built_models: Path) -> LoadedModel:
    return LoadedModel.load(load_catalog(built_models)[MODEL])


def photo(name: str) -> np.ndarray:
    """One of scikit-image's sample photos (they ship in its wheel), as uint8 RGB."""
    load: Callable[[], np.ndarray] = getattr(data, name)
    return load()


def uri(pixels: np.ndarray, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def classify(model: LoadedModel, payload: dict[str, Any]) -> list[dict[str, Any]]:
    (outcome,) = run_direct(model, [payload])
    assert isinstance(outcome, dict), outcome
    predictions: list[dict[str, Any]] = outcome["predictions"]
    return predictions


def test_chelsea_is_a_cat(model: LoadedModel) -> None:
    predictions = classify(model, {"image": uri(photo("chelsea"))})
    assert predictions[0]["index"] in DOMESTIC_CATS, predictions
    assert "cat" in predictions[0]["label"]
    assert sum(p["score"] for p in predictions if p["index"] in DOMESTIC_CATS) > 0.8


def test_coffee_is_espresso(model: LoadedModel) -> None:
    predictions = classify(model, {"image": uri(photo("coffee"), "JPEG"), "top_k": 2})
    assert predictions[0]["index"] == ESPRESSO
    assert predictions[0]["label"] == "espresso"
    assert predictions[0]["score"] > 0.6
    assert len(predictions) == 2


def test_top_k_is_ordered_probabilities(model: LoadedModel) -> None:
    predictions = classify(model, {"image": uri(photo("astronaut")), "top_k": 20})
    scores = [p["score"] for p in predictions]
    assert len(predictions) == 20
    assert scores == sorted(scores, reverse=True)
    assert 0 < sum(scores) <= 1.0 + 1e-6
    assert len({p["index"] for p in predictions}) == 20


def test_grayscale_and_tiny_images_are_classified(model: LoadedModel) -> None:
    gray = np.asarray(Image.fromarray(photo("chelsea")).convert("L"))
    assert classify(model, {"image": uri(gray), "top_k": 1})[0]["index"] in DOMESTIC_CATS
    assert len(classify(model, {"image": uri(photo("chelsea")[::20, ::20].copy())})) == 5


@pytest.mark.parametrize("payload", [
    {"image": "data:image/png;base64,AAAA"},
    {"image": "data:text/plain;base64,aGVsbG8="},
    {"image": 5},
    {"image": "data:image/png;base64,AAAA", "top_k": 0},
])
def test_unusable_input_fails_as_input_invalid(model: LoadedModel, payload: dict[str, Any]) -> None:
    (outcome,) = run_direct(model, [payload])
    assert isinstance(outcome, PredictionFailed)
    assert outcome.reason.value == "input_invalid"
