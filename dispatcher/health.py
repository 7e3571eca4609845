"""Endpoint health: when an account endpoint is warned about, disabled or recovered.

An endpoint is *failing* from its first failed attempt after a success. Once every attempt
has failed for half of `disable_after` it is warned about (`inferhook.endpoint.failing`),
once for `disable_after` it is disabled (`inferhook.endpoint.disabled`: its deliveries are
then recorded `skipped`, never dropped); a success ends the spell, and one that follows a
warning is announced (`inferhook.endpoint.recovered`). The clock is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.endpoints import EndpointEvent


@dataclass(frozen=True)
class Health:
    """What the policy knows of one endpoint."""

    failing_since: datetime | None = None
    """First failed attempt since the last success; None while healthy."""
    warned: bool = False
    """The failing warning went out for this spell."""
    disabled: bool = False


def after_attempt(health: Health, *, ok: bool, at: datetime, now: datetime,
                  disable_after: timedelta) -> tuple[Health, EndpointEvent | None]:
    """The endpoint's health after one attempt started at `at`, and the event it calls for."""
    if ok:
        event = EndpointEvent.RECOVERED if health.warned else None
        return Health(disabled=health.disabled), event
    since = health.failing_since or at
    if not health.disabled and now - since >= disable_after:
        return Health(since, warned=True, disabled=True), EndpointEvent.DISABLED
    if not health.warned and now - since >= disable_after / 2:
        return Health(since, warned=True, disabled=health.disabled), EndpointEvent.FAILING
    return Health(since, health.warned, health.disabled), None
