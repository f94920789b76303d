# Stub for the compiled extension pyscheduler._hotpath (sources: csrc/_hotpath.pyx).
# Import it only through pyscheduler._compat / pyscheduler.hashing: it may be absent.

from typing import Final

FNV64_OFFSET_BASIS: Final[int]  # 0xcbf29ce484222325
FNV64_PRIME: Final[int]  # 0x100000001b3

def fnv1a64(data: bytes) -> int:
    """FNV-1a-64 of ``data``. TypeError unless ``data`` is bytes."""

def pool_hash(routing_key: str, seed: int) -> int:
    """``fnv1a64(routing_key.encode("utf-8") + seed.to_bytes(8, "little"))``.

    TypeError for a non-str key or non-int seed; ValueError unless 0 <= seed < 2**64.
    """

def tiebreak_hash(routing_key: str, node_id: str) -> int:
    """``fnv1a64((routing_key + node_id).encode("utf-8"))``. TypeError for non-str."""
