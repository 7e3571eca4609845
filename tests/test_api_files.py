"""Files through the running stack: uploads, content by key and by signed link, inputs
that name files, binary outputs stored as files, retention, and the 4xx cases."""

from __future__ import annotations

import io
import json
import wave
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from PIL import Image

from inferhook import datauri
from inferhook.filelinks import FileLinks
from inferhook.settings import Settings
from schemas.events import utcnow
from tests.support import Receiver, Stack, example_input, query, wait_until

VAD, FACES, DIGITS = "inferhook/vad", "inferhook/dcgan-faces", "inferhook/digits"


async def upload(stack: Stack, content: bytes, *, filename: str = "a.bin",
                 content_type: str = "application/octet-stream", purpose: str | None = "user_data",
                 key: str | None = None, include_file: bool = True) -> aiohttp.ClientResponse:
    # The filename as curl and browsers send it; multipart even without a file part.
    form = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
    if purpose is not None:
        form.add_field("purpose", purpose)
    if include_file:
        form.add_field("file", content, filename=filename, content_type=content_type)
    async with stack.http.post(f"{stack.base_url}/v1/files", data=form,
                               headers=stack.auth(key)) as response:
        await response.read()
        return response


async def uploaded(stack: Stack, content: bytes, **options: Any) -> dict[str, Any]:
    response = await upload(stack, content, **options)
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def fetch(stack: Stack, url: str, headers: dict[str, str] | None = None,
                method: str = "GET") -> tuple[int, bytes, dict[str, str]]:
    async with stack.http.request(method, url, headers=headers or {}) as response:
        return response.status, await response.read(), dict(response.headers)


async def file_count(settings: Settings) -> int:
    return int((await query(settings, "SELECT count(*) AS n FROM files"))[0]["n"])


async def prediction_count(settings: Settings) -> int:
    return int((await query(settings, "SELECT count(*) AS n FROM predictions"))[0]["n"])


def example_wav(settings: Settings) -> bytes:
    media_type, data = datauri.decode(example_input(settings, VAD)["audio"])
    assert media_type.startswith("audio/")
    return data


async def test_upload_then_content_with_the_key_and_with_the_signed_link(stack: Stack) -> None:
    content = bytes(range(256)) * 40
    body = await uploaded(stack, content, filename="../dir/photo.png", content_type="image/png")
    assert body["id"].startswith("file-") and body["object"] == "file"
    assert (body["bytes"], body["filename"], body["purpose"], body["content_type"]) == (
        len(content), "photo.png", "user_data", "image/png")
    assert body["expires_at"] - body["created_at"] == pytest.approx(
        stack.settings.files.upload_ttl_seconds, abs=2)
    status, meta, _ = await fetch(stack, f"{stack.base_url}/v1/files/{body['id']}", stack.auth())
    assert status == 200 and json.loads(meta) == body
    content_url = f"{stack.base_url}/v1/files/{body['id']}/content"
    status, got, headers = await fetch(stack, content_url, stack.auth())
    assert (status, got, headers["Content-Type"]) == (200, content, "image/png")
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, got, headers = await fetch(stack, body["url"])  # no key
    assert (status, got, headers["Content-Type"]) == (200, content, "image/png")
    status, _, _ = await fetch(stack, content_url)
    assert status == 401, "without a key or a link the content stays closed"


async def test_expired_and_altered_links_are_refused(stack: Stack) -> None:
    first = await uploaded(stack, b"first file")
    second = await uploaded(stack, b"second file")
    links = FileLinks(stack.base_url, stack.settings.file_link_secret)
    expired = links.url(first["id"], utcnow() - timedelta(seconds=1))
    altered = first["url"][:-1] + ("A" if first["url"][-1] != "A" else "B")
    borrowed = first["url"].replace(first["id"], second["id"])
    other_secret = FileLinks(stack.base_url, b"not the server's").url(
        first["id"], utcnow() + timedelta(hours=1))
    for url in (expired, altered, borrowed, other_secret):
        status, body, headers = await fetch(stack, url)
        assert status == 403, url
        assert headers["Content-Type"] == "application/problem+json"
        assert b"first file" not in body and b"second file" not in body
    status, got, _ = await fetch(stack, first["url"])
    assert (status, got) == (200, b"first file"), "the real link still works"


