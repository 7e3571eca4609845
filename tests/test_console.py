"""The console at /console: its shell, the queue-depth route it shows, and the page itself
driven in headless Chromium (tests/browser/console.mjs, playwright-core) against the real stack."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from inferhook.settings import REPO_ROOT
from tests.support import Receiver, Stack, example_input

BROWSER_DIR = REPO_ROOT / "tests" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCREENSHOTS = ("login", "refused", "list", "list-live", "detail", "redelivered", "models", "example",
               "upload", "following", "streamed", "list-after")


async def test_shell_is_public_self_contained_and_locked_down(stack: Stack) -> None:
    async with stack.http.get(f"{stack.base_url}/console") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        policy = response.headers["Content-Security-Policy"]
        page = await response.text()
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "nothing from another origin"
    assert re.search(r"<script\b(?![^>]*\bsrc=)", page) is None, "no inline script"
    for path, media_type in (("/console/app.js", "text/javascript"), ("/console/console.css", "text/css")):
        async with stack.http.get(f"{stack.base_url}{path}") as response:
            assert response.status == 200, path
            assert response.content_type == media_type
            assert not re.search(r"https?://", await response.text()), path
    async with stack.http.get(f"{stack.base_url}/console/other.js") as response:
        assert response.status == 401, "only the shell's own files are public"


async def test_queues_count_pending_and_started_per_model(idle_stack: Stack) -> None:
    stack = idle_stack
    for _ in range(2):
        created = await stack.create({"model": "inferhook/spin", "input": {"milliseconds": 5}})
        assert created.status == 201
    async with stack.http.get(f"{stack.base_url}/v1/queues") as response:
        assert response.status == 401
    async with stack.http.get(f"{stack.base_url}/v1/queues", headers=stack.auth()) as response:
        assert response.status == 200
        body = await response.json()
    depths = {q["model"]: (q["pending"], q["started"]) for q in body["results"]}
    assert depths["inferhook/spin"] == (2, 0)
    assert depths["inferhook/digits"] == (0, 0), "every served model is listed"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_SIGNATURE), f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _node() -> str:
    """node, once Chromium and playwright-core are in place (`make provision` puts them there)."""
    node = shutil.which("node")
    assert node, "node is needed for the browser test (apt-get install nodejs)"
    assert CHROMIUM.exists(), "run `make provision` (installs Debian's chromium)"
    assert (BROWSER_DIR / "node_modules" / "playwright-core").is_dir(), \
        "run `npm ci --prefix tests/browser` (part of `make provision`)"
    return node


def _with_comment(png: bytes) -> bytes:
    """The same image with a tEXt chunk after IHDR: other bytes, so another data: URI."""
    text = b"Comment\x00chosen in the console test"
    chunk = struct.pack(">I", len(text)) + b"tEXt" + text + struct.pack(">I", zlib.crc32(b"tEXt" + text))
    ihdr_end = 8 + 4 + 4 + 13 + 4
    return png[:ihdr_end] + chunk + png[ihdr_end:]


async def _drive(options: dict[str, Any]) -> dict[str, Any]:
    node = _node()
    process = await asyncio.create_subprocess_exec(
        node, str(BROWSER_DIR / "console.mjs"), json.dumps(options), cwd=BROWSER_DIR,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=150)
    lines = out.decode().strip().splitlines()
    assert lines, f"the browser script printed nothing; stderr:\n{err.decode()[-5000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert process.returncode == 0 and "error" not in result, (
        f"{result.get('error')}\npage text:\n{result['texts'].get('failure', '')[:3000]}\n"
        f"stderr:\n{err.decode()[-3000:]}")
    return result


@pytest.mark.timeout(240)
async def test_console_in_headless_chromium(stack: Stack, receiver: Receiver, tmp_path: Path) -> None:
    created = await stack.create({"model": "inferhook/spin", "input": {"milliseconds": 5},
                                  "webhook": receiver.url})
    assert created.status == 201
    first = (await created.json())["id"]
    assert (await stack.wait_terminal(first))["status"] == "succeeded"
    example = example_input(stack.settings, "inferhook/digits")
    upload = _with_comment(base64.b64decode(example["image"].split(",", 1)[1]))
    png = tmp_path / "digit.png"
    png.write_bytes(upload)
    shots = tmp_path / "screenshots"
    shots.mkdir()

    result = await _drive({"baseUrl": stack.base_url, "key": stack.key, "predictionId": first,
                           "uploadPng": str(png), "shots": str(shots),
                           "profile": str(tmp_path / "chromium-profile")})

    assert result["pageErrors"] == []
    assert result["foreignRequests"] == [], "the console loads nothing from other origins"
    for name in SCREENSHOTS:
        width, height = _png_size(shots / f"{name}.png")
        assert width >= 1000 and height >= 500, name
    texts = result["texts"]
    assert "Sign in" in texts["login"] and "API key" in texts["login"]
    assert "The server did not accept that API key." in texts["refused"]
    assert first in texts["list"] and "succeeded" in texts["list"]
    assert "alice" in texts["list"] and "inferhook/spin" in texts["list"]
    assert re.search(r"inferhook/digits 0 pending · 0 running", texts["list"])
    assert result["ids"]["polled"] in texts["list-live"], "the list refreshes by itself"
    for event in ("#0", "created", "started", "succeeded", "model inferhook/spin"):
        assert event in texts["detail"], event
    assert receiver.url in texts["detail"] and "delivered" in texts["detail"]
    assert "HTTP 200" in texts["redelivered"] and "Redelivery queued." in texts["redelivered"]
    assert "Try it" in texts["models"] and "Example input: data:image/png;base64," in texts["models"]
    assert '"digit"' in texts["example"]
    ids = result["ids"]
    assert ids["listed"][:5] == [ids["streamed"], ids["upload"], ids["example"], ids["polled"], first]
    # The slow one's page was open while it ran: its end came by the event stream.
    assert "Following the event stream" in texts["following"]
    assert "succeeded" in texts["streamedEvents"]
    assert "Following the event stream" not in texts["streamed"]
    assert texts["storedKey"] == "0", "signing out forgets the key"

    # The redelivery reached the receiver with the webhook-id of an earlier delivery.
    received = await receiver.wait_for(1)
    webhook_ids = [r.headers["webhook-id"] for r in received]
    assert len(webhook_ids) > len(set(webhook_ids))
    # What the try-it form sent: the example as given, and the chosen file as a data: URI.
    tried = await stack.wait_terminal(ids["example"])
    assert tried["input"] == example and tried["status"] == "succeeded"
    uploaded = await stack.wait_terminal(ids["upload"])
    assert uploaded["input"]["image"] == "data:image/png;base64," + base64.b64encode(upload).decode()
    assert uploaded["input"] != example
    assert uploaded["output"]["digit"] == tried["output"]["digit"]
