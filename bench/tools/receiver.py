"""A webhook receiver that counts: exits once `--expect` POSTs arrived (or on timeout).

Writes the count and the wall-clock times of the first and last arrival to `--out`.

    python -m bench.tools.receiver --port 9001 --expect 4000 --timeout 60 --out r.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path

import orjson
from aiohttp import web


async def receive(port: int, expect: int, timeout: float) -> dict[str, float | int | None]:
    """Serve until `expect` requests arrived or `timeout` passed."""
    arrivals: list[float] = []
    done = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        arrivals.append(time.time())
        if len(arrivals) >= expect:
            done.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{path:.*}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout=timeout)
    await runner.cleanup()
    return {"count": len(arrivals), "first": arrivals[0] if arrivals else None,
            "last": arrivals[-1] if arrivals else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = asyncio.run(receive(args.port, args.expect, args.timeout))
    Path(args.out).write_bytes(orjson.dumps(result))


if __name__ == "__main__":
    main()