async def test_another_owner_finds_no_file(stack: Stack) -> None:
    mine = await uploaded(stack, b"alice's")
    bob = await stack.new_key("bob")
    base = f"{stack.base_url}/v1/files/{mine['id']}"
    for method, url in (("GET", base), ("GET", f"{base}/content"), ("DELETE", base)):
        status, body, _ = await fetch(stack, url, stack.auth(bob), method=method)
        assert status == 404 and b"alice's" not in body, (method, url)
    status, got, _ = await fetch(stack, f"{base}/content", stack.auth())
    assert (status, got) == (200, b"alice's"), "bob's DELETE changed nothing"


async def test_the_list_pages_through_the_callers_files_newest_first(stack: Stack) -> None:
    mine = [await uploaded(stack, f"file {i}".encode(), purpose="user_data" if i else "batch")
            for i in range(3)]
    bob = await stack.new_key("bob")
    await uploaded(stack, b"bob's", key=bob)
    status, body, _ = await fetch(stack, f"{stack.base_url}/v1/files?limit=2", stack.auth())
    first = json.loads(body)
    assert status == 200 and first["object"] == "list" and first["has_more"]
    assert first["data"] == [mine[2], mine[1]]  # the file objects, newest first
    assert (first["first_id"], first["last_id"]) == (mine[2]["id"], mine[1]["id"])
    status, body, _ = await fetch(stack, first["next"], stack.auth())
    second = json.loads(body)
    assert [f["id"] for f in second["data"]] == [mine[0]["id"]]
    assert (second["has_more"], second["next"]) == (False, None)
    status, body, _ = await fetch(stack, f"{stack.base_url}/v1/files?purpose=batch", stack.auth())
    assert [f["id"] for f in json.loads(body)["data"]] == [mine[0]["id"]]
    status, body, _ = await fetch(stack, f"{stack.base_url}/v1/files", stack.auth(bob))
    assert [f["filename"] for f in json.loads(body)["data"]] == ["a.bin"]
    assert len(json.loads(body)["data"]) == 1, "bob sees his file alone"
    status, body, _ = await fetch(stack, f"{stack.base_url}/v1/files?limit=0", stack.auth())
    assert status == 400 and json.loads(body)["errors"][0]["loc"] == ["query", "limit"]
    status, body, _ = await fetch(stack, f"{stack.base_url}/v1/files?after=a%00b", stack.auth())
    assert status == 400 and json.loads(body)["errors"][0]["loc"] == ["query", "after"]


async def test_delete_removes_the_file_and_its_links(stack: Stack) -> None:
    body = await uploaded(stack, b"short-lived")
    base = f"{stack.base_url}/v1/files/{body['id']}"
    status, answer, _ = await fetch(stack, base, stack.auth(), method="DELETE")
    assert status == 200 and json.loads(answer) == {"id": body["id"], "object": "file",
                                                     "deleted": True}
    for url, headers in ((base, stack.auth()), (body["url"], {})):
        assert (await fetch(stack, url, headers))[0] == 404
    assert (await fetch(stack, base, stack.auth(), method="DELETE"))[0] == 404
    assert await file_count(stack.settings) == 0


@pytest.fixture
async def small_uploads(settings: Settings, clean_db: None) -> AsyncIterator[Stack]:
    files = settings.files.model_copy(update={"max_upload_bytes": 1000})
    async with Stack.running(settings.model_copy(update={"files": files}),
                             executor=False) as running:
        yield running


async def test_bad_uploads_get_a_4xx_and_store_nothing(small_uploads: Stack) -> None:
    stack = small_uploads
    cases: list[tuple[aiohttp.ClientResponse, int, list[str]]] = [
        (await upload(stack, b"x", include_file=False), 422, ["body", "file"]),
        (await upload(stack, b"x", purpose=None), 422, ["body", "purpose"]),
        (await upload(stack, b"x", purpose="no spaces allowed"), 422, ["body", "purpose"]),
        (await upload(stack, b""), 422, ["body", "file"]),
        (await upload(stack, b"x" * 1001), 413, []),
    ]
    for response, status, loc in cases:
        assert response.status == status, await response.text()
        problem = await response.json()
        assert problem["status"] == status
        if loc:
            assert loc in [item["loc"] for item in problem["errors"]], problem
    async with stack.http.post(f"{stack.base_url}/v1/files", json={"file": "x"},
                               headers=stack.auth()) as response:
        assert response.status == 415
    async with stack.http.post(f"{stack.base_url}/v1/files", data=b"--x\r\nbroken",
                               headers={**stack.auth(),
                                        "Content-Type": "multipart/form-data; boundary=x"}) as response:
        assert response.status in (400, 422), await response.text()
    assert (await upload(stack, b"x" * 1000)).status == 201, "the limit itself is allowed"
    assert await file_count(stack.settings) == 1


