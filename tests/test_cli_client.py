"""`inferhook predict`, `inferhook predictions …` and `inferhook webhooks listen`, run as
subprocesses against the real stack (INFERHOOK_URL / INFERHOOK_API_KEY point at it).

The stack runs in the test's event loop, so the subprocesses are awaited, never waited on.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

from inferhook_client import AsyncClient

from tests.support import Stack, example_input, free_port

INFERHOOK = str(Path(sys.executable).parent / "inferhook")


def cli_env(stack: Stack, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERHOOK_")}
    return {**env, "INFERHOOK_URL": stack.base_url, "INFERHOOK_API_KEY": stack.key,
            "COLUMNS": "120", **extra}


async def cli(stack: Stack, *args: str, env: dict[str, str] | None = None,
              timeout: float = 60) -> tuple[int, str, str]:
    """Run `inferhook ARGS…`; (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        INFERHOOK, *args, env=env or cli_env(stack), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_predict_with_the_example_input_waits_and_prints_json(stack: Stack) -> None:
    code, out, err = await cli(stack, "predict", "inferhook/digits", "--wait", "--json")
    assert code == 0, err
    prediction = json.loads(out)
    assert prediction["status"] == "succeeded" and prediction["output"]["digit"] == 7


async def test_predict_shows_progress_timings_and_output(stack: Stack) -> None:
    code, out, err = await cli(stack, "predict", "inferhook/spin", "-i", "milliseconds=50", "--wait")
    assert code == 0, err
    assert "pending" in out and "running" in out and "succeeded" in out
    for timing in ("queue", "load", "predict", "total", " ms"):
        assert timing in out, out
    assert "output:" in out and '"iterations"' in out


async def test_predict_sends_a_file_as_a_data_uri(stack: Stack, tmp_path: Path) -> None:
    image = example_input(stack.settings, "inferhook/digits")["image"]
    png = tmp_path / "seven.png"
    png.write_bytes(base64.b64decode(image.split(",", 1)[1]))
    code, out, err = await cli(stack, "predict", "inferhook/digits", "-i", f"image=@{png}",
                               "--wait", "--json")
    assert code == 0, err
    prediction = json.loads(out)
    assert prediction["input"]["image"] == image
    assert prediction["output"]["digit"] == 7


async def test_predict_without_wait_prints_the_id(stack: Stack) -> None:
    code, out, err = await cli(stack, "predict", "inferhook/spin", "-i", "milliseconds=1")
    assert code == 0, err
    prediction_id, status = out.split()[:2]
    assert status == "pending"
    async with AsyncClient(stack.base_url, stack.key) as client:
        assert (await client.predictions.wait(prediction_id, timeout=30)).status == "succeeded"


async def test_predictions_list_get_cancel(stack: Stack) -> None:
    async with AsyncClient(stack.base_url, stack.key) as client:
        done = await client.predictions.create("inferhook/spin", {"milliseconds": 1}, wait=True)
        long = await client.predictions.create("inferhook/spin", {"milliseconds": 20_000})
    code, out, err = await cli(stack, "predictions", "list", "--json")
    assert code == 0, err
    assert [p["id"] for p in json.loads(out)] == [long.id, done.id]
    code, out, _ = await cli(stack, "predictions", "list")
    assert long.id in out and done.id in out and "inferhook/spin" in out
    code, out, _ = await cli(stack, "predictions", "get", done.id)
    assert code == 0 and "succeeded" in out and done.id in out and "output:" in out
    code, out, _ = await cli(stack, "predictions", "cancel", long.id, "--json")
    canceled: dict[str, Any] = json.loads(out)
    assert code == 0 and canceled["status"] in ("canceled", "started")
    async with AsyncClient(stack.base_url, stack.key) as client:
        assert (await client.predictions.wait(long.id, timeout=30)).status == "canceled"


async def test_cli_errors_are_one_line_and_exit_1(stack: Stack) -> None:
    code, _, err = await cli(stack, "predictions", "get", "nope")
    assert code == 1 and "404" in err and "Traceback" not in err
    code, _, err = await cli(stack, "predict", "inferhook/spin", "-i", "milliseconds",
                             env=cli_env(stack))
    assert code == 1 and "key=value" in err
    code, _, err = await cli(stack, "predictions", "list", env=cli_env(stack, INFERHOOK_API_KEY=""))
    assert code == 1 and "INFERHOOK_API_KEY" in err


async def test_webhooks_listen_verifies_and_prints_a_real_delivery(stack: Stack) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        INFERHOOK, "webhooks", "listen", "--port", str(port), env=cli_env(stack),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    try:
        lines = [(await asyncio.wait_for(process.stdout.readline(), 30)).decode() for _ in range(2)]
        url = f"http://127.0.0.1:{port}/hook"
        assert url in lines[0] and f'"webhook": "{url}"' in lines[1]
        async with AsyncClient(stack.base_url, stack.key) as client:
            created = await client.predictions.create("inferhook/spin", {"milliseconds": 1},
                                                      webhook=url, webhook_events_filter=["completed"])
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert "verified" in line and created.id in line and "succeeded" in line
        assert '"milliseconds": 1' in line
        forged = {"webhook-id": "msg_x", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"}
        async with stack.http.post(url, data=b"{}", headers=forged) as response:
            assert response.status == 401
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert "REJECTED" in line
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 15)
