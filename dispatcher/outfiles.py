"""Binary outputs become files: the step before the fold that takes `data:` URIs out of outputs.

For every `output`, `succeeded`, `failed` or `canceled` event of a batch (and every held
event about to be applied), each base64 `data:` URI string in its output becomes a file of
the prediction's owner, and the output holds a `schemas.files.FileReference` in its place.
The rewritten event is what the fold sees, so the row, the history (the event's data is
encoded again) and the webhook bodies carry the reference, never the bytes. The caller
stores the files in the batch's transaction.

A file made from an outcome expires with the result (completion plus the result TTL, as
the fold computes it); one made from a partial `output` event gets the event's time plus
the TTL (the completion is not known yet), at most the rest of the run earlier.

File ids derive from the prediction id, the event's sequence and the value's place in
the output, so a replayed event names the same files (stored once). Events the fold
will skip (stale sequence, prediction already terminal) and events of predictions whose
owner is not known yet (they are held, and rewritten when they are applied) are left
as they are. Pure: no clock, no I/O.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dispatcher.fold import Current, Held, result_expires_at
from inferhook import datauri
from inferhook.filelinks import FileLinks
from schemas.events import Completed, Created, Output, PredictionEvent
from schemas.files import FILE_ID_PREFIX, OUTPUT_PURPOSE, FileReference
from schemas.status import Status
from store.files import StoredFile

_MARK = b'"data:'
"""How a data URI starts in JSON: events whose data lacks it hold none."""


@dataclass(frozen=True)
class _Owner:
    owner: str
    ttl: float | None


@dataclass
class Externalized:
    """The batch as the fold should see it, and the files to store with it."""

    events: list[PredictionEvent]
    raw: list[bytes] | None
    held: dict[str, list[Held]]
    files: list[StoredFile] = field(default_factory=list)


def output_file_id(prediction_id: str, sequence: int, path: Sequence[str | int]) -> str:
    """The id of the file made from the value at `path` of an event's output."""
    where = "/".join(str(part) for part in path)
    digest = hashlib.sha256(f"{prediction_id}\x00{sequence}\x00{where}".encode()).hexdigest()
    return FILE_ID_PREFIX + digest[:32]


def externalize(rows: Mapping[str, Current], events: Sequence[PredictionEvent],
                raw: Sequence[bytes] | None, held: Mapping[str, list[Held]],
                links: FileLinks) -> Externalized:
    """Replace the binary outputs of `events` and `held` by file references (see the module
    docstring); `raw` is each event's data as it came from Kafka, when given."""
    if raw is not None and not any(_MARK in data for data in raw) and not any(
            _MARK in item.raw for items in held.values() for item in items):
        return Externalized(list(events), list(raw), dict(held))  # most batches: nothing to do
    owners = {pid: _Owner(row.owner, row.result_ttl_seconds) for pid, row in rows.items()}
    for event in events:
        if isinstance(event.data, Created):
            owners.setdefault(event.subject, _Owner(event.data.owner,
                                                    event.data.result_ttl_seconds))
    files: dict[str, StoredFile] = {}
    out = Externalized(events=[], raw=None if raw is None else [], held={})
    for index, event in enumerate(events):
        data = raw[index] if raw is not None else None
        event, data = _rewrite(event, data, owners.get(event.subject), rows.get(event.subject),
                               links, files)
        out.events.append(event)
        if out.raw is not None and data is not None:
            out.raw.append(data)
    for pid, items in held.items():
        out.held[pid] = [Held(*_rewrite(item.event, item.raw, owners.get(pid), rows.get(pid),
                                        links, files)) for item in items]
    out.files = list(files.values())
    return out


def _rewrite(event: PredictionEvent, data: bytes | None, owner: _Owner | None,
             row: Current | None, links: FileLinks,
             files: dict[str, StoredFile]) -> tuple[PredictionEvent, bytes]:
    """The event with its binary output values as references, and its data encoded again
    (or both as they were when there is nothing to do)."""
    if data is not None and _MARK not in data:
        return event, data  # the common case, decided without looking further
    unchanged = (event, data if data is not None else event.value())
    payload = event.data
    if not isinstance(payload, Output | Completed) or payload.output is None or owner is None:
        return unchanged
    if row is not None and (Status(row.status).is_terminal() or event.sequence <= row.last_sequence):
        return unchanged  # the fold skips it
    at = payload.completed_at if isinstance(payload, Completed) else event.time
    made = _Files(event, owner, result_expires_at(at, owner.ttl), links)
    output = made.replace(payload.output, ())
    if not made.rows:
        return unchanged
    for row_made in made.rows:
        files.setdefault(row_made.id, row_made)
    rewritten = event.model_copy(update={"data": payload.model_copy(update={"output": output})})
    return rewritten, rewritten.value()


@dataclass
class _Files:
    """Walks one output, turning its data URIs into files and references."""

    event: PredictionEvent
    owner: _Owner
    expires_at: datetime
    links: FileLinks
    rows: list[StoredFile] = field(default_factory=list)

    def replace(self, value: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(value, dict):
            return {key: self.replace(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.replace(item, (*path, index)) for index, item in enumerate(value)]
        if not datauri.looks_like(value):
            return value
        try:
            content_type, content = datauri.decode(value)
        except ValueError:
            return value  # text that only starts like a data URI stays text
        return self._file(path, content_type, content)

    def _file(self, path: tuple[str | int, ...], content_type: str,
              content: bytes) -> dict[str, Any]:
        event = self.event
        file_id = output_file_id(event.subject, event.sequence, path)
        name = "-".join(["output", *(str(part) for part in path)])
        extension = mimetypes.guess_extension(content_type) or ""
        self.rows.append(StoredFile(
            id=file_id, owner=self.owner.owner, purpose=OUTPUT_PURPOSE,
            filename=name + extension, content_type=content_type, size=len(content),
            created_at=event.time, expires_at=self.expires_at, prediction_id=event.subject,
            content=content))
        reference = FileReference(file_id=file_id, url=self.links.url(file_id, self.expires_at),
                                  content_type=content_type, bytes=len(content))
        return reference.model_dump()
