"""The facade dispatchers call: :class:`NodeRegistry`."""

from .node_registry import REGISTER_POLICIES, NodeRegistry

__all__ = ["REGISTER_POLICIES", "NodeRegistry"]
