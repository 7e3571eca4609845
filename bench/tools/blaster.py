"""Baseline sender: POST N Standard-Webhooks-signed bodies with a bare aiohttp client pool.

What a sender that only signs and posts (no database, no outbox) reaches against the
same receiver: the ceiling for the dispatcher's deliveries per second.

    python -m bench.tools.blaster --url http://127.0.0.1:9001/hook --n 4000 --body b.json
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import aiohttp
import orjson

from dispatcher.signing import headers as signed_headers

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def blast(url: str, n: int, body: bytes, concurrency: int) -> dict[str, float | int]:
    """Send n signed POSTs with `concurrency` workers; return the count of 2xx and the time."""
    queue = iter(range(n))
    ok = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        for i in queue:
            headers = signed_headers([SECRET], f"msg_blast_{i}", int(time.time()), body)
            async with session.post(url, data=body, headers=headers,
                                    allow_redirects=False) as response:
                await response.read()
                ok += response.status < 300

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"ok": ok, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = asyncio.run(blast(args.url, args.n, args.body.read_bytes(), args.concurrency))
    Path(args.out).write_bytes(orjson.dumps(result))


if __name__ == "__main__":
    main()
