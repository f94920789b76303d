"""Cluster sync: several dispatcher instances share one fleet through Redis.

``RedisClusterSync(registry, url, instance_id=..., prefix=...)`` keeps one
instance's :class:`~pyscheduler.registry.NodeRegistry` in step with the
others'. It needs the ``redis`` extra (``pip install 'pyscheduler[redis]'``:
redis-py with hiredis) and a Redis >= 5 (streams). ``RedisServer`` starts a
throwaway ``redis-server`` (tests, ``pyscheduler simulate --instances``,
``pyscheduler bench --cluster``). ``docs/CLUSTER.md`` describes the layout
in Redis and what happens when an instance or Redis fails; ``docs/SECURITY.md``
the trust model and the limits on what is read back.
"""

from .codec import MalformedEntry
from .server import RedisServer, RedisServerError, find_redis_server
from .sync import RedisClusterSync

__all__ = ["MalformedEntry", "RedisClusterSync", "RedisServer", "RedisServerError", "find_redis_server"]
