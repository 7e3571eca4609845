"""Hold N concurrent `GET /v1/predictions/{id}` requests with `Prefer: wait=60`.

Plain sockets (one connection per waiter, the request written by hand) keep the client
itself small. Prints `sent N` once every request is written, then holds the connections
until SIGTERM or `--hold` seconds; writes how many were answered early to `--out`.

    python -m bench.tools.waiters --port 8080 --key ih_… --ids ids.txt --n 5000 --out w.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import orjson


async def hold(port: int, key: str, ids: list[str], n: int, hold_seconds: float) -> dict[str, int]:
    """Open n connections, send the waiting GETs, and count early answers until stopped."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    writers: list[asyncio.StreamWriter] = []
    answered = 0
    failed = 0

    async def send(i: int) -> asyncio.StreamReader | None:
        nonlocal failed
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            failed += 1
            return None
        writers.append(writer)
        request = (f"GET /v1/predictions/{ids[i % len(ids)]} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"Authorization: Bearer {key}\r\nPrefer: wait=60\r\n\r\n")
        writer.write(request.encode())
        await writer.drain()
        return reader

    async def watch(reader: asyncio.StreamReader) -> None:
        nonlocal answered
        if await reader.read(1):
            answered += 1

    tasks = []
    for start in range(0, n, 500):  # connect in waves so the listen backlog keeps up
        readers = await asyncio.gather(*(send(i) for i in range(start, min(n, start + 500))))
        tasks += [asyncio.create_task(watch(r)) for r in readers if r is not None]
    print(f"sent {len(writers)}", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=hold_seconds)
    for writer in writers:
        writer.close()
    for task in tasks:
        task.cancel()
    return {"held": len(writers), "answered_early": answered, "failed": failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--ids", type=Path, required=True, help="file of prediction ids")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--hold", type=float, default=120.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    ids = args.ids.read_text().split()
    result = asyncio.run(hold(args.port, args.key, ids, args.n, args.hold))
    Path(args.out).write_bytes(orjson.dumps(result))
    sys.exit(0)


if __name__ == "__main__":
    main()