async def test_an_input_naming_an_uploaded_file_reaches_the_model(stack: Stack) -> None:
    wav = await uploaded(stack, example_wav(stack.settings), filename="speech.wav",
                         content_type="audio/wav")
    reference = {"file_id": wav["id"]}
    response = await stack.create({"model": VAD, "input": {"audio": reference}})
    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["input"] == {"audio": reference}, "the prediction keeps the reference"
    inline = await stack.create({"model": VAD, "input": example_input(stack.settings, VAD)})
    done = await stack.wait_terminal(created["id"], timeout=60)
    assert done["status"] == "succeeded", done
    inline_done = await stack.wait_terminal((await inline.json())["id"], timeout=60)
    assert done["output"] == inline_done["output"], "the model got the same audio"
    assert len(done["output"]["segments"]) == 2
    async with stack.http.get(created["urls"]["events"], headers=stack.auth()) as answer:
        history = (await answer.json())["results"]
    assert history[0]["data"]["input"] == {"audio": reference}


async def test_inputs_naming_no_file_of_the_caller_are_422_and_create_nothing(stack: Stack) -> None:
    bob = await stack.new_key("bob")
    bobs = await uploaded(stack, example_wav(stack.settings), content_type="audio/wav", key=bob)
    image = await uploaded(stack, b"\x89PNG\r\n\x1a\n", content_type="image/png")
    cases = [({"audio": {"file_id": "file-00000000000000000000000000000000"}}, "audio"),
             ({"audio": {"file_id": bobs["id"]}}, "audio"),
             ({"audio": {"file_id": 12}}, "audio")]
    for given, field in cases:
        response = await stack.create({"model": VAD, "input": given})
        assert response.status == 422, await response.text()
        problem = await response.json()
        assert [item["loc"] for item in problem["errors"]] == [["body", "input", field, "file_id"]]
    response = await stack.create({"model": VAD, "input": {"audio": {"file_id": image["id"]}}})
    assert response.status == 422, "an image where the model takes audio breaks its schema"
    assert (await response.json())["errors"][0]["loc"] == ["body", "input", "audio"]
    assert await prediction_count(stack.settings) == 0


