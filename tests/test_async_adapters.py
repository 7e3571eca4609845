"""The async API's pure parts, without servers: adapters (body → model input, output →
result), the job view of a prediction, and the kind carried from `created` to the row."""

from __future__ import annotations

import base64
import io
import json
import struct
import wave
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PIL import Image
from pydantic import ValidationError

from dispatcher.fold import fold
from inferhook.catalog import CatalogEntry, load_catalog
from inferhook.settings import Settings
from ingest.adapters import ADAPTERS
from ingest.adapters.base import ModelRequest
from ingest.body import parse
from ingest.errors import Unprocessable
from ingest.forms import Upload
from ingest.jobs import job_of, visible, wants_files
from ingest.tasks import relocated
from schemas.api import JobStatus, ProblemItem
from schemas.events import CREATED_SEQUENCE, Completed, Created, EventType, PredictionEvent
from schemas.manifest import ModelManifest
from schemas.results import RESULTS, Finished, OutputMismatch
from schemas.tables import PredictionRow
from schemas.tasks import TaskKind

NOW = datetime(2026, 2, 19, 8, 10, 17, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog() -> dict[str, CatalogEntry]:
    """The real manifests (nothing needs to be built to read them)."""
    return load_catalog(Settings().models_dir)


def png(width: int = 8, height: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def wav(seconds: float = 0.2, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x01\x00" * int(seconds * rate))
    return buffer.getvalue()


def uri(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def convert(kind: TaskKind, data: dict[str, Any], entry: CatalogEntry) -> ModelRequest:
    adapter = ADAPTERS[kind]
    return adapter.request(parse(adapter.body, data), entry)


def refused(kind: TaskKind, data: dict[str, Any], entry: CatalogEntry) -> list[list[str | int]]:
    """The locations of the 422 the request gets (from pydantic or from the adapter)."""
    with pytest.raises(Unprocessable) as caught:
        convert(kind, data, entry)
    assert caught.value.errors, "a 422 lists its problems"
    return [item.loc for item in caught.value.errors]


def finished(output: Any, options: dict[str, Any] | None = None,
             model_input: dict[str, Any] | None = None,
             files: dict[str, bytes] | None = None) -> Finished:
    return Finished(id="0196-abc", model="inferhook/m", created_at=NOW, input=model_input or {},
                    output=output, options=options or {}, files=files or {})


# --- kinds and manifests ---------------------------------------------------------------------

def test_every_kind_has_its_adapter() -> None:
    assert set(ADAPTERS) == set(TaskKind)
    assert all(adapter.kind is kind for kind, adapter in ADAPTERS.items())
    assert {k for k in TaskKind if k.multipart} == {
        TaskKind.TRANSCRIPTIONS, TaskKind.IMAGE_EDITS, TaskKind.IMAGE_VARIATIONS}


def test_manifest_kinds_are_checked_against_the_known_names(catalog: dict[str, CatalogEntry]) -> None:
    raw = catalog["inferhook/ocr"].manifest.model_dump()
    with pytest.raises(ValidationError):
        ModelManifest.model_validate({**raw, "kinds": ["ocr", "telepathy"]})
    assert catalog["inferhook/all-minilm-l6-v2"].manifest.kinds == [TaskKind.EMBEDDINGS,
                                                                     TaskKind.RERANK]
    assert catalog["inferhook/minilm"].manifest.kinds == [TaskKind.EMBEDDINGS]
    assert catalog["inferhook/ocr"].manifest.kinds == [TaskKind.OCR]
    assert catalog["inferhook/dcgan-faces"].manifest.kinds == [TaskKind.IMAGE_GENERATIONS]
    assert catalog["inferhook/smollm2"].manifest.kinds == [
        TaskKind.CHAT_COMPLETIONS, TaskKind.COMPLETIONS, TaskKind.RESPONSES]
    assert catalog["inferhook/whisper-tiny-en"].manifest.kinds == [TaskKind.TRANSCRIPTIONS]
    assert catalog["inferhook/piper-joe"].manifest.kinds == [TaskKind.SPEECH]
    assert catalog["inferhook/digits"].manifest.kinds == []


# --- embeddings --------------------------------------------------------------------------------

def test_embeddings_input_becomes_texts_or_one_text(catalog: dict[str, CatalogEntry]) -> None:
    many, one = catalog["inferhook/all-minilm-l6-v2"], catalog["inferhook/minilm"]
    body = {"model": many.name, "input": "a cat"}
    assert convert(TaskKind.EMBEDDINGS, body, many) == ModelRequest(
        {"texts": ["a cat"]}, {"encoding_format": "float"})
    assert convert(TaskKind.EMBEDDINGS, {**body, "input": ["a", "b"], "encoding_format": "base64"},
                   many) == ModelRequest({"texts": ["a", "b"]}, {"encoding_format": "base64"})
    assert convert(TaskKind.EMBEDDINGS, {**body, "input": ["a"]}, one).input == {"text": "a"}
    assert refused(TaskKind.EMBEDDINGS, {**body, "input": ["a", "b"]}, one) == [["body", "input"]]


@pytest.mark.parametrize(("body", "loc"), [
    ({"input": ""}, ["body", "input"]),
    ({"input": []}, ["body", "input"]),
    ({"input": "x", "encoding_format": "int8"}, ["body", "encoding_format"]),
    ({"input": "x", "dimensions": 8}, ["body", "dimensions"]),
    ({}, ["body", "input"]),
])
def test_embeddings_schema_errors_have_paths(catalog: dict[str, CatalogEntry], body: dict[str, Any],
                                             loc: list[str]) -> None:
    entry = catalog["inferhook/all-minilm-l6-v2"]
    # Which branch of a union failed follows the field's name (pydantic's tag): the prefix counts.
    assert loc in [found[:len(loc)] for found in
                   refused(TaskKind.EMBEDDINGS, {"model": entry.name, **body}, entry)]


def test_embeddings_result_as_floats_or_base64() -> None:
    adapter = ADAPTERS[TaskKind.EMBEDDINGS]
    vectors = [[0.5, -0.25, 1.0], [0.0, 0.125, -1.0]]
    output = {"embeddings": vectors, "token_counts": [4, 6]}
    result = adapter.result(finished(output, {"encoding_format": "float"}))
    assert result == {"object": "list", "model": "inferhook/m",
                      "data": [{"object": "embedding", "index": 0, "embedding": vectors[0]},
                               {"object": "embedding", "index": 1, "embedding": vectors[1]}],
                      "usage": {"prompt_tokens": 10, "total_tokens": 10}}
    packed = adapter.result(finished(output, {"encoding_format": "base64"}))["data"][1]["embedding"]
    assert list(struct.unpack("<3f", base64.b64decode(packed))) == vectors[1]
    single = adapter.result(finished({"embedding": vectors[0]}))
    assert single["data"] == [{"object": "embedding", "index": 0, "embedding": vectors[0]}]
    assert "usage" not in single  # this model does not count tokens


# --- rerank ------------------------------------------------------------------------------------

def test_rerank_request_and_result_most_relevant_first(catalog: dict[str, CatalogEntry]) -> None:
    entry, adapter = catalog["inferhook/all-minilm-l6-v2"], ADAPTERS[TaskKind.RERANK]
    converted = convert(TaskKind.RERANK, {"model": entry.name, "query": "bread",
                                          "documents": ["stocks", {"text": "baking"}, "cats"],
                                          "top_n": 2}, entry)
    assert converted.input == {"query": "bread", "documents": ["stocks", "baking", "cats"]}
    output = {"scores": [0.1, 0.8, 0.1], "token_counts": [3, 3, 3, 3]}
    result = adapter.result(finished(output, converted.options, converted.input))
    assert result == {"id": "0196-abc", "model": "inferhook/m", "usage": {"total_tokens": 12},
                      "results": [{"index": 1, "relevance_score": 0.8, "document": {"text": "baking"}},
                                  {"index": 0, "relevance_score": 0.1, "document": {"text": "stocks"}}]}
    bare = adapter.result(finished(output, {"return_documents": False}, converted.input))
    assert [r for r in bare["results"] if "document" in r] == []
    assert [r["index"] for r in bare["results"]] == [1, 0, 2]
    with pytest.raises(OutputMismatch):
        adapter.result(finished({"scores": [0.1]}, {}, converted.input))


def test_rerank_needs_a_query_and_documents(catalog: dict[str, CatalogEntry]) -> None:
    entry = catalog["inferhook/all-minilm-l6-v2"]
    locs = refused(TaskKind.RERANK, {"model": entry.name, "query": "", "documents": [],
                                     "top_n": 0}, entry)
    assert {tuple(loc[:2]) for loc in locs} == {("body", "query"), ("body", "documents"),
                                                 ("body", "top_n")}


# --- ocr ---------------------------------------------------------------------------------------

def test_ocr_takes_an_image_data_uri(catalog: dict[str, CatalogEntry]) -> None:
    entry = catalog["inferhook/ocr"]
    image = uri("image/png", png())
    for given in (image, {"url": image}):
        body = {"model": entry.name, "document": {"type": "image_url", "image_url": given}}
        assert convert(TaskKind.OCR, body, entry).input == {"image": image}


@pytest.mark.parametrize("image_url", [
    "https://example.com/page.png",                       # not fetched
    uri("image/png", b"not a png at all"),                 # undecodable
    uri("text/plain", b"hello"),                           # not an image
    "data:image/png;base64,@@@",                           # bad base64
])
def test_ocr_refuses_what_is_not_a_readable_image(catalog: dict[str, CatalogEntry],
                                                  image_url: str) -> None:
    entry = catalog["inferhook/ocr"]
    body = {"model": entry.name, "document": {"type": "image_url", "image_url": image_url}}
    assert refused(TaskKind.OCR, body, entry) == [["body", "document", "image_url"]]


def test_ocr_takes_an_uploaded_file(catalog: dict[str, CatalogEntry]) -> None:
    entry = catalog["inferhook/ocr"]
    body = {"model": entry.name, "document": {"type": "file", "file_id": "file-1"}}
    assert convert(TaskKind.OCR, body, entry).input == {"image": {"file_id": "file-1"}}


def test_ocr_refuses_documents_it_cannot_read(catalog: dict[str, CatalogEntry]) -> None:
    entry = catalog["inferhook/ocr"]
    body = {"model": entry.name, "document": {"type": "document_url",
                                              "document_url": "https://example.com/a.pdf"}}
    assert all(loc[:2] == ["body", "document"] for loc in refused(TaskKind.OCR, body, entry))


def test_ocr_result_is_one_markdown_page() -> None:
    lines = [{"text": "Invoice 42", "confidence": 0.9, "box": [0, 0, 9, 9]},
             {"text": "  ", "confidence": 0.2, "box": [0, 9, 9, 12]},
             {"text": "Total: 3 EUR", "confidence": 0.9, "box": [0, 12, 9, 20]}]
    result = ADAPTERS[TaskKind.OCR].result(finished({"text": "…", "lines": lines}))
    assert result == {"model": "inferhook/m", "usage_info": {"pages_processed": 1},
                      "pages": [{"index": 0, "markdown": "Invoice 42\n\nTotal: 3 EUR"}]}


# --- images ------------------------------------------------------------------------------------

def test_image_generation_request(catalog: dict[str, CatalogEntry]) -> None:
    entry = catalog["inferhook/dcgan-faces"]
    body = {"model": entry.name, "prompt": "a face", "n": 2, "seed": 7, "size": "64x64"}
    assert convert(TaskKind.IMAGE_GENERATIONS, body, entry) == ModelRequest(
        {"n": 2, "seed": 7}, {"response_format": "url"})
    assert convert(TaskKind.IMAGE_GENERATIONS, {"model": entry.name}, entry).input == {"n": 1}
    assert refused(TaskKind.IMAGE_GENERATIONS, {**body, "size": "1024x1024"}, entry) == [
        ["body", "size"]]
    assert refused(TaskKind.IMAGE_GENERATIONS, {**body, "n": 0}, entry) == [["body", "n"]]


def reference(file_id: str, content_type: str, size: int) -> dict[str, Any]:
    """A binary output value as the dispatcher records it once stored as a file."""
    return {"file_id": file_id, "url": f"http://x/v1/files/{file_id}/content?expires=1&signature=s",
            "content_type": content_type, "bytes": size}


def test_image_result_links_or_base64_of_the_stored_files() -> None:
    adapter = ADAPTERS[TaskKind.IMAGE_GENERATIONS]
    pngs = [png(), png(4, 4)]
    stored = [reference(f"file-{i}", "image/png", len(p)) for i, p in enumerate(pngs)]
    output = {"images": stored, "seed": 9}
    assert not adapter.needs_files({"response_format": "url"})
    assert adapter.result(finished(output)) == {
        "created": int(NOW.timestamp()), "seed": 9,
        "data": [{"url": image["url"]} for image in stored]}
    assert adapter.needs_files({"response_format": "b64_json"})
    contents = {f"file-{i}": p for i, p in enumerate(pngs)}
    b64 = adapter.result(finished(output, {"response_format": "b64_json"}, files=contents))
    assert [base64.b64decode(d["b64_json"]) for d in b64["data"]] == pngs
    with pytest.raises(OutputMismatch):  # the file went before the job was read
        adapter.result(finished(output, {"response_format": "b64_json"}, files={}))
    with pytest.raises(OutputMismatch):
        adapter.result(finished({"images": [reference("f", "text/plain", 1)], "seed": 1}))


def test_image_result_of_an_output_not_stored_as_files() -> None:
    adapter = ADAPTERS[TaskKind.IMAGE_GENERATIONS]
    images = [uri("image/png", png())]
    assert adapter.result(finished({"images": images, "seed": 1}))["data"] == [{"url": images[0]}]
    assert adapter.result(finished({"images": images, "seed": 1}, {"response_format": "b64_json"}))[
        "data"] == [{"b64_json": images[0].split(",", 1)[1]}]
    with pytest.raises(OutputMismatch):
        adapter.result(finished({"images": ["data:text/plain;base64,AA=="], "seed": 1}))


def test_image_edits_and_variations_take_decodable_images(catalog: dict[str, CatalogEntry]) -> None:
    entry = catalog["inferhook/dcgan-faces"]  # any entry: no model serves these kinds yet
    good, bad = Upload("a.png", "image/png", png()), Upload("a.png", "image/png", b"\x89PNG broken")
    edit = {"model": entry.name, "image": good, "prompt": "add a hat", "n": 1}
    assert convert(TaskKind.IMAGE_EDITS, edit, entry).input == {
        "image": uri("image/png", png()), "prompt": "add a hat", "n": 1}
    assert refused(TaskKind.IMAGE_EDITS, {**edit, "image": bad}, entry) == [["body", "image"]]
    assert refused(TaskKind.IMAGE_EDITS, {**edit, "image": "not a file"}, entry) == [
        ["body", "image"]]
    assert refused(TaskKind.IMAGE_VARIATIONS, {"model": entry.name, "image": bad}, entry) == [
        ["body", "image"]]


# --- audio -------------------------------------------------------------------------------------

def test_speech_request_and_result(catalog: dict[str, CatalogEntry]) -> None:
    entry, adapter = catalog["inferhook/ocr"], ADAPTERS[TaskKind.SPEECH]
    body = {"model": "inferhook/piper-joe", "input": "Hello there.", "voice": "alloy", "speed": 1.5}
    assert convert(TaskKind.SPEECH, body, entry).input == {"text": "Hello there.", "speed": 1.5}
    assert refused(TaskKind.SPEECH, {**body, "response_format": "mp3"}, entry) == [
        ["body", "response_format"]]
    stored = reference("file-a", "audio/wav", 4410)
    assert adapter.result(finished({"audio": stored, "sample_rate": 22050, "duration": 0.1})) == {
        "content_type": "audio/wav", "url": stored["url"], "file_id": "file-a", "bytes": 4410,
        "sample_rate": 22050, "duration": 0.1}
    audio = uri("audio/wav", wav())
    assert adapter.result(finished({"audio": audio, "sample_rate": 22050, "duration": 0.2})) == {
        "content_type": "audio/wav", "url": audio, "sample_rate": 22050, "duration": 0.2}
    with pytest.raises(OutputMismatch):
        adapter.result(finished({"audio": "https://x/a.mp3", "sample_rate": 1, "duration": 1}))
    with pytest.raises(OutputMismatch):
        adapter.result(finished({"audio": reference("f", "image/png", 1), "sample_rate": 1,
                                 "duration": 1}))


def test_transcription_request_checks_the_wav(catalog: dict[str, CatalogEntry]) -> None:
    entry = catalog["inferhook/ocr"]
    body = {"model": "inferhook/whisper-tiny-en", "file": Upload("a.wav", "audio/wav", wav()),
            "prompt": "Paris", "response_format": "verbose_json"}
    assert convert(TaskKind.TRANSCRIPTIONS, body, entry) == ModelRequest(
        {"audio": uri("audio/wav", wav()), "prompt": "Paris"}, {"response_format": "verbose_json"})
    mp3 = Upload("a.mp3", "audio/mpeg", b"ID3\x03\x00\x00\x00" + bytes(100))
    assert refused(TaskKind.TRANSCRIPTIONS, {**body, "file": mp3}, entry) == [["body", "file"]]
    assert refused(TaskKind.TRANSCRIPTIONS, {**body, "file": Upload("e.wav", "audio/wav",
                                                                    wav(0))}, entry) == [["body", "file"]]
    assert refused(TaskKind.TRANSCRIPTIONS, {**body, "language": "fr"}, entry) == [
        ["body", "language"]]
    assert refused(TaskKind.TRANSCRIPTIONS, {**body, "response_format": "srt"}, entry) == [
        ["body", "response_format"]]


def test_transcription_result_in_each_format() -> None:
    adapter = ADAPTERS[TaskKind.TRANSCRIPTIONS]
    segments = [{"id": 0, "start": 0.0, "end": 1.5, "text": " Hello."},
                {"id": 1, "start": 1.5, "end": 2.1, "text": " Bye."}]
    output = {"text": " Hello. Bye.", "language": "en", "duration": 2.1, "segments": segments}
    usage = {"type": "duration", "seconds": 3}
    assert adapter.result(finished(output)) == {"text": "Hello. Bye.", "usage": usage}
    assert adapter.result(finished(output, {"response_format": "text"})) == "Hello. Bye."
    assert adapter.result(finished(output, {"response_format": "verbose_json"})) == {
        "task": "transcribe", "language": "english", "duration": 2.1, "text": "Hello. Bye.",
        "segments": segments, "usage": usage}


# --- chat, completions, responses --------------------------------------------------------------

def test_chat_messages_become_model_messages(catalog: dict[str, CatalogEntry]) -> None:
    entry = catalog["inferhook/ocr"]
    body = {"model": "inferhook/smollm2", "max_tokens": 50, "max_completion_tokens": 20,
            "temperature": 0, "stop": ["\n\n"], "seed": 3, "n": 1, "stream": False,
            "messages": [{"role": "developer", "content": "Be brief."},
                         {"role": "user", "content": [{"type": "text", "text": "What is"},
                                                      {"type": "text", "text": "the capital?"}]}]}
    assert convert(TaskKind.CHAT_COMPLETIONS, body, entry).input == {
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "What is\nthe capital?"}],
        "max_tokens": 20, "temperature": 0, "stop": ["\n\n"], "seed": 3}
    assert refused(TaskKind.CHAT_COMPLETIONS, {**body, "stream": True}, entry) == [
        ["body", "stream"]]
    assert refused(TaskKind.CHAT_COMPLETIONS, {**body, "n": 2}, entry) == [["body", "n"]]
    image = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
    assert all(loc[:3] == ["body", "messages", 0]
               for loc in refused(TaskKind.CHAT_COMPLETIONS, {**body, "messages": [image]}, entry))


def test_completion_and_responses_requests(catalog: dict[str, CatalogEntry]) -> None:
    entry = catalog["inferhook/ocr"]
    assert convert(TaskKind.COMPLETIONS, {"model": "m/m", "prompt": ["Once upon"]},
                   entry).input == {"prompt": "Once upon", "max_tokens": 16}
    assert convert(TaskKind.RESPONSES, {"model": "m/m", "input": "Hi", "instructions": "Be kind.",
                                        "max_output_tokens": 32, "top_p": 0.9}, entry).input == {
        "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}],
        "max_tokens": 32, "top_p": 0.9}
    listed = {"model": "m/m", "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Hello"}]}]}
    assert convert(TaskKind.RESPONSES, listed, entry).input == {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}


