"""The client installs and imports on its own, and its pure parts behave (no server needed)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from inferhook_client._core import SSEDecoder, prefer_wait, wait_chunk

CLIENT = Path(__file__).resolve().parents[1] / "client"
SERVER_PACKAGES = {"schemas", "ingest", "inferhook", "dispatcher", "executors", "store", "migrations",
                   "cli"}


def test_client_imports_without_the_server_packages(tmp_path: Path) -> None:
    code = ("import sys, inferhook_client, inferhook_client.receivers, inferhook_client.kafka;"
            f"bad = {{m.split('.')[0] for m in sys.modules}} & set({sorted(SERVER_PACKAGES)!r});"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True,
                   env={"PYTHONPATH": str(CLIENT), "PATH": "/usr/bin:/bin"})


def test_client_is_its_own_distribution() -> None:
    meta = tomllib.loads((CLIENT / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "inferhook-client"
    assert any(dep.startswith("httpx") for dep in meta["project"]["dependencies"])
    assert "kafka" in meta["project"]["optional-dependencies"]


def test_sse_decoder_frames_events_and_skips_comments() -> None:
    decoder = SSEDecoder("p1")
    lines = [": keep-alive", "", "id: 2", "event: started",
             'data: {"sequence": 2, "type": "inferhook.prediction.started",',
             'data:  "time": "2026-01-01T00:00:00Z", "data": {"phase": "running"}}', ""]
    events = [e for e in map(decoder.feed, lines) if e is not None]
    assert len(events) == 1
    assert (events[0].sequence, events[0].kind, events[0].prediction_id) == (2, "started", "p1")
    assert events[0].status == "started" and not events[0].is_terminal


def test_wait_chunks_stay_within_what_the_api_and_the_caller_allow() -> None:
    assert [wait_chunk(s) for s in (0.2, 1.9, 30, 600)] == [1, 1, 30, 60]
    assert [prefer_wait(w) for w in (None, False, True, 5, 90)] == [None, None, "wait", "wait=5",
                                                                    "wait=60"]