def long_wav(settings: Settings, size: int) -> bytes:
    """The example speech repeated until the WAV holds about `size` bytes."""
    with wave.open(io.BytesIO(example_wav(settings))) as source:
        params, frames = source.getparams(), source.readframes(source.getnframes())
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as target:
        target.setparams(params)
        target.writeframes(frames * max(1, size // len(frames)))
    return buffer.getvalue()


async def test_a_large_file_travels_to_the_model_but_twice_does_not_fit(stack: Stack) -> None:
    audio = long_wav(stack.settings, 7 * 1024 * 1024)
    assert len(audio) > 6 * 1024 * 1024
    wav = await uploaded(stack, audio, content_type="audio/wav")
    response = await stack.create({"model": VAD, "input": {"audio": {"file_id": wav["id"]}}})
    assert response.status == 201, await response.text()
    done = await stack.wait_terminal((await response.json())["id"], timeout=120)
    assert done["status"] == "succeeded", done
    assert done["output"]["duration"] > 100 and len(done["output"]["segments"]) >= 20
    twice = {"audio": {"file_id": wav["id"]}, "again": {"file_id": wav["id"]}}
    response = await stack.create({"model": VAD, "input": twice})
    assert response.status == 413, await response.text()
    assert await prediction_count(stack.settings) == 1


async def test_generated_images_arrive_as_file_references(stack: Stack,
                                                         receiver: Receiver) -> None:
    response = await stack.create({"model": FACES, "input": {"n": 2, "seed": 7},
                                   "webhook": receiver.url,
                                   "webhook_events_filter": ["completed"]})
    assert response.status == 201, await response.text()
    created = await response.json()
    done = await stack.wait_terminal(created["id"], timeout=60)
    assert done["status"] == "succeeded", done
    images = done["output"]["images"]
    assert len(images) == 2 and done["output"]["seed"] == 7
    for reference in images:
        assert set(reference) == {"file_id", "url", "content_type", "bytes"}
        assert reference["content_type"] == "image/png"
        status, png, headers = await fetch(stack, reference["url"])  # no key
        assert (status, headers["Content-Type"], len(png)) == (200, "image/png", reference["bytes"])
        assert Image.open(io.BytesIO(png)).size == (64, 64)
        status, meta, _ = await fetch(stack, f"{stack.base_url}/v1/files/{reference['file_id']}",
                                      stack.auth())
        assert status == 200 and json.loads(meta)["purpose"] == "output"
    files = await query(stack.settings, "SELECT owner, prediction_id, expires_at FROM files")
    assert {(f["owner"], f["prediction_id"]) for f in files} == {("alice", created["id"])}
    expires = {f["expires_at"] for f in files}
    assert [e.isoformat().replace("+00:00", "Z") for e in expires] == [
        done["expires_at"].replace("+00:00", "Z")]
    (hook,) = await receiver.wait_for(1)
    assert hook.json()["output"] == done["output"], "the webhook carries the references"
    assert b"data:image" not in hook.body and b"base64" not in hook.body
    history = await query(stack.settings, "SELECT data::text AS d FROM prediction_events")
    assert history and not any("data:image" in h["d"] for h in history)
    bob = await stack.new_key("bob")
    status, _, _ = await fetch(stack, f"{images[0]['url'].split('?')[0]}", stack.auth(bob))
    assert status == 404, "another owner's key does not open an output file"


async def test_an_output_file_can_be_named_in_the_next_input(stack: Stack) -> None:
    response = await stack.create({"model": FACES, "input": {"n": 1, "seed": 3}})
    done = await stack.wait_terminal((await response.json())["id"], timeout=60)
    (reference,) = done["output"]["images"]
    response = await stack.create({"model": DIGITS, "input": {"image": reference}})
    assert response.status == 201, await response.text()
    classified = await stack.wait_terminal((await response.json())["id"], timeout=60)
    assert classified["status"] == "succeeded", classified
    assert classified["input"] == {"image": reference}


@pytest.fixture
async def quick_sweeps(settings: Settings, clean_db: None) -> AsyncIterator[Stack]:
    webhook = settings.webhook.model_copy(update={"retention_interval": 0.2})
    files = settings.files.model_copy(update={"upload_ttl_seconds": 1.0})
    async with Stack.running(settings.model_copy(update={"webhook": webhook,
                                                         "files": files})) as running:
        yield running


async def test_retention_deletes_expired_files_and_keeps_the_others(quick_sweeps: Stack) -> None:
    stack = quick_sweeps
    upload_body = await uploaded(stack, b"gone in a second")
    short = await stack.create({"model": FACES, "input": {"n": 1}}, headers={"Result-TTL": "1"})
    kept = await stack.create({"model": FACES, "input": {"n": 1}},
                              headers={"Result-TTL": "3600"})
    done = await stack.wait_terminal((await short.json())["id"], timeout=60)
    kept_done = await stack.wait_terminal((await kept.json())["id"], timeout=60)
    (reference,) = done["output"]["images"]
    (kept_reference,) = kept_done["output"]["images"]
    await wait_until(lambda: _only(stack.settings, {kept_reference["file_id"]}),
                     what="expired files deleted")
    for url, headers in ((upload_body["url"], {}), (reference["url"], {}),
                         (f"{stack.base_url}/v1/files/{reference['file_id']}", stack.auth())):
        status, _, _ = await fetch(stack, url, headers)
        assert status in (403, 404), url
    status, png, _ = await fetch(stack, kept_reference["url"])
    assert status == 200 and len(png) == kept_reference["bytes"]


async def _only(settings: Settings, ids: set[str]) -> bool:
    return {r["id"] for r in await query(settings, "SELECT id FROM files")} == ids
