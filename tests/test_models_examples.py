"""Every model's example input gives a correct, checked output: run directly and served.

The examples are made at set-up from data packages ship (scikit-learn digits, a text
image rendered with Pillow's font, speech from espeak-ng, scikit-image's photo of a cat)
or written by the build script (the chat question, the sentence Piper speaks);
`example_expected.json` holds what they contain.
"""

from __future__ import annotations

import io
import json
import re
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from executors.media import decode_data_uri, decode_image
from executors.runtime import LoadedModel, run_direct
from executors.worker import Executor
from inferhook.catalog import load_catalog
from inferhook.settings import Settings
from schemas.events import (
    LOADING_SEQUENCE,
    RUNNING_SEQUENCE,
    TERMINAL_SEQUENCE,
    Completed,
    EventType,
    Output,
    Started,
)
from tests.executor_kit import EventLog, Requests, running
from tests.support import example_input, model_folder

MODELS = ["inferhook/digits", "inferhook/minilm", "inferhook/ocr", "inferhook/vad", "inferhook/spin",
          "inferhook/all-minilm-l6-v2", "inferhook/efficientnet-lite0", "inferhook/dcgan-faces",
          "inferhook/smollm2", "inferhook/whisper-tiny-en", "inferhook/piper-joe"]
SIMILAR = ("A man is playing a guitar on stage.", "Someone performs music with a guitar.")
UNRELATED = "The central bank raised interest rates again."


