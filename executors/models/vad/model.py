"""Handler for inferhook/vad: WAV data URI -> 16 kHz windows -> Silero VAD -> speech segments.

Silero VAD (v5+) at 16 kHz takes 512-sample windows with the previous window's last 64
samples prepended, and carries a (2, 1, 128) state from one window to the next, so one
audio runs window by window (no batching). Each finished segment is published as
partial output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from executors.media import decode_audio

RATE = 16000
WINDOW = 512
CONTEXT = 64
WINDOW_SECONDS = WINDOW / RATE


def _param(input: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = input.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"'{name}' must be a number from {low:g} to {high:g}")
    return float(value)


def probabilities(ctx: Any, samples: np.ndarray) -> np.ndarray:
    """Speech probability of each 512-sample window (the last partial window is zero-padded)."""
    padded = np.pad(samples, (0, (-len(samples)) % WINDOW))
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros(CONTEXT, dtype=np.float32)
    rate = np.array(RATE, dtype=np.int64)
    result = np.empty(len(padded) // WINDOW, dtype=np.float32)
    for index in range(len(result)):
        window = padded[index * WINDOW:(index + 1) * WINDOW]
        frame = np.concatenate([context, window])[None, :]
        probability, state = ctx.run({"input": frame, "state": state, "sr": rate})
        result[index] = probability[0, 0]
        context = window[-CONTEXT:]
    return result


def segments(probs: np.ndarray, *, threshold: float, min_speech: float, min_silence: float,
             pad: float, duration: float) -> list[tuple[float, float]]:
    """Speech segments (start, end) in seconds, with hysteresis as silero's reference does."""
    low = max(0.01, threshold - 0.15)
    found: list[tuple[float, float]] = []
    start: float | None = None
    silence_since: float | None = None
    for index, p in enumerate(probs):
        t = index * WINDOW_SECONDS
        if p >= threshold:
            silence_since = None
            if start is None:
                start = t
        elif start is not None and p < low:
            silence_since = t if silence_since is None else silence_since
            if t + WINDOW_SECONDS - silence_since >= min_silence:
                if silence_since - start >= min_speech:
                    found.append((start, silence_since))
                start, silence_since = None, None
    if start is not None and duration - start >= min_speech:
        found.append((start, duration))
    return [(round(max(0.0, s - pad), 3), round(min(duration, e + pad), 3)) for s, e in found]


def predict(ctx: Any, input: dict[str, Any]) -> dict[str, Any]:
    """Speech segments of the audio, with the duration; each segment also goes out as partial output."""
    audio = input.get("audio")
    if not isinstance(audio, str):
        raise ValueError("'audio' must be a WAV data URI string")
    threshold = _param(input, "threshold", 0.5, 0.05, 0.95)
    min_silence = _param(input, "min_silence_ms", 300, 0, 10000) / 1000
    samples = decode_audio(audio, RATE)
    if len(samples) < WINDOW:
        raise ValueError("audio is shorter than 32 ms")
    duration = len(samples) / RATE
    probs = probabilities(ctx, samples)
    found = segments(probs, threshold=threshold, min_speech=0.25, min_silence=min_silence,
                     pad=0.03, duration=duration)
    listed: list[dict[str, float]] = []
    for start, end in found:
        listed.append({"start": start, "end": end})
        ctx.log(f"speech {start:.2f}s-{end:.2f}s")
        ctx.output({"segments": list(listed), "duration": round(duration, 3)})
    return {"segments": listed, "duration": round(duration, 3)}
