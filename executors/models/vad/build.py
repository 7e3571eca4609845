"""Write the example input of inferhook/vad: two sentences spoken by espeak-ng with silence around.

espeak-ng is a system package (scripts/provision-system.sh installs it). The WAV stays at
espeak's own rate (22.05 kHz) so the example also exercises resampling; the expected
speech segments are where the spoken clips lie, their own silence trimmed.
"""

from __future__ import annotations

import io
import json
import subprocess
import wave
from pathlib import Path

import numpy as np

from executors.media import encode_wav

HERE = Path(__file__).resolve().parent
SENTENCES = ["Hello world, this is a test of voice activity detection.",
             "And here is a second sentence."]
SILENCE = (1.0, 1.2, 0.8)
"""Seconds of silence before, between and after the sentences."""


def speak(text: str) -> tuple[np.ndarray, int]:
    """espeak-ng's 16-bit mono WAV of `text` as samples, with its rate."""
    wav_bytes = subprocess.run(["espeak-ng", "--stdout", text], check=True,
                               capture_output=True).stdout
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    loud = np.flatnonzero(np.abs(samples) > 300)
    return samples[loud[0]:loud[-1] + 1], rate


def main() -> None:
    """Write example_input.json and example_expected.json next to this file."""
    clips = [speak(text) for text in SENTENCES]
    rate = clips[0][1]
    parts: list[np.ndarray] = []
    expected: list[dict[str, float]] = []
    position = 0
    for gap, (clip, _) in zip(SILENCE, clips, strict=False):
        parts += [np.zeros(round(gap * rate), dtype=np.int16), clip]
        position += round(gap * rate)
        expected.append({"start": round(position / rate, 3), "end": round((position + len(clip)) / rate, 3)})
        position += len(clip)
    parts.append(np.zeros(round(SILENCE[-1] * rate), dtype=np.int16))
    uri = encode_wav(np.concatenate(parts), rate)
    (HERE / "example_input.json").write_text(json.dumps({"audio": uri}) + "\n")
    (HERE / "example_expected.json").write_text(json.dumps({"segments": expected}) + "\n")
    print(f"vad: wrote example_input.json, example_expected.json ({expected}) to {HERE}")


if __name__ == "__main__":
    main()
