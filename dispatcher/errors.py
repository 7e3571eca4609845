"""Errors of the dispatcher, as one tree.

    DispatcherError
    └── RefusedAddress   a webhook host resolves only to addresses we refuse (SSRF guard);
                         an OSError too, so the HTTP client reports it as a connect failure
"""

from __future__ import annotations

import errno


class DispatcherError(Exception):
    """Base of every error the dispatcher raises itself."""


class RefusedAddress(DispatcherError, OSError):
    """The webhook host resolves only to refused addresses; retrying will not help soon."""

    def __init__(self, message: str) -> None:
        # errno and strerror set, so the HTTP client's connect error carries the message.
        super().__init__(errno.EACCES, message)
