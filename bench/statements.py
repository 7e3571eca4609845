"""What PostgreSQL did in a window: write transactions (transaction ids handed out) and,
where pg_stat_statements is loaded (bench.stack.instrument), the statements that took its
time.

Transaction ids rather than pg_stat_database's commit count: that one lags by up to 10 s
(an idle backend flushes its counters late) and counts every read-only query too.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

TOP = """
SELECT query, calls, total_exec_time, rows FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC LIMIT $1
"""


async def next_xid(db: asyncpg.Pool) -> int:
    """The next transaction id: its growth over a window counts the transactions that wrote
    (in the whole server; reading it takes none)."""
    return int(await db.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())::text"))


async def statements_available(db: asyncpg.Pool) -> bool:
    """Whether pg_stat_statements is loaded and its view exists."""
    return bool(await db.fetchval(
        "SELECT current_setting('pg_stat_statements.track', true) IS NOT NULL "
        "AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')"))


async def _track(db: asyncpg.Pool, level: str) -> None:
    await db.execute(f"ALTER SYSTEM SET pg_stat_statements.track = '{level}'")
    await db.execute("SELECT pg_reload_conf()")
    await asyncio.sleep(0.2)  # backends read the new setting at their next command


@asynccontextmanager
async def tracked_statements(db: asyncpg.Pool, available: bool = True) -> AsyncIterator[None]:
    """Statements are counted (from zero) inside the block only (nothing happens when
    pg_stat_statements is not `available`)."""
    if not available:
        yield
        return
    await _track(db, "top")
    await db.execute("SELECT pg_stat_statements_reset()")
    try:
        yield
    finally:
        await _track(db, "none")


def _one_line(query: str, width: int = 150) -> str:
    text = re.sub(r"\s+", " ", query).strip()
    return text if len(text) <= width else text[:width - 1] + "…"


async def top_statements(db: asyncpg.Pool, predictions: int, n: int = 15) -> str:
    """The statements with the most execution time, per prediction, as a text table."""
    rows = await db.fetch(TOP, n)
    total = sum(r["total_exec_time"] for r in rows)
    lines = [f"top {len(rows)} statements by execution time over {predictions} predictions "
             "(execution only: parse, commit and WAL flush are not in it)", "",
             "  share of these  ms/pred  calls/pred  ms/call  statement"]
    for r in rows:
        lines.append(f"{100 * r['total_exec_time'] / total if total else 0:15.1f}% "
                     f"{r['total_exec_time'] / predictions:8.3f} "
                     f"{r['calls'] / predictions:10.2f} "
                     f"{r['total_exec_time'] / max(1, r['calls']):8.3f}  {_one_line(r['query'])}")
    return "\n".join(lines) + "\n"
