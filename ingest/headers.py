"""Request headers the API understands, parsed by pure functions.

| header            | example              | on                               | bad value            |
|-------------------|----------------------|----------------------------------|----------------------|
| `Prefer`          | `wait`, `wait=5`     | create, GET, cancel              | ignored (RFC 7240)   |
| `Cancel-After`    | `30s`, `5m`, `1h30m` | create                           | 400                  |
| `Result-TTL`      | `600`, `10m`         | create                           | server default       |
| `x-bf-async-job-result-ttl` | `3600`     | async create (Result-TTL alias)  | server default       |
| `Idempotency-Key` | any 1-255 ASCII      | create                           | 400                  |
"""

from __future__ import annotations

import re
from datetime import timedelta

from ingest.errors import BadRequest
from ingest.openapi import HeaderParam
from schemas.api import ProblemItem

MAX_CANCEL_AFTER = timedelta(days=7)
MAX_RESULT_TTL_SECONDS = 30 * 24 * 3600.0
_DURATION = re.compile(r"^(?:(\d{1,6})h)?(?:(\d{1,8})m)?(?:(\d{1,9}(?:\.\d{1,6})?)s)?$")
_WAIT = re.compile(r"^wait(?:=(\d{1,9}))?$", re.IGNORECASE)
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def parse_duration(value: str) -> timedelta | None:
    """`30s`, `5m`, `1h30m`, `90` (seconds); None when the text is not such a duration."""
    text = value.strip().lower()
    if not text:
        return None
    try:
        return timedelta(seconds=float(text)) if text.replace(".", "", 1).isdigit() else _units(text)
    except OverflowError:
        return None


def _units(text: str) -> timedelta | None:
    match = _DURATION.match(text)
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return timedelta(hours=int(hours or 0), minutes=int(minutes or 0), seconds=float(seconds or 0))


def prefer_wait(header: str | None, maximum: int) -> int | None:
    """Seconds asked for by `Prefer: wait[=n]`, clamped to 1..maximum; None when not asked.

    Unknown or malformed preferences are ignored, as RFC 7240 says a server should.
    """
    if not header:
        return None
    for preference in header.split(","):
        token = preference.split(";", 1)[0].strip().replace(" ", "")
        match = _WAIT.match(token)
        if match:
            asked = int(match.group(1)) if match.group(1) else maximum
            return max(1, min(asked, maximum))
    return None


def cancel_after(header: str | None) -> timedelta | None:
    """The `Cancel-After` duration; 400 when present but not a positive duration up to 7 days."""
    if header is None:
        return None
    duration = parse_duration(header)
    if duration is None or not timedelta(0) < duration <= MAX_CANCEL_AFTER:
        msg = "Cancel-After must be a duration like 30s, 5m or 1h30m, above 0 and at most 7 days"
        raise BadRequest(msg, [ProblemItem(loc=["header", "Cancel-After"], msg=msg)])
    return duration


def result_ttl(header: str | None) -> float | None:
    """Seconds from `Result-TTL`; None (the server default) when absent, invalid or not above 0."""
    if header is None:
        return None
    duration = parse_duration(header)
    if duration is None or duration <= timedelta(0):
        return None
    return min(duration.total_seconds(), MAX_RESULT_TTL_SECONDS)


def idempotency_key(header: str | None) -> str | None:
    """The `Idempotency-Key`; 400 unless it is 1-255 visible ASCII characters."""
    if header is None:
        return None
    if not _IDEMPOTENCY_KEY.match(header):
        msg = "Idempotency-Key must be 1 to 255 visible ASCII characters"
        raise BadRequest(msg, [ProblemItem(loc=["header", "Idempotency-Key"], msg=msg)])
    return header


PREFER_DOC = HeaderParam(
    "Prefer", "`wait` or `wait=n` (1-60 s): answer once the prediction is terminal or the time "
    "is up; the answer then carries `Preference-Applied`",
    {"type": "string", "pattern": r"^wait(=[1-9][0-9]?)?$"})
CANCEL_AFTER_DOC = HeaderParam(
    "Cancel-After", "End the prediction `canceled` (reason `deadline`) if not finished by then: "
    "`30s`, `5m`, `1h30m` (at most 7 days)",
    {"type": "string", "pattern": r"^([1-9][0-9]?h)?([1-9][0-9]?m)?([1-9][0-9]?s)?$", "minLength": 2})
RESULT_TTL_DOC = HeaderParam(
    "Result-TTL", "Keep input, output and logs this long after completion (seconds or `10m`); "
    "invalid or not above 0: the server default (1 h)")
RESULT_TTL_ALIAS = "x-bf-async-job-result-ttl"
"""The gateway's name for Result-TTL, taken by `/v1/async/<kind>` creates (Result-TTL wins)."""
RESULT_TTL_ALIAS_DOC = HeaderParam(
    RESULT_TTL_ALIAS, "Alias of Result-TTL (the gateway's name); Result-TTL wins when both are sent")
IDEMPOTENCY_KEY_DOC = HeaderParam(
    "Idempotency-Key", "Same key and same body within 24 h: the original prediction again "
    "(200, `Idempotent-Replayed: true`); same key, other body: 409",
    {"type": "string", "pattern": r"^[!-~]{1,255}$"})