GENERATED = {"text": "Paris.", "finish_reason": "stop",
             "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}


def test_generation_results_in_openai_shapes() -> None:
    created = int(NOW.timestamp())
    assert ADAPTERS[TaskKind.CHAT_COMPLETIONS].result(finished(GENERATED)) == {
        "id": "chatcmpl-0196-abc", "object": "chat.completion", "created": created,
        "model": "inferhook/m", "usage": GENERATED["usage"],
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Paris.", "refusal": None}}]}
    assert ADAPTERS[TaskKind.COMPLETIONS].result(finished(GENERATED))["choices"] == [
        {"text": "Paris.", "index": 0, "logprobs": None, "finish_reason": "stop"}]
    cut = ADAPTERS[TaskKind.RESPONSES].result(finished({**GENERATED, "finish_reason": "length"}))
    assert cut["status"] == "incomplete"
    assert cut["incomplete_details"] == {"reason": "max_output_tokens"}
    assert cut["output"][0]["content"] == [{"type": "output_text", "text": "Paris.",
                                            "annotations": []}]
    assert cut["usage"] == {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}
    with pytest.raises(OutputMismatch):
        ADAPTERS[TaskKind.CHAT_COMPLETIONS].result(finished({**GENERATED, "finish_reason": "x"}))


# --- schema problems of the model input, at the body fields they came from ---------------------

def test_model_input_problems_are_reported_at_body_fields() -> None:
    error = Unprocessable("2 problem(s) with `input`", [
        ProblemItem(loc=["body", "input", "texts", 3], msg="too long"),
        ProblemItem(loc=["body", "input"], msg="not one of the shapes"),
        ProblemItem(loc=["body", "webhook"], msg="unsafe")])
    moved = relocated(error, ADAPTERS[TaskKind.EMBEDDINGS])
    assert [item.loc for item in moved.errors] == [["body", "input", 3], ["body"],
                                                   ["body", "webhook"]]
    ocr = relocated(Unprocessable("x", [ProblemItem(loc=["body", "input", "image", "file_id"],
                                                    msg="m")]), ADAPTERS[TaskKind.OCR])
    assert ocr.errors[0].loc == ["body", "document", "file_id"]


# --- the job view ------------------------------------------------------------------------------

def row(status: str, **fields: Any) -> PredictionRow:
    values: dict[str, Any] = {
        "id": "p1", "owner": "alice", "model": "inferhook/all-minilm-l6-v2", "status": status,
        "input": {"texts": ["a"]}, "created_at": NOW, "last_sequence": 0, "kind": "embeddings",
        "task_options": {"encoding_format": "float"}}
    return PredictionRow(**{**values, **fields})


def test_job_status_words_and_codes() -> None:
    adapter = ADAPTERS[TaskKind.EMBEDDINGS]
    pending = job_of(row("pending"), adapter)
    assert pending.model_dump(exclude_none=True) == {"id": "p1", "status": JobStatus.PENDING,
                                                     "created_at": NOW}
    assert job_of(row("started"), adapter).status is JobStatus.PROCESSING
    done_at = NOW + timedelta(seconds=2)
    succeeded = job_of(row("succeeded", output={"embeddings": [[1.0]], "token_counts": [3]},
                           completed_at=done_at, expires_at=done_at + timedelta(hours=1)), adapter)
    assert (succeeded.status, succeeded.status_code, succeeded.error) == (JobStatus.COMPLETED, 200, None)
    assert succeeded.result["data"][0]["embedding"] == [1.0]
    assert succeeded.expires_at == done_at + timedelta(hours=1)
    failed = job_of(row("failed", error={"reason": "input_invalid", "message": "empty text"},
                        completed_at=done_at), adapter)
    assert (failed.status, failed.status_code, failed.result) == (JobStatus.FAILED, 400, None)
    assert failed.error is not None
    assert failed.error.model_dump(exclude_none=True) == {"error": {
        "message": "empty text", "type": "invalid_request_error", "code": "input_invalid"}}
    canceled = job_of(row("canceled", error={"reason": "canceled_by_user", "message": "asked"},
                          completed_at=done_at), adapter)
    assert (canceled.status, canceled.status_code) == (JobStatus.FAILED, 499)


def test_an_output_the_adapter_cannot_read_fails_the_job() -> None:
    job = job_of(row("succeeded", output={"something": "else"}, completed_at=NOW),
                 ADAPTERS[TaskKind.EMBEDDINGS])
    assert (job.status, job.status_code) == (JobStatus.FAILED, 500)
    assert job.error is not None and job.error.error.code == "output_mismatch"


def test_the_job_asks_for_file_content_only_when_its_result_needs_it() -> None:
    images = {"images": [reference("file-1", "image/png", 3), reference("file-2", "image/png", 3)],
              "seed": 1}
    adapter = ADAPTERS[TaskKind.IMAGE_GENERATIONS]
    done = row("succeeded", output=images, kind="images/generations")
    assert wants_files(done, adapter) == []  # links
    wanted = row("succeeded", output=images, kind="images/generations",
                 task_options={"response_format": "b64_json"})
    assert wants_files(wanted, adapter) == ["file-1", "file-2"]
    assert wants_files(row("started", kind="images/generations",
                           task_options={"response_format": "b64_json"}), adapter) == []
    job = job_of(wanted, adapter, {"file-1": b"one", "file-2": b"two"})
    assert [d["b64_json"] for d in job.result["data"]] == ["b25l", "dHdv"]


def test_a_job_is_visible_for_its_kind_until_it_expires() -> None:
    later = NOW + timedelta(hours=1)
    assert visible(row("pending"), "embeddings", NOW)
    assert not visible(row("pending"), "rerank", NOW)
    assert not visible(row("pending", kind=None), "embeddings", NOW)
    assert visible(row("succeeded", expires_at=later), "embeddings", NOW)
    assert not visible(row("succeeded", expires_at=later), "embeddings", later)
    assert not visible(row("succeeded", data_removed=True), "embeddings", NOW)


def test_the_projection_keeps_the_kind_of_created() -> None:
    created = Created(owner="alice", model="inferhook/all-minilm-l6-v2", input={"texts": ["a"]},
                      created_at=NOW, kind=TaskKind.RERANK, task_options={"top_n": 1})
    event = PredictionEvent(id="p-0", source="tests", type=EventType.CREATED, time=NOW,
                            subject="p", sequence=CREATED_SEQUENCE, data=created)
    decoded = PredictionEvent.decode(event.headers(), event.value())
    folded = fold({}, [decoded], "http://x")
    assert (folded.rows["p"].kind, folded.rows["p"].task_options) == ("rerank", {"top_n": 1})


# --- the result beside the output: webhooks and GET /v1/predictions ----------------------------

def test_every_kind_has_its_result() -> None:
    assert set(RESULTS) == set(TaskKind)
    assert all(ADAPTERS[kind].result is rule.make for kind, rule in RESULTS.items())


def test_a_webhook_of_a_task_carries_its_result() -> None:
    def event(sequence: int, kind: EventType, data: Any) -> PredictionEvent:
        sent = PredictionEvent(id=f"p-{sequence}", source="tests", type=kind, time=NOW,
                               subject="p", sequence=sequence, data=data)
        return PredictionEvent.decode(sent.headers(), sent.value())

    created = Created(owner="alice", model="inferhook/all-minilm-l6-v2",
                      input={"query": "bread", "documents": ["stocks", "dough"]},
                      webhook="https://example.com/hook", created_at=NOW, kind=TaskKind.RERANK,
                      task_options={"top_n": 1, "return_documents": True})
    done = Completed(completed_at=NOW, output={"scores": [0.1, 0.8], "token_counts": [3, 4]})
    folded = fold({}, [event(CREATED_SEQUENCE, EventType.CREATED, created),
                       event(CREATED_SEQUENCE + 1, EventType.SUCCEEDED, done)], "http://x")
    body = json.loads(folded.intents[-1].body)
    assert body["output"] == {"scores": [0.1, 0.8], "token_counts": [3, 4]}
    assert body["result"] == {"id": "p", "model": "inferhook/all-minilm-l6-v2",
                              "results": [{"index": 1, "relevance_score": 0.8,
                                           "document": {"text": "dough"}}],
                              "usage": {"total_tokens": 7}}


def test_a_prediction_shows_binary_results_as_file_links() -> None:
    stored = reference("file-1", "image/png", 3)
    images = row("succeeded", model="inferhook/dcgan-faces", kind="images/generations",
                 output={"images": [stored], "seed": 4},
                 task_options={"response_format": "b64_json"})  # the poll inlines, this links
    assert images.to_api("http://x").result == {"created": int(NOW.timestamp()), "seed": 4,
                                                "data": [{"url": stored["url"]}]}
    audio = reference("file-2", "audio/wav", 44)
    speech = row("succeeded", model="inferhook/piper-joe", kind="audio/speech", task_options={},
                 output={"audio": audio, "sample_rate": 22050, "duration": 1.5})
    assert speech.to_api("http://x").result == {
        "content_type": "audio/wav", "url": audio["url"], "file_id": "file-2", "bytes": 44,
        "sample_rate": 22050, "duration": 1.5}


def test_a_prediction_has_no_result_without_a_kind_or_before_success() -> None:
    output = {"embeddings": [[1.0]], "token_counts": [3]}
    assert row("succeeded", output=output).to_api("http://x").result["data"][0]["embedding"] == [1.0]
    assert row("succeeded", output=output, kind=None).to_api("http://x").result is None
    assert row("started", output=output).to_api("http://x").result is None
    assert row("succeeded", output=output, data_removed=True).to_api("http://x").result is None
    # An output that does not fit the kind: no result here (the poll reports the mismatch).
    assert row("succeeded", output={"something": "else"}).to_api("http://x").result is None
