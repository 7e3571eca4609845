"""The files' pure rules, without servers: signed links, data URIs, input references, and
the dispatcher's step that turns binary outputs into files."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from dispatcher.fold import Current, Held, fold, result_expires_at
from dispatcher.outfiles import externalize, output_file_id
from inferhook import datauri
from inferhook.filelinks import FileLinks
from inferhook.kafka import MAX_MESSAGE_BYTES
from inferhook.settings import FilesSettings
from ingest.inputs import MAX_INLINE_BYTES
from schemas.events import (
    Completed,
    Created,
    EventData,
    EventType,
    Logs,
    Output,
    PredictionEvent,
)
from schemas.files import FileReference, file_references, replace_references
from schemas.tables import FileRow
from store.files import StoredFile
from store.records import columns

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LINKS = FileLinks("http://api.test", b"k" * 32)
PNG = b"\x89PNG\r\n\x1a\nnot really"
PNG_URI = "data:image/png;base64," + base64.b64encode(PNG).decode()
WAV_URI = "data:audio/wav;base64," + base64.b64encode(b"RIFF....WAVE").decode()


def link_parts(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return parts.path.split("/")[3], query["expires"][0], query["signature"][0]


def test_a_signed_link_opens_its_file_until_it_expires() -> None:
    url = LINKS.url("file-a", T0 + timedelta(seconds=10))
    assert url.startswith("http://api.test/v1/files/file-a/content?")
    file_id, expires, signature = link_parts(url)
    assert LINKS.valid(file_id, expires, signature, T0)
    assert LINKS.valid(file_id, expires, signature, T0 + timedelta(seconds=9))
    assert not LINKS.valid(file_id, expires, signature, T0 + timedelta(seconds=10))


@pytest.mark.parametrize("change", ["file", "expires", "signature", "secret"])
def test_an_altered_link_opens_nothing(change: str) -> None:
    file_id, expires, signature = link_parts(LINKS.url("file-a", T0 + timedelta(hours=1)))
    links = LINKS
    if change == "file":
        file_id = "file-b"
    elif change == "expires":
        expires = str(int(expires) + 3600)
    elif change == "signature":
        signature = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    else:
        links = FileLinks(LINKS.base_url, b"another secret")
    assert not links.valid(file_id, expires, signature, T0)


@pytest.mark.parametrize("expires", ["", "-5", "1e9", "99999999999999999999", "١٢٣"])
def test_a_malformed_expiry_opens_nothing(expires: str) -> None:
    assert not LINKS.valid("file-a", expires, "sig", T0)


def test_a_non_ascii_signature_is_refused_not_an_error() -> None:
    _, expires, _ = link_parts(LINKS.url("file-a", T0 + timedelta(hours=1)))
    assert not LINKS.valid("file-a", expires, "é" * 43, T0)


def test_data_uris_round_trip_and_their_size_is_known() -> None:
    for media_type, data in (("image/png", PNG), ("audio/wav", b""), ("text/plain", b"ab")):
        uri = datauri.encode(media_type, data)
        assert datauri.decode(uri) == (media_type, data)
        assert datauri.encoded_size(media_type, len(data)) == len(uri)
    assert datauri.decode(f"data:image/png;base64,{base64.b64encode(PNG).decode()[:8]}\n "
                          f"{base64.b64encode(PNG).decode()[8:]}") == ("image/png", PNG)
    for bad in ("data:image/png;base64,***", "data:image/png;base64,QUJD\n*", "image/png,AAAA"):
        with pytest.raises(ValueError):
            datauri.decode(bad)


def test_a_stored_file_has_a_field_for_every_column() -> None:
    assert set(StoredFile.__dataclass_fields__) == set(columns(FileRow))


def test_the_largest_upload_fits_one_kafka_request() -> None:
    largest = FilesSettings().max_upload_bytes
    assert datauri.encoded_size("application/octet-stream", largest) < MAX_INLINE_BYTES
    assert MAX_INLINE_BYTES < MAX_MESSAGE_BYTES


def test_input_references_are_found_at_any_depth_and_replaced() -> None:
    given = {"audio": {"file_id": "file-1"}, "pages": [{"image": {"file_id": "file-2",
                                                                 "url": "ignored"}}],
             "text": "file-3", "n": 2, "bad": {"file_id": 7}}
    assert file_references(given) == [(("audio",), "file-1"), (("pages", 0, "image"), "file-2"),
                                      (("bad",), 7)]
    inlined = replace_references(given, lambda file_id: f"<{file_id}>")
    assert inlined == {"audio": "<file-1>", "pages": [{"image": "<file-2>"}], "text": "file-3",
                       "n": 2, "bad": "<7>"}
    assert given["audio"] == {"file_id": "file-1"}, "the input itself is left as it was"


def event(seq: int, data: EventData, pid: str = "p1", event_type: EventType | None = None,
          at: datetime = T0) -> PredictionEvent:
    kind = event_type or {Created: EventType.CREATED, Output: EventType.OUTPUT,
                          Logs: EventType.LOGS}[type(data)]
    return PredictionEvent(id=f"{pid}-{seq}", source="test", type=kind, time=at, subject=pid,
                           sequence=seq, data=data)


def created(pid: str = "p1", ttl: float | None = 60.0, webhook: str | None = "http://h.test/h",
            owner: str = "alice") -> PredictionEvent:
    return event(0, Created(owner=owner, model="inferhook/dcgan-faces", input={"n": 2},
                            webhook=webhook, webhook_events_filter=["output", "completed"],
                            created_at=T0, result_ttl_seconds=ttl), pid)


def succeeded(output: Any, pid: str = "p1", seq: int = 99,
              at: datetime = T0 + timedelta(seconds=5)) -> PredictionEvent:
    return event(seq, Completed(completed_at=at, output=output), pid, EventType.SUCCEEDED)


def raw_of(events: list[PredictionEvent]) -> list[bytes]:
    return [e.value() for e in events]


def test_binary_outputs_become_references_in_row_history_and_webhooks() -> None:
    output = {"images": [PNG_URI, PNG_URI], "seed": 7, "note": "data: not a uri"}
    events = [created(), succeeded(output)]
    batch = externalize({}, events, raw_of(events), {}, LINKS)
    assert [f.id for f in batch.files] == [output_file_id("p1", 99, ("images", 0)),
                                           output_file_id("p1", 99, ("images", 1))]
    expires = result_expires_at(T0 + timedelta(seconds=5), 60.0)
    for file in batch.files:
        assert (file.owner, file.prediction_id, file.purpose) == ("alice", "p1", "output")
        assert (file.content, file.size, file.content_type) == (PNG, len(PNG), "image/png")
        assert file.expires_at == expires and file.filename.endswith(".png")
    new_output = batch.events[1].data.output  # type: ignore[union-attr]
    assert new_output["seed"] == 7 and new_output["note"] == "data: not a uri"
    references = [FileReference.model_validate(r) for r in new_output["images"]]
    assert [r.file_id for r in references] == [f.id for f in batch.files]
    for reference in references:
        assert reference.content_type == "image/png" and reference.bytes == len(PNG)
        assert LINKS.valid(*link_parts(reference.url), now=expires - timedelta(seconds=1))
        assert not LINKS.valid(*link_parts(reference.url), now=expires + timedelta(seconds=1))
    assert batch.raw is not None and orjson.loads(batch.raw[1])["output"] == new_output
    folded = fold({}, batch.events, LINKS.base_url, batch.raw)
    row = folded.rows["p1"]
    assert row.output == new_output and row.expires_at == expires
    assert all(b"data:image" not in entry.data for entry in folded.history)
    assert folded.intents and all(b"data:image" not in i.body for i in folded.intents)


def test_a_replayed_event_names_the_same_files() -> None:
    events = [created(), succeeded({"audio": WAV_URI})]
    first = externalize({}, events, raw_of(events), {}, LINKS)
    again = externalize({}, events, raw_of(events), {}, LINKS)
    assert [f.id for f in first.files] == [f.id for f in again.files]
    assert first.raw == again.raw


def test_partial_outputs_expire_a_ttl_after_their_event() -> None:
    at = T0 + timedelta(seconds=2)
    events = [created(ttl=None), event(3, Output(output={"frames": [PNG_URI]}), at=at)]
    batch = externalize({}, events, raw_of(events), {}, LINKS)
    assert [f.expires_at for f in batch.files] == [result_expires_at(at, None)]
    assert [f.id for f in batch.files] == [output_file_id("p1", 3, ("frames", 0))]


def current(status: str = "started", last_sequence: int = 2, owner: str = "bob") -> Current:
    return Current(id="p1", owner=owner, model="m", status=status, webhook=None,
                   webhook_events_filter=[], created_at=T0, last_sequence=last_sequence,
                   result_ttl_seconds=30.0)


def test_the_owner_and_ttl_come_from_the_row_when_the_prediction_is_known() -> None:
    events = [succeeded(PNG_URI)]
    batch = externalize({"p1": current()}, events, raw_of(events), {}, LINKS)
    assert [(f.owner, f.expires_at) for f in batch.files] == [
        ("bob", result_expires_at(T0 + timedelta(seconds=5), 30.0))]
    assert FileReference.model_validate(batch.events[0].data.output)  # type: ignore[union-attr]


def test_events_the_fold_skips_make_no_files() -> None:
    stale, late = succeeded(PNG_URI, seq=2), succeeded(PNG_URI)
    for row, events in ((current(last_sequence=2), [stale]), (current(status="succeeded"), [late])):
        batch = externalize({"p1": row}, events, raw_of(events), {}, LINKS)
        assert batch.files == [] and batch.events == events and batch.raw == raw_of(events)


def test_events_of_unknown_predictions_stay_as_they_are_until_applied() -> None:
    early = succeeded({"image": PNG_URI})
    batch = externalize({}, [early], raw_of([early]), {}, LINKS)
    assert batch.files == [] and batch.raw == raw_of([early])
    held = {"p1": [Held(early, early.value())]}
    later = externalize({}, [created()], raw_of([created()]), held, LINKS)
    assert [f.id for f in later.files] == [output_file_id("p1", 99, ("image",))]
    rewritten = later.held["p1"][0]
    assert b"data:image" not in rewritten.raw
    assert rewritten.event.data.output["image"]["file_id"] == later.files[0].id  # type: ignore[union-attr]


def test_outputs_without_binary_values_are_untouched() -> None:
    events = [created(), event(3, Logs(logs="data:image/png;base64,AAAA")),
              succeeded({"text": "hello", "uri": "data:image/png;base64,***"})]
    raw = raw_of(events)
    batch = externalize({}, events, raw, {}, LINKS)
    assert batch.files == [] and batch.events == events and batch.raw == raw