def expected(settings: Settings, model: str) -> dict[str, Any]:
    path = model_folder(settings, model) / "example_expected.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def check_output(settings: Settings, model: str, output: dict[str, Any]) -> None:
    """Assert that `output` is the right answer for the model's example input."""
    if model == "inferhook/digits":
        assert output["digit"] == expected(settings, model)["digit"]
        assert max(output["probabilities"]) == output["probabilities"][output["digit"]]
    elif model == "inferhook/ocr":
        assert [line["text"] for line in output["lines"]] == expected(settings, model)["lines"]
        tops = [line["box"][1] for line in output["lines"]]
        assert tops == sorted(tops)
    elif model == "inferhook/vad":
        want = expected(settings, model)["segments"]
        assert len(output["segments"]) == len(want)
        for got, segment in zip(output["segments"], want, strict=True):
            assert abs(got["start"] - segment["start"]) < 0.3, (got, segment)
            assert abs(got["end"] - segment["end"]) < 0.3, (got, segment)
    elif model == "inferhook/minilm":
        vector = np.asarray(output["embedding"])
        assert vector.shape == (384,)
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4
    elif model == "inferhook/spin":
        assert output["iterations"] >= 1
        assert np.isfinite(output["checksum"])
    elif model == "inferhook/all-minilm-l6-v2":
        vectors = np.asarray(output["embeddings"])
        assert vectors.shape == (len(output["token_counts"]), expected(settings, model)["dimensions"])
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        similarity = vectors @ vectors.T - 2 * np.eye(len(vectors))
        closest = np.unravel_index(int(np.argmax(similarity)), similarity.shape)
        assert sorted(int(i) for i in closest) == expected(settings, model)["closest_pair"]
    elif model == "inferhook/efficientnet-lite0":
        predictions = output["predictions"]
        assert predictions[0]["index"] in expected(settings, model)["indices"], predictions
        scores = [p["score"] for p in predictions]
        assert scores == sorted(scores, reverse=True)
    elif model == "inferhook/dcgan-faces":
        want = expected(settings, model)
        assert output["seed"] == want["seed"]
        assert len(output["images"]) == want["count"]
        for uri in output["images"]:
            assert decode_image(uri, mode="RGB").size == tuple(want["size"])
    elif model == "inferhook/smollm2":
        assert expected(settings, model)["mentions"] in output["text"]
        assert output["finish_reason"] == "stop"
        usage = output["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    elif model == "inferhook/whisper-tiny-en":
        check_transcript(expected(settings, model), output)
    elif model == "inferhook/piper-joe":
        check_speech(expected(settings, model), output)
    else:
        raise AssertionError(f"no check for {model}")


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def check_transcript(want: dict[str, Any], output: dict[str, Any]) -> None:
    """The sentences read back (modulo case and punctuation), a segment each, around where each is spoken."""
    assert words(output["text"]) == words(want["text"]), output["text"]
    assert output["language"] == "en"
    assert [words(s["text"]) for s in output["segments"]] == [words(s["text"]) for s in want["segments"]]
    for got, spoken in zip(output["segments"], want["segments"], strict=True):
        assert got["start"] <= (spoken["start"] + spoken["end"]) / 2 <= got["end"], (got, spoken)


def check_speech(want: dict[str, Any], output: dict[str, Any]) -> None:
    """16-bit mono WAV at the voice's rate, as long as it says, of speech-like length and loudness."""
    media_type, data = decode_data_uri(output["audio"])
    assert media_type == "audio/wav"
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        assert wav.getframerate() == output["sample_rate"] == want["sample_rate"]
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2") / 32768
    assert len(samples) / want["sample_rate"] == pytest.approx(output["duration"], abs=0.001)
    seconds_per_word = output["duration"] / len(want["text"].split())
    assert 0.15 < seconds_per_word < 0.8, output["duration"]
    assert 0.02 < float(np.sqrt(np.mean(samples ** 2))) < 0.5


@pytest.fixture(scope="module")
def loaded(built_models: Path) -> Iterator[dict[str, LoadedModel]]:
    catalog = load_catalog(built_models)
    yield {name: LoadedModel.load(catalog[name], intra_op_threads=1) for name in MODELS}


@pytest.mark.parametrize("model", MODELS)
def test_example_gives_the_known_answer(settings: Settings, loaded: dict[str, LoadedModel],
                                        model: str) -> None:
    (output,) = run_direct(loaded[model], [example_input(settings, model)])
    check_output(settings, model, output)


def test_similar_sentences_are_closer_than_unrelated(loaded: dict[str, LoadedModel]) -> None:
    outputs = run_direct(loaded["inferhook/minilm"], [{"text": t} for t in (*SIMILAR, UNRELATED)])
    a, b, c = (np.asarray(o["embedding"]) for o in outputs)
    assert a @ b > 0.5
    assert a @ b > a @ c + 0.3
    assert a @ b > b @ c + 0.3


def test_batched_run_matches_one_by_one(loaded: dict[str, LoadedModel]) -> None:
    texts = ["short", "a somewhat longer sentence with more tokens in it", UNRELATED]
    minilm = loaded["inferhook/minilm"]
    batched = run_direct(minilm, [{"text": t} for t in texts])
    for text, together in zip(texts, batched, strict=True):
        (alone,) = run_direct(minilm, [{"text": text}])
        assert np.allclose(alone["embedding"], together["embedding"], atol=1e-5)


def test_bad_input_in_a_batch_fails_only_itself(loaded: dict[str, LoadedModel]) -> None:
    outcomes = run_direct(loaded["inferhook/minilm"], [{"text": "fine"}, {"text": "  "}, {"text": "ok"}])
    assert "embedding" in outcomes[0] and "embedding" in outcomes[2]
    assert outcomes[1].reason.value == "input_invalid"


async def test_every_example_served_cold_through_kafka(settings: Settings) -> None:
    """Pooled executor: each model loads on its first request, shows `loading` then `running`."""
    async with Requests.open(settings, MODELS) as requests, EventLog.follow(settings) as events, \
            running(Executor.pooled(settings)) as executor:
        ids = {model: await requests.create(model, example_input(settings, model)) for model in MODELS}
        for model, prediction_id in ids.items():
            outcome = await events.outcome(prediction_id, timeout=60)
            assert outcome.type is EventType.SUCCEEDED, outcome.data
            assert isinstance(outcome.data, Completed)
            check_output(settings, model, outcome.data.output)
            assert outcome.sequence == TERMINAL_SEQUENCE
            assert outcome.data.metrics["load_time"] > 0
            starts = [e for e in events.of(prediction_id) if e.type is EventType.STARTED]
            assert [(e.sequence, e.data.phase) for e in starts  # type: ignore[union-attr]
                    ] == [(LOADING_SEQUENCE, "loading"), (RUNNING_SEQUENCE, "running")]
            assert isinstance(starts[1].data, Started) and starts[1].data.load_time
        assert sorted(executor.pool.names) == sorted(MODELS)
    for model in ("inferhook/ocr", "inferhook/vad", "inferhook/whisper-tiny-en"):
        partial = [e for e in events.of(ids[model]) if e.type is EventType.OUTPUT]
        assert partial, f"{model} published no partial output"
        sequences = [e.sequence for e in events.of(ids[model])]
        assert sequences == sorted(sequences)
        last = partial[-1].data
        assert isinstance(last, Output)
        final = events.terminal(ids[model])[0].data
        assert isinstance(final, Completed)
        key = "lines" if model == "inferhook/ocr" else "segments"
        assert last.output[key] == final.output[key]


async def test_pooled_cache_evicts_least_recently_used(settings: Settings) -> None:
    tiny = settings.model_copy(update={"executor": settings.executor.model_copy(
        update={"memory_budget_mb": 0.001})})
    models = ["inferhook/digits", "inferhook/spin"]
    async with Requests.open(tiny, models) as requests, EventLog.follow(tiny) as events, \
            running(Executor.pooled(tiny)) as executor:
        first = await requests.create("inferhook/digits", example_input(tiny, "inferhook/digits"))
        assert (await events.outcome(first)).type is EventType.SUCCEEDED
        assert executor.pool.names == ["inferhook/digits"]
        second = await requests.create("inferhook/spin", {"milliseconds": 5})
        assert (await events.outcome(second)).type is EventType.SUCCEEDED
        assert executor.pool.names == ["inferhook/spin"]
        again = await requests.create("inferhook/digits", example_input(tiny, "inferhook/digits"))
        assert (await events.outcome(again)).type is EventType.SUCCEEDED
        assert [e.data.phase for e in events.of(again)  # type: ignore[union-attr]
                if e.type is EventType.STARTED] == ["loading", "running"]
