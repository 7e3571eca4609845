# ruff: noqa: RUF001  (the phoneme tests compare IPA strings, whose letters look like ASCII)
"""Speech models: Piper speaks a sentence and Whisper reads it back, run directly and served
through Kafka; Whisper's 30 s windows, timestamps and decoding rules; Piper's text handling."""

from __future__ import annotations

import base64
import io
import json
import re
import wave
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from executors.errors import PredictionFailed
from executors.media import decode_audio, encode_wav
from executors.runtime import LoadedModel, run_direct
from executors.worker import Executor
from inferhook.catalog import load_catalog
from inferhook.settings import Settings
from schemas.events import Completed, EventType, Output
from tests.executor_kit import EventLog, Requests, running

PIPER, WHISPER = "inferhook/piper-joe", "inferhook/whisper-tiny-en"
SENTENCE = "We will send you a message when the job is done."


def words(text: str) -> list[str]:
    """Lower-case words without punctuation: what 'equal modulo case and punctuation' compares."""
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def wav_uri(samples: np.ndarray, rate: int = 16000) -> str:
    return encode_wav(samples, rate)


def example(models: Path, name: str) -> dict[str, Any]:
    """The Whisper example's `input` or `expected` file."""
    data: dict[str, Any] = json.loads((models / "whisper" / f"example_{name}.json").read_text())
    return data


def run_one(model: LoadedModel, input: dict[str, Any]) -> dict[str, Any]:
    (outcome,) = run_direct(model, [input])
    if isinstance(outcome, PredictionFailed):
        raise outcome
    result: dict[str, Any] = outcome
    return result


@pytest.fixture(scope="module")
def speech(built_models: Path) -> Iterator[dict[str, LoadedModel]]:
    catalog = load_catalog(built_models)
    yield {name: LoadedModel.load(catalog[name], intra_op_threads=2) for name in (PIPER, WHISPER)}


@pytest.fixture(scope="module")
def whisper(speech: dict[str, LoadedModel]) -> ModuleType:
    return speech[WHISPER].handler


@pytest.fixture(scope="module")
def piper(speech: dict[str, LoadedModel]) -> ModuleType:
    return speech[PIPER].handler


def test_spoken_sentence_is_read_back(speech: dict[str, LoadedModel]) -> None:
    spoken = run_one(speech[PIPER], {"text": SENTENCE})
    heard = run_one(speech[WHISPER], {"audio": spoken["audio"]})
    assert words(heard["text"]) == words(SENTENCE), heard["text"]
    assert heard["language"] == "en"
    assert abs(heard["duration"] - spoken["duration"]) < 0.01
    (segment,) = heard["segments"]
    assert 0 <= segment["start"] < segment["end"] <= heard["duration"]


async def test_round_trip_served_through_kafka(settings: Settings) -> None:
    async with Requests.open(settings, [PIPER, WHISPER]) as requests, \
            EventLog.follow(settings) as events, running(Executor.pooled(settings, [PIPER, WHISPER])):
        spoken = await events.outcome(await requests.create(PIPER, {"text": SENTENCE}), timeout=60)
        assert spoken.type is EventType.SUCCEEDED, spoken.data
        assert isinstance(spoken.data, Completed)
        audio = spoken.data.output["audio"]
        assert audio.startswith("data:audio/wav;base64,")
        heard_id = await requests.create(WHISPER, {"audio": audio})
        heard = await events.outcome(heard_id, timeout=60)
        assert heard.type is EventType.SUCCEEDED, heard.data
        assert isinstance(heard.data, Completed)
        assert words(heard.data.output["text"]) == words(SENTENCE), heard.data.output["text"]
        partial = [e.data for e in events.of(heard_id) if e.type is EventType.OUTPUT]
        assert partial and isinstance(partial[-1], Output)
        assert partial[-1].output["segments"] == heard.data.output["segments"]


