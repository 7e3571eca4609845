"""Helpers around bench.tools.openloop: run it, and read latencies out of its samples."""

from __future__ import annotations

from typing import Any

from bench.context import Context

Samples = list[dict[str, Any]]


async def open_loop(ctx: Context, rate: float, seconds: float, *, split: str | None = None,
                    drain: float = 30.0, no_webhook: bool = False) -> dict[str, Any]:
    """Create digits predictions at `rate`/s for `seconds` with webhooks to the generator."""
    args = ["--url", ctx.stack.base_url, "--key", ctx.stack.key, "--body", str(ctx.body_file()),
            "--rate", f"{rate:g}", "--seconds", f"{seconds:g}", "--drain-timeout", f"{drain:g}"]
    if split:
        args += ["--split", split]
    if no_webhook:
        args.append("--no-webhook")
    return await ctx.tool("openloop", *args, timeout=seconds + drain + 120)


def tracked(result: dict[str, Any], group: str = "a") -> Samples:
    """Samples of `group` that were accepted (201), so a terminal webhook is owed."""
    return [s for s in result["samples"] if s["group"] == group and s["status"] == 201]


def overheads(result: dict[str, Any], group: str = "a") -> list[float]:
    """Submit → terminal webhook minus the model's predict_time, seconds, from the due time.

    A webhook that never came counts as arriving when the generator gave up (a lower
    bound), so losses push the percentiles up instead of vanishing from them.
    """
    gave_up = result["finished_after"]
    start = min(s["due"] for s in result["samples"])
    values = []
    for s in tracked(result, group):
        if s["webhook_at"] is None:
            values.append(start + gave_up - s["due"])
        else:
            values.append(s["webhook_at"] - s["due"] - (s["predict_time"] or 0.0))
    return values


def create_latencies(result: dict[str, Any]) -> list[float]:
    """Due time → 201 answer, seconds, for every request sent."""
    return [s["responded"] - s["due"] for s in result["samples"] if s["responded"] is not None]


def first_attempt(result: dict[str, Any], group: str = "a") -> list[float]:
    """Terminal event (completed_at) → webhook arrival, seconds (wall clocks, same machine)."""
    return [s["webhook_wall"] - s["completed_wall"] for s in tracked(result, group)
            if s["webhook_wall"] is not None and s["completed_wall"] is not None]


def missing(result: dict[str, Any], group: str = "a") -> int:
    """Accepted predictions whose terminal webhook did not arrive in time."""
    return sum(1 for s in tracked(result, group) if s["webhook_at"] is None)


def refused(result: dict[str, Any]) -> int:
    """Creates not answered 201."""
    return sum(1 for s in result["samples"] if s["status"] != 201)
