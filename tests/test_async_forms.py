"""ingest.forms on a real aiohttp server: fields, files, lists, and the limits (413, 415, 400)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from ingest.forms import Upload, read_form
from ingest.middleware import problems
from tests.support import free_port

LIMIT = 64 * 1024


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """An app whose one route reads a form within LIMIT and answers what it read."""

    async def echo(request: web.Request) -> web.Response:
        form = await read_form(request, LIMIT)

        def shown(value: Any) -> Any:
            if isinstance(value, Upload):
                return {"filename": value.filename, "content_type": value.content_type,
                        "size": len(value.data), "head": value.data[:4].decode("latin-1")}
            return [shown(v) for v in value] if isinstance(value, list) else value

        return web.json_response({name: shown(value) for name, value in form.items()})

    app = web.Application(middlewares=[problems])
    app.router.add_post("/form", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/form"
    finally:
        await runner.cleanup()


async def test_fields_files_and_lists(server: str) -> None:
    form = aiohttp.FormData()
    form.add_field("model", "inferhook/whisper-tiny-en")
    form.add_field("timestamp_granularities[]", "segment")
    form.add_field("timestamp_granularities[]", "word")
    form.add_field("tag", "a")
    form.add_field("tag", "b")
    form.add_field("file", b"RIFF1234", filename="a.wav", content_type="audio/wav")
    async with aiohttp.ClientSession() as http, http.post(server, data=form) as response:
        assert response.status == 200
        assert await response.json() == {
            "model": "inferhook/whisper-tiny-en", "timestamp_granularities": ["segment", "word"],
            "tag": ["a", "b"],
            "file": {"filename": "a.wav", "content_type": "audio/wav", "size": 8, "head": "RIFF"}}


async def test_a_form_over_the_limit_is_413_with_or_without_a_length(server: str) -> None:
    big = b"\0" * (LIMIT + 1)
    form = aiohttp.FormData()
    form.add_field("file", big, filename="big.wav", content_type="audio/wav")
    async with aiohttp.ClientSession() as http:
        async with http.post(server, data=form) as response:
            assert response.status == 413
            assert response.content_type == "application/problem+json"

        boundary = "inferhookboundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"big.wav\"\r\nContent-Type: audio/wav\r\n\r\n").encode() + big + (
                    f"\r\n--{boundary}--\r\n").encode()

        async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length to refuse early
            for start in range(0, len(body), 8192):
                yield body[start:start + 8192]

        async with http.post(server, data=chunks(), headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}"}) as response:
            assert response.status == 413
            assert "exceeds" in (await response.json())["detail"]


async def test_other_media_types_and_broken_forms_are_refused(server: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(server, json={"model": "x"}) as response:
            assert response.status == 415
        async with http.post(server, data=b"--nope\r\nnot a part", headers={
                "Content-Type": "multipart/form-data; boundary=other"}) as response:
            assert response.status == 400
        async with http.post(server, data=b"x", headers={
                "Content-Type": "multipart/form-data"}) as response:  # no boundary
            assert response.status == 400
        async with http.post(server, data=b"--b\r\nFalse--b--\r\n", headers={
                "Content-Type": "multipart/form-data; boundary=b"}) as response:  # no part headers
            assert response.status == 400
