"""redis-py, when the ``redis`` extra is installed, and the errors worth a retry."""

from __future__ import annotations

from typing import Any

__all__ = ["TRANSIENT", "redis", "unparsed"]

try:
    import redis
except ImportError:  # pragma: no cover - exercised only without the extra
    redis = None  # type: ignore[assignment]

# Redis errors after which a retry may succeed: the connection, or a Redis
# that is starting (loading) or read-only for a moment (failover).
if redis is not None:
    TRANSIENT: tuple[type[BaseException], ...] = (
        redis.ConnectionError,
        redis.TimeoutError,
        redis.BusyLoadingError,
        redis.ReadOnlyError,
        OSError,
    )
else:  # pragma: no cover
    TRANSIENT = (OSError,)


def unparsed(response: Any, **options: Any) -> Any:
    """A response callback that returns Redis' reply as it came (the reader
    parses stream entries itself, :func:`.codec.decode_entry`)."""
    return response