def test_long_audio_is_read_in_30_second_windows(speech: dict[str, LoadedModel], built_models: Path) -> None:
    """The example (three sentences, 11.6 s) three times over: windows start where the last
    complete segment ended, so no sentence is lost or cut at the 30 s boundary."""
    samples = decode_audio(example(built_models, "input")["audio"], 16000)
    sentences = [s["text"] for s in example(built_models, "expected")["segments"]]
    heard = run_one(speech[WHISPER], {"audio": wav_uri(np.tile(samples, 3))})
    assert words(heard["text"]) == words(" ".join(sentences * 3)), heard["text"]
    segments = heard["segments"]
    assert [words(s["text"]) for s in segments] == [words(s) for s in sentences * 3]
    assert len({s["seek"] for s in segments}) >= 2, "all segments came from one window"
    assert segments[-1]["end"] > 30
    starts = [s["start"] for s in segments]
    assert starts == sorted(starts)
    assert all(s["start"] < s["end"] <= heard["duration"] for s in segments)
    assert [s["id"] for s in segments] == list(range(len(segments)))


def test_without_timestamps_a_window_is_one_segment(speech: dict[str, LoadedModel],
                                                    built_models: Path) -> None:
    heard = run_one(speech[WHISPER], {**example(built_models, "input"), "timestamps": False})
    assert words(heard["text"]) == words(example(built_models, "expected")["text"])
    (segment,) = heard["segments"]
    assert segment["start"] == 0 and segment["end"] == pytest.approx(heard["duration"], abs=0.02)


def test_silence_gives_no_text(speech: dict[str, LoadedModel]) -> None:
    heard = run_one(speech[WHISPER], {"audio": wav_uri(np.zeros(5 * 16000, np.float32))})
    assert heard["text"] == "" and heard["segments"] == []
    assert heard["duration"] == 5.0


def test_prompt_gives_the_spelling(speech: dict[str, LoadedModel]) -> None:
    """A name Whisper cannot spell from the sound alone comes out as the prompt spells it,
    also when the prompt is longer than the 223 tokens kept of it."""
    sentence = "Please send the invoice to Anya Kowalczyk."
    spoken = run_one(speech[PIPER], {"text": sentence})
    unprompted = run_one(speech[WHISPER], {"audio": spoken["audio"]})
    assert "Kowalczyk" not in unprompted["text"]
    for prompt in ("Anya Kowalczyk", ("Our client Anya Kowalczyk. " * 40)[:1000]):
        prompted = run_one(speech[WHISPER], {"audio": spoken["audio"], "prompt": prompt})
        assert words(prompted["text"]) == words(sentence), prompted["text"]


def test_timestamp_rules(whisper: ModuleType, speech: dict[str, LoadedModel]) -> None:
    """OpenAI's decoding rules: begin with a timestamp at most 1 s in; timestamps in pairs,
    never decreasing; a timestamp when they are together likelier than any text token; no
    special tokens."""
    rules = whisper.allowed_logits
    resources = speech[WHISPER].state
    begin, eot = whisper.TIMESTAMP_BEGIN, whisper.EOT
    flat = np.zeros(begin + 1501, np.float32)
    text_likely = flat.copy()
    text_likely[[400, eot]] = 20.0
    first = np.isfinite(rules(text_likely, [], True, resources))
    assert not first[:begin].any() and first[begin:begin + 51].all() and not first[begin + 51:].any()
    after_text = np.isfinite(rules(text_likely, [begin, 400], True, resources))
    assert after_text[400] and after_text[eot] and after_text[begin + 10]
    assert not after_text[whisper.SOT] and not after_text[whisper.NO_TIMESTAMPS]
    assert not np.isfinite(rules(flat, [begin, 400], True, resources))[:begin].any()
    closing = np.isfinite(rules(text_likely, [begin, 400, begin + 10], True, resources))
    assert not closing[:eot].any() and closing[eot]
    assert not closing[begin:begin + 10].any() and closing[begin + 10:].all()
    opened = np.isfinite(rules(text_likely, [begin, 400, begin + 10, begin + 10], True, resources))
    assert not opened[begin:].any() and opened[400]
    plain = np.isfinite(rules(text_likely, [], False, resources))
    assert not plain[begin:].any() and plain[400] and not plain[eot]


