"""The exceptions pyscheduler raises.

Every error a caller can provoke with bad input is a subclass of
:class:`SchedulerError`, and its message names the field and the bad value.
An operation that raises leaves the registry as it was.
"""

from __future__ import annotations

__all__ = [
    "SchedulerError",
    "ConfigError",
    "InvalidHeartbeatError",
    "InvalidRequestError",
    "UnknownNodeError",
    "UnknownPoolError",
    "DuplicateNodeError",
    "LimitExceededError",
]


class SchedulerError(Exception):
    """Base class of every error pyscheduler raises on purpose."""


class ConfigError(SchedulerError, ValueError):
    """A configuration value (pool, Phase3, core services, TOML) is invalid."""


class InvalidHeartbeatError(SchedulerError, ValueError):
    """A heartbeat carries a value that cannot be applied (NaN, out of range, ...)."""


class InvalidRequestError(SchedulerError, ValueError):
    """A job request or a node description is malformed."""


class LimitExceededError(InvalidRequestError):
    """A node description or a job is past one of the documented limits
    (:mod:`pyscheduler.domain.limits`): too many languages, services or labels,
    an id or a text too long."""


class UnknownNodeError(SchedulerError, KeyError):
    """The node id is not registered (or was disconnected and must register again)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnknownPoolError(SchedulerError, KeyError):
    """The pool id is neither configured nor generated."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DuplicateNodeError(SchedulerError):
    """A node registered with ``policy="reject_duplicate"`` already exists."""
