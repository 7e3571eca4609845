"""`inferhook ingest --workers N`: N processes serve one port; one that dies is started again
while the others keep answering; SIGTERM stops them all."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import aiohttp
import psutil

from cli.infra.process import free_port, terminate
from inferhook.settings import Settings
from tests.support import Stack, service_env, wait_until


def listeners(parent: psutil.Process, port: int) -> set[int]:
    """Pids of the parent's children listening on `port`."""
    found = set()
    for child in parent.children(recursive=True):
        try:
            connections = child.net_connections(kind="tcp")
        except psutil.Error:
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections):
            found.add(child.pid)
    return found


def start_workers(settings: Settings, port: int, count: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cli", "ingest", "--workers", str(count)],
                            env=service_env(settings, INFERHOOK_PORT=str(port)),
                            start_new_session=True)


async def test_workers_share_the_port_and_are_restarted(settings: Settings) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    key = await Stack.new_key_for(settings, "workers")
    process = start_workers(settings, port, 2)
    parent = psutil.Process(process.pid)
    try:
        await wait_until(lambda: _async(len(listeners(parent, port)) == 2), timeout=60,
                         what="two workers listening")
        first = listeners(parent, port)

        # A new connection per request: the kernel then spreads them over live workers only
        # (a kept-alive connection to the killed worker would fail as with any server).
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            async def answers() -> bool:
                try:
                    async with http.get(f"{base_url}/v1/models",
                                        headers={"Authorization": f"Bearer {key}"}) as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_until(answers, timeout=30, what="the API answering")
            os.kill(min(first), signal.SIGKILL)
            # The survivor answers every request while its sibling is down.
            for _ in range(20):
                assert await answers()
            await wait_until(lambda: _async(len(listeners(parent, port) - first) == 1),
                             timeout=60, what="the killed worker started again")
            workers = listeners(parent, port)
            assert max(first) in workers and min(first) not in workers
            assert await answers()

        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0
        assert not any(psutil.pid_exists(pid) for pid in workers)
    finally:
        if process.poll() is None:
            terminate(process.pid, timeout=5)


async def _async(value: bool) -> bool:
    return value