def test_segments_split_at_timestamp_pairs(whisper: ModuleType) -> None:
    t = whisper.TIMESTAMP_BEGIN
    closed = [t, 11, 12, t + 100, t + 100, 13, t + 250]
    assert whisper.split_segments(closed, 3000) == ([(0, 100, [11, 12]), (100, 250, [13])], 3000)
    cut = [t, 11, t + 100, t + 100, 12]  # the last segment runs past the window: decode it again
    assert whisper.split_segments(cut, 3000) == ([(0, 100, [11])], 200)
    assert whisper.split_segments([11, 12], 1500) == ([(0, 750, [11, 12])], 1500)


def test_mel_of_a_tone_peaks_in_its_band(whisper: ModuleType) -> None:
    tone = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000).astype(np.float32)
    mel = whisper.log_mel(tone, whisper.mel_filters())
    assert mel.shape == (80, 100)
    centres = np.linspace(0, 8000, 201) @ whisper.mel_filters().T / whisper.mel_filters().sum(axis=1)
    assert abs(centres[mel[:, 50].argmax()] - 1000) < 100


def test_speed_shortens_speech(speech: dict[str, LoadedModel]) -> None:
    normal = run_one(speech[PIPER], {"text": SENTENCE})
    fast = run_one(speech[PIPER], {"text": SENTENCE, "speed": 2})
    assert 0.35 < fast["duration"] / normal["duration"] < 0.7


def test_speech_is_16_bit_wav_at_the_voice_rate(speech: dict[str, LoadedModel]) -> None:
    spoken = run_one(speech[PIPER], {"text": "Hello there. How are you today?"})
    _, data = spoken["audio"].split(",", 1)
    with wave.open(io.BytesIO(base64.b64decode(data))) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 22050)
        assert wav.getnframes() / 22050 == pytest.approx(spoken["duration"], abs=0.001)
    assert spoken["sample_rate"] == 22050


def test_sentences_and_clauses(piper: ModuleType) -> None:
    found = piper.sentences("Hello world, this is\na test. How are you?! Fine... ok\n\nNext")
    assert [[tuple(c) for c in sentence] for sentence in found] == [
        [("Hello world", ","), ("this is a test", ".")], [("How are you", "?")],
        [("Fine", ".")], [("ok", ".")], [("Next", ".")]]
    assert piper.sentences(" ?! ... ") == []
    assert piper.sentence_phonemes(found[0], ["həlˈoʊ wˈɜːld", "ðɪs ɪz ɐ tˈɛst"]) == \
        "həlˈoʊ wˈɜːld, ðɪs ɪz ɐ tˈɛst."


def test_phoneme_ids_are_padded_and_framed(piper: ModuleType) -> None:
    ids = {"^": [1], "_": [0], "$": [2], "a": [14], "c": [16], "\u0327": [140]}
    assert piper.phoneme_ids("a?c", ids) == [1, 0, 14, 0, 16, 0, 2]
    assert piper.phoneme_ids("ç", ids) == [1, 0, 16, 0, 140, 0, 2]  # decomposed, as Piper does


def test_phonemes_come_from_espeak(piper: ModuleType) -> None:
    clauses = [piper.Clause("Hello world", ","), piper.Clause("good morning", ".")]
    assert piper.phonemize(clauses, "en-us") == ["həlˈoʊ wˈɜːld", "ɡˈʊd mˈɔːɹnɪŋ"]


@pytest.mark.parametrize(("model", "input", "message"), [
    (PIPER, {"text": " ?! "}, "nothing to say"),
    (PIPER, {"text": "hello", "speed": 9}, "speed"),
    (WHISPER, {"audio": "data:image/png;base64,AAAA"}, "audio data URI"),
    (WHISPER, {"audio": "data:audio/wav;base64,AAAA"}, "not a PCM WAV"),
])
def test_bad_input_fails_the_prediction(speech: dict[str, LoadedModel], model: str,
                                        input: dict[str, Any], message: str) -> None:
    (outcome,) = run_direct(speech[model], [input])
    assert isinstance(outcome, PredictionFailed)
    assert outcome.reason.value == "input_invalid" and message in str(outcome)


def test_too_short_audio_is_refused(speech: dict[str, LoadedModel]) -> None:
    (outcome,) = run_direct(speech[WHISPER], [{"audio": wav_uri(np.zeros(800, np.float32))}])
    assert isinstance(outcome, PredictionFailed) and "shorter than 0.1 s" in str(outcome)


