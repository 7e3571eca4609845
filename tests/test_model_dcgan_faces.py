"""inferhook/dcgan-faces: seeded, reproducible 64x64 images with the statistics of face photos."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from executors.errors import PredictionFailed
from executors.media import decode_image
from executors.runtime import LoadedModel, run_direct
from inferhook.catalog import load_catalog

MODEL = "inferhook/dcgan-faces"


@pytest.fixture(scope="module")
def model(built_models: Path) -> LoadedModel:
    return LoadedModel.load(load_catalog(built_models)[MODEL])


def generate(model: LoadedModel, payload: dict[str, Any]) -> dict[str, Any]:
    (outcome,) = run_direct(model, [payload])
    assert isinstance(outcome, dict), outcome
    return outcome


def pixels(uri: str) -> np.ndarray:
    """(64, 64, 3) float RGB of a PNG data URI."""
    image = decode_image(uri, mode="RGB")
    assert image.size == (64, 64)
    return np.asarray(image, dtype=np.float64)


def neighbour_correlation(gray: np.ndarray) -> float:
    """Correlation of each pixel with its right-hand neighbour (about 0 for noise)."""
    return float(np.corrcoef(gray[:, 1:].ravel(), gray[:, :-1].ravel())[0, 1])


def test_same_seed_gives_the_same_images(model: LoadedModel) -> None:
    first = generate(model, {"n": 3, "seed": 42})
    assert first == generate(model, {"n": 3, "seed": 42})
    assert first["seed"] == 42
    other = generate(model, {"n": 3, "seed": 43})["images"]
    assert all(a != b for a, b in zip(first["images"], other, strict=True))
    assert len(set(first["images"])) == 3


def test_without_a_seed_the_returned_seed_remakes_the_images(model: LoadedModel) -> None:
    made = generate(model, {"n": 2})
    assert generate(model, {"n": 2, "seed": made["seed"]}) == made


def test_images_are_smooth_varied_pictures_not_noise(model: LoadedModel) -> None:
    images = [pixels(uri) for uri in generate(model, {"n": 16, "seed": 1})["images"]]
    noise = np.random.default_rng(0).uniform(0, 255, (64, 64))
    assert abs(neighbour_correlation(noise)) < 0.1  # the measure tells noise apart
    for image in images:
        gray = image.mean(axis=2)
        assert gray.std() > 10, "an image is (nearly) constant"
        assert neighbour_correlation(gray) > 0.7
        assert neighbour_correlation(gray.T) > 0.7
    differences = [np.abs(a - b).mean() for a, b in itertools.pairwise(images)]
    assert min(differences) > 10, "two images are (nearly) the same"


def test_the_centre_is_skin_toned_more_than_the_border(model: LoadedModel) -> None:
    """A centred face: red > green > blue in the middle, redder there than in the background."""
    images = np.stack([pixels(uri) for uri in generate(model, {"n": 16, "seed": 2})["images"]])
    centre = images[:, 20:44, 20:44].mean(axis=(1, 2))
    border = np.concatenate([images[:, :, :6], images[:, :, -6:]], axis=2).mean(axis=(1, 2))
    skin = (centre[:, 0] > centre[:, 1]) & (centre[:, 1] > centre[:, 2])
    assert skin.mean() >= 0.75
    assert (centre[:, 0] - centre[:, 2]).mean() > (border[:, 0] - border[:, 2]).mean() + 10


@pytest.mark.parametrize("payload", [{"n": 0}, {"n": 17}, {"n": "2"}, {"seed": -1}, {"n": True}])
def test_unusable_input_fails_as_input_invalid(model: LoadedModel, payload: dict[str, Any]) -> None:
    (outcome,) = run_direct(model, [payload])
    assert isinstance(outcome, PredictionFailed)
    assert outcome.reason.value == "input_invalid"
