"""Errors raised while provisioning or running the local servers."""


class InfraError(RuntimeError):
    """A local server could not be provisioned, started or stopped; the message says what to do."""
