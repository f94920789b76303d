"""The names of one fleet's keys in Redis (``docs/CLUSTER.md``, "Layout in Redis")."""

from __future__ import annotations

__all__ = ["RedisKeys"]


class RedisKeys:
    """Every key of the fleet under ``prefix``: the change stream, the generation
    counter, the node-id set, the config hash, the epoch and one hash per node."""

    __slots__ = ("prefix", "events", "gen", "nodes", "config", "epoch", "node_prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.events = f"{prefix}:events"
        self.gen = f"{prefix}:gen"
        self.nodes = f"{prefix}:nodes"
        self.config = f"{prefix}:config"
        self.epoch = f"{prefix}:epoch"
        self.node_prefix = f"{prefix}:node:"

    def node(self, node_id: str) -> str:
        """The key of ``node_id``'s hash."""
        return self.node_prefix + node_id
