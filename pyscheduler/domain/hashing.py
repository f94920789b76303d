"""FNV-1a-64 hashes used by selection: the one place hashing is exposed to Python.

docs/DESIGN.md §5: the routing key is hashed as UTF-8 bytes.

- ``fnv1a64(data)``: FNV-1a-64 of ``data`` (bytes).
- ``pool_hash(routing_key, seed)``: ``fnv1a64(key_utf8 + seed as 8 little-endian
  bytes)``; ``pool_hash(...) % n`` picks the session-affine pool among n.
- ``tiebreak_hash(routing_key, node_id)``: ``fnv1a64((routing_key + node_id) as
  UTF-8)``; the last key of the pick order.
- ``node_hash(node_id)``: ``fnv1a64(node_id as UTF-8)``.

The pure-Python versions (``py_*``) come first: they are the readable
definition, the fallback when the extension is missing or disabled, and the
oracle the compiled versions are tested against. The public names are bound to
``pyscheduler._hotpath`` when ``_compat.HAVE_HOTPATH``; both raise the same
errors (TypeError for a wrong type, ValueError for a seed out of range).
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING

from pyscheduler import _compat

__all__ = [
    "FNV64_OFFSET_BASIS",
    "FNV64_PRIME",
    "IMPLEMENTATION",
    "SEED_MAX",
    "fnv1a64",
    "node_hash",
    "pool_hash",
    "py_fnv1a64",
    "py_node_hash",
    "py_pool_hash",
    "py_tiebreak_hash",
    "tiebreak_hash",
]

FNV64_OFFSET_BASIS = 0xCBF29CE484222325
FNV64_PRIME = 0x100000001B3
_MASK64 = 0xFFFF_FFFF_FFFF_FFFF
SEED_MAX = _MASK64  #: the largest valid ``seed`` (seeds are unsigned 64-bit)


# --- argument checks (the compiled module raises the same messages) ---------


def _check_bytes(func: str, name: str, value: object) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"{func}() argument '{name}' must be bytes, not {type(value).__name__}")
    return value


def _check_str(func: str, name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{func}() argument '{name}' must be str, not {type(value).__name__}")
    return value


def _check_seed(func: str, seed: object) -> int:
    if isinstance(seed, bool):
        raise TypeError(f"{func}() argument 'seed' must be an int, not bool")
    try:
        value = operator.index(seed)  # int, or an integer type such as numpy.uint64
    except TypeError:
        raise TypeError(
            f"{func}() argument 'seed' must be an int, not {type(seed).__name__}"
        ) from None
    if not 0 <= value <= SEED_MAX:
        raise ValueError(f"{func}() argument 'seed' must satisfy 0 <= seed < 2**64, got {value}")
    return value


# --- pure Python: the definition --------------------------------------------


def _fnv1a64_update(h: int, data: bytes) -> int:
    for byte in data:
        h = ((h ^ byte) * FNV64_PRIME) & _MASK64
    return h


def py_fnv1a64(data: bytes) -> int:
    """FNV-1a-64 of ``data``; ``py_fnv1a64(b"") == FNV64_OFFSET_BASIS``."""
    return _fnv1a64_update(FNV64_OFFSET_BASIS, _check_bytes("fnv1a64", "data", data))


def py_pool_hash(routing_key: str, seed: int) -> int:
    """``fnv1a64(routing_key.encode("utf-8") + seed.to_bytes(8, "little"))``."""
    key = _check_str("pool_hash", "routing_key", routing_key)
    value = _check_seed("pool_hash", seed)
    return _fnv1a64_update(FNV64_OFFSET_BASIS, key.encode("utf-8") + value.to_bytes(8, "little"))


def py_tiebreak_hash(routing_key: str, node_id: str) -> int:
    """``fnv1a64((routing_key + node_id).encode("utf-8"))``."""
    key = _check_str("tiebreak_hash", "routing_key", routing_key)
    node = _check_str("tiebreak_hash", "node_id", node_id)
    return _fnv1a64_update(FNV64_OFFSET_BASIS, (key + node).encode("utf-8"))


def py_node_hash(node_id: str) -> int:
    """``fnv1a64(node_id.encode("utf-8"))``."""
    node = _check_str("node_hash", "node_id", node_id)
    return _fnv1a64_update(FNV64_OFFSET_BASIS, node.encode("utf-8"))


# --- public names: compiled when available ----------------------------------

if _compat.HAVE_HOTPATH and not TYPE_CHECKING:
    from pyscheduler._hotpath import fnv1a64, pool_hash, tiebreak_hash

    def node_hash(node_id: str) -> int:
        """``fnv1a64(node_id.encode("utf-8"))``."""
        # tiebreak_hash("", node_id) hashes exactly node_id's UTF-8 bytes.
        return tiebreak_hash("", _check_str("node_hash", "node_id", node_id))

    IMPLEMENTATION = "compiled"
else:
    fnv1a64 = py_fnv1a64
    pool_hash = py_pool_hash
    tiebreak_hash = py_tiebreak_hash
    node_hash = py_node_hash
    IMPLEMENTATION = "python"
