"""A bare Kafka consumer: read a topic from the start and decode every event, no Postgres.

Two uses: the baseline for projection throughput (how fast events can merely be read
and decoded), and, with `--terminal`, collecting the served executor's outcome events
(first `started`, last terminal event, as the executor timed them).

    python -m bench.tools.drain --bootstrap 127.0.0.1:9092 --topic p.events --expect 30000 --out d.json
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from schemas.events import Completed, PredictionEvent, Started


async def drain(bootstrap: str, topic: str, expect: int, terminal: bool,
                timeout: float) -> dict[str, Any]:
    """Consume until `expect` (terminal) events were decoded or `timeout` passed."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                isolation_level="read_committed", max_poll_records=2000,
                                fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    counted = 0
    first_at: float | None = None
    first_started: float | None = None
    last_completed: float | None = None
    deadline = time.monotonic() + timeout
    try:
        while counted < expect and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            if batches and first_at is None:
                first_at = time.perf_counter()
            for records in batches.values():
                for record in records:
                    event = PredictionEvent.decode(record.headers, record.value)
                    if not terminal:
                        counted += 1
                    elif isinstance(event.data, Started):
                        at = event.data.started_at.timestamp()
                        first_started = at if first_started is None else min(first_started, at)
                    elif isinstance(event.data, Completed):
                        counted += 1
                        at = event.data.completed_at.timestamp()
                        last_completed = at if last_completed is None else max(last_completed, at)
        finished = time.perf_counter()
    finally:
        await consumer.stop()
    return {"count": counted, "seconds": finished - first_at if first_at else None,
            "first_started": first_started, "last_completed": last_completed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--terminal", action="store_true",
                        help="count terminal events only and report the executor's timings")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = asyncio.run(drain(args.bootstrap, args.topic, args.expect, args.terminal,
                               args.timeout))
    Path(args.out).write_bytes(orjson.dumps(result))


if __name__ == "__main__":
    main()
