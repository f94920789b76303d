"""Compiled hot path of pyscheduler (``pyscheduler._hotpath``).

Arrays and integers in, arrays and integers out: this module imports nothing
from the ``pyscheduler`` package. Python code reaches it through
``pyscheduler.hashing`` (and, later, ``pyscheduler.selection.fast``), which fall
back to pure-Python equivalents when the extension is not built.

Hashes (DESIGN §5, "Routing key" / "Pick"): FNV-1a-64 with 64-bit wraparound
arithmetic, offset basis 0xcbf29ce484222325 and prime 0x100000001b3.
"""

from cpython.number cimport PyNumber_Index
from cpython.unicode cimport PyUnicode_AsUTF8AndSize

from _types cimport uint64_t


cdef extern from *:
    """
    #define PYSCHED_FNV64_OFFSET_BASIS 0xcbf29ce484222325ULL
    #define PYSCHED_FNV64_PRIME 0x00000100000001b3ULL
    """
    const uint64_t _FNV64_OFFSET_BASIS "PYSCHED_FNV64_OFFSET_BASIS"
    const uint64_t _FNV64_PRIME "PYSCHED_FNV64_PRIME"


FNV64_OFFSET_BASIS = _FNV64_OFFSET_BASIS
FNV64_PRIME = _FNV64_PRIME


# --- C-level kernels ---------------------------------------------------------

cdef inline uint64_t fnv1a64_update(uint64_t h, const unsigned char* data, Py_ssize_t n) noexcept nogil:
    """Continue an FNV-1a-64 hash ``h`` over ``data[0:n]``.

    ``fnv1a64_update(fnv1a64_bytes(a, na), b, nb) == fnv1a64_bytes(a + b, na + nb)``:
    hashing a concatenation never needs the concatenated buffer.
    """
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ data[i]) * _FNV64_PRIME  # unsigned: wraps mod 2**64
    return h


cdef inline uint64_t fnv1a64_bytes(const unsigned char* data, Py_ssize_t n) noexcept nogil:
    """FNV-1a-64 of ``data[0:n]``; n == 0 gives the offset basis."""
    return fnv1a64_update(_FNV64_OFFSET_BASIS, data, n)


# --- argument checks (same messages as pyscheduler.hashing's pure versions) --

cdef inline const unsigned char* _utf8(str s, Py_ssize_t* n) except NULL:
    # UTF-8 view of ``s`` without a copy for ASCII strings (CPython caches the
    # UTF-8 form of other strings on the str object). Lone surrogates raise
    # UnicodeEncodeError, exactly as ``s.encode("utf-8")`` does.
    return <const unsigned char*>PyUnicode_AsUTF8AndSize(s, n)


cdef str _type_name(object obj):
    return type(obj).__name__


cdef uint64_t _checked_seed(str func, object seed) except? 0:
    if isinstance(seed, bool):
        raise TypeError(f"{func}() argument 'seed' must be an int, not bool")
    try:
        seed = PyNumber_Index(seed)
    except TypeError:
        raise TypeError(
            f"{func}() argument 'seed' must be an int, not {_type_name(seed)}"
        ) from None
    if not 0 <= seed <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(
            f"{func}() argument 'seed' must satisfy 0 <= seed < 2**64, got {seed}"
        )
    return <uint64_t>seed


# --- Python-visible functions ------------------------------------------------

def fnv1a64(data):
    """FNV-1a-64 of ``data``: start from 0xcbf29ce484222325 and, for each byte b,
    ``h = ((h ^ b) * 0x100000001b3) % 2**64``. ``fnv1a64(b"")`` is the offset basis.
    Raises TypeError unless ``data`` is bytes.
    """
    if not isinstance(data, bytes):
        raise TypeError(f"fnv1a64() argument 'data' must be bytes, not {_type_name(data)}")
    cdef const unsigned char* buf = <bytes>data
    return fnv1a64_bytes(buf, len(<bytes>data))


def pool_hash(routing_key, seed):
    """``fnv1a64(routing_key.encode("utf-8") + seed.to_bytes(8, "little"))``: the hash
    whose value mod n picks the session-affine pool among n eligible pools.
    ``seed`` is an unsigned 64-bit int (TypeError if not an int, ValueError unless
    ``0 <= seed < 2**64``); ``routing_key`` must be a str (TypeError).
    """
    if not isinstance(routing_key, str):
        raise TypeError(
            f"pool_hash() argument 'routing_key' must be str, not {_type_name(routing_key)}"
        )
    cdef uint64_t s = _checked_seed("pool_hash", seed)
    cdef Py_ssize_t n = 0
    cdef const unsigned char* key = _utf8(<str>routing_key, &n)
    cdef unsigned char seed_le[8]
    cdef int i
    for i in range(8):
        seed_le[i] = <unsigned char>((s >> (8 * i)) & 0xFF)  # little-endian on every host
    return fnv1a64_update(fnv1a64_bytes(key, n), seed_le, 8)


def tiebreak_hash(routing_key, node_id):
    """``fnv1a64((routing_key + node_id).encode("utf-8"))``: the last key of the
    pick order, so that equally loaded nodes are spread across sessions.
    Both arguments must be str (TypeError).
    """
    if not isinstance(routing_key, str):
        raise TypeError(
            f"tiebreak_hash() argument 'routing_key' must be str, not {_type_name(routing_key)}"
        )
    if not isinstance(node_id, str):
        raise TypeError(
            f"tiebreak_hash() argument 'node_id' must be str, not {_type_name(node_id)}"
        )
    cdef Py_ssize_t nk = 0, nn = 0
    cdef const unsigned char* key = _utf8(<str>routing_key, &nk)
    cdef const unsigned char* node = _utf8(<str>node_id, &nn)
    return fnv1a64_update(fnv1a64_bytes(key, nk), node, nn)
