"""FNV-1a-64 and the hashes built on it (docs/DESIGN.md §5 "Routing key", "Pool order", "Pick").

The pure-Python functions are the oracle; the compiled ones (``hotpath``) must
agree with them bit for bit and raise the same errors.
"""

from __future__ import annotations

import importlib.machinery
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyscheduler import _compat
from pyscheduler.domain import hashing

# Published FNV-1a 64-bit test vectors from the FNV reference code (test_fnv.c,
# Landon Curt Noll, public domain), cross-checked against other public test
# suites that copy the same table. Never derive these from our implementation.
FNV1A64_VECTORS = [
    (b"", 0xCBF29CE484222325),
    (b"a", 0xAF63DC4C8601EC8C),
    (b"b", 0xAF63DF4C8601F1A5),
    (b"c", 0xAF63DE4C8601EFF2),
    (b"d", 0xAF63D94C8601E773),
    (b"e", 0xAF63D84C8601E5C0),
    (b"f", 0xAF63DB4C8601EAD9),
    (b"fo", 0x08985907B541D342),
    (b"foo", 0xDCB27518FED9D577),
    (b"foob", 0xDD120E790C2512AF),
    (b"fooba", 0xCAC165AFA2FEF40A),
    (b"foobar", 0x85944171F73967E8),
    (b"\0", 0xAF63BD4C8601B7DF),
    (b"a\0", 0x089BE207B544F1E4),
    (b"b\0", 0x08A61407B54D9B5F),
    (b"c\0", 0x08A2AE07B54AB836),
    (b"d\0", 0x0891B007B53C4869),
    (b"e\0", 0x088E4A07B5396540),
    (b"chongo was here!\n", 0x46810940EFF5F915),
    (b"http://www.isthe.com/chongo/tech/math/prime/mersenne.html#largest", 0x8E87D7E7472B3883),
    (b"hello world", 0x779A65E7023CD2E7),
]

# Hand-frozen values of the definitions below. Pool choice and node tie-breaks
# must not move between releases or between machines: if one of these changes,
# every session is re-spread across pools.
POOL_HASH_GOLDEN = [
    ("", 0, 0xA8C7F832281A39C5),
    ("session-1", 42, 0x6C35EFD3A7A2EB47),
    ("日本語-会话", 2**64 - 1, 0x857DC70DDCA354DC),
]
TIEBREAK_HASH_GOLDEN = [
    ("", "", 0xCBF29CE484222325),
    ("session-1", "node-a", 0x912553C714CAC54B),
    ("", "foobar", 0x85944171F73967E8),
]

SEEDS = st.integers(min_value=0, max_value=hashing.SEED_MAX)


@pytest.fixture(
    params=["py", pytest.param("c", marks=pytest.mark.hotpath)],
)
def impl(request: pytest.FixtureRequest) -> types.SimpleNamespace:
    """The pure-Python functions, or the compiled ones."""
    if request.param == "py":
        return types.SimpleNamespace(
            fnv1a64=hashing.py_fnv1a64,
            pool_hash=hashing.py_pool_hash,
            tiebreak_hash=hashing.py_tiebreak_hash,
            node_hash=hashing.py_node_hash,
        )
    from pyscheduler import _hotpath

    return types.SimpleNamespace(
        fnv1a64=_hotpath.fnv1a64,
        pool_hash=_hotpath.pool_hash,
        tiebreak_hash=_hotpath.tiebreak_hash,
        node_hash=hashing.node_hash,  # compiled here: the hotpath check passed
    )


# --- definitions --------------------------------------------------------------


def test_constants() -> None:
    assert hashing.FNV64_OFFSET_BASIS == 0xCBF29CE484222325
    assert hashing.FNV64_PRIME == 0x100000001B3
    assert hashing.SEED_MAX == 2**64 - 1


@pytest.mark.parametrize(("data", "expected"), FNV1A64_VECTORS, ids=repr)
def test_fnv1a64_published_vectors(impl, data: bytes, expected: int) -> None:
    assert impl.fnv1a64(data) == expected


@pytest.mark.parametrize(("key", "seed", "expected"), POOL_HASH_GOLDEN)
def test_pool_hash_golden(impl, key: str, seed: int, expected: int) -> None:
    assert impl.pool_hash(key, seed) == expected


@pytest.mark.parametrize(("key", "node", "expected"), TIEBREAK_HASH_GOLDEN)
def test_tiebreak_hash_golden(impl, key: str, node: str, expected: int) -> None:
    assert impl.tiebreak_hash(key, node) == expected


def test_pool_hash_seed_is_8_little_endian_bytes(impl) -> None:
    assert impl.pool_hash("", 0) == hashing.py_fnv1a64(b"\0" * 8)
    assert impl.pool_hash("k", 1) == hashing.py_fnv1a64(b"k\x01" + b"\0" * 7)
    assert impl.pool_hash("k", 0x0102030405060708) == hashing.py_fnv1a64(
        b"k\x08\x07\x06\x05\x04\x03\x02\x01"
    )
    assert impl.pool_hash("k", 2**64 - 1) == hashing.py_fnv1a64(b"k" + b"\xff" * 8)


@given(key=st.text(), seed=SEEDS)
def test_pool_hash_definition(key: str, seed: int) -> None:
    expected = hashing.py_fnv1a64(key.encode("utf-8") + seed.to_bytes(8, "little"))
    assert hashing.py_pool_hash(key, seed) == expected
    assert hashing.pool_hash(key, seed) == expected


@given(key=st.text(), node=st.text())
def test_tiebreak_hash_definition(key: str, node: str) -> None:
    expected = hashing.py_fnv1a64((key + node).encode("utf-8"))
    assert hashing.py_tiebreak_hash(key, node) == expected
    assert hashing.tiebreak_hash(key, node) == expected


@given(node=st.text())
def test_node_hash_definition(node: str) -> None:
    expected = hashing.py_fnv1a64(node.encode("utf-8"))
    assert hashing.py_node_hash(node) == expected
    assert hashing.node_hash(node) == expected


def test_hashes_use_utf8(impl) -> None:
    key = "zh-日本語-é-🎧"
    assert impl.tiebreak_hash(key, "") == hashing.py_fnv1a64(key.encode("utf-8"))
    assert impl.pool_hash(key, 7) == hashing.py_fnv1a64(
        key.encode("utf-8") + (7).to_bytes(8, "little")
    )


def test_seed_accepts_integer_types(impl) -> None:
    expected = impl.pool_hash("k", 5)
    assert impl.pool_hash("k", np.uint64(5)) == expected
    assert impl.pool_hash("k", np.int32(5)) == expected
    assert impl.pool_hash("k", np.uint64(2**64 - 1)) == impl.pool_hash("k", 2**64 - 1)


# --- errors -------------------------------------------------------------------


@pytest.mark.parametrize("seed", [-1, 2**64, 2**70, -(2**63), np.int64(-1)], ids=repr)
def test_seed_out_of_range(impl, seed) -> None:
    with pytest.raises(ValueError, match=r"0 <= seed < 2\*\*64"):
        impl.pool_hash("k", seed)


@pytest.mark.parametrize("seed", [None, 1.0, "1", b"1", True, False, np.float64(1)], ids=repr)
def test_seed_type(impl, seed) -> None:
    with pytest.raises(TypeError, match="'seed' must be an int"):
        impl.pool_hash("k", seed)


BAD_CALLS = [
    ("fnv1a64", ("abc",), "'data' must be bytes, not str"),
    ("fnv1a64", (bytearray(b"a"),), "'data' must be bytes, not bytearray"),
    ("fnv1a64", (memoryview(b"a"),), "'data' must be bytes, not memoryview"),
    ("fnv1a64", (None,), "'data' must be bytes, not NoneType"),
    ("pool_hash", (b"key", 0), "'routing_key' must be str, not bytes"),
    ("pool_hash", (None, 0), "'routing_key' must be str, not NoneType"),
    ("tiebreak_hash", ("k", None), "'node_id' must be str, not NoneType"),
    ("tiebreak_hash", (1, "n"), "'routing_key' must be str, not int"),
    ("tiebreak_hash", ("k", b"n"), "'node_id' must be str, not bytes"),
    ("node_hash", (1,), "'node_id' must be str, not int"),
]


@pytest.mark.parametrize(("func", "args", "message"), BAD_CALLS, ids=lambda v: repr(v)[:30])
def test_type_errors(impl, func: str, args: tuple, message: str) -> None:
    fn = getattr(impl, func)
    with pytest.raises(TypeError, match=f"^{func}\\(\\) argument {message}$"):
        fn(*args)


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.pool_hash("\ud800", 0),
        lambda m: m.tiebreak_hash("k", "\udfff"),
        lambda m: m.tiebreak_hash("\ud83d", "\ude00"),  # a split pair is still two lone surrogates
    ],
)
def test_lone_surrogates_are_not_utf8(impl, call) -> None:
    with pytest.raises(UnicodeEncodeError):
        call(impl)


# --- compiled == pure ------------------------------------------------------------


@pytest.mark.hotpath
@given(data=st.binary(max_size=512))
def test_compiled_fnv1a64_equals_pure(data: bytes) -> None:
    from pyscheduler import _hotpath

    assert _hotpath.fnv1a64(data) == hashing.py_fnv1a64(data)


@pytest.mark.hotpath
@given(key=st.text(), seed=SEEDS)
def test_compiled_pool_hash_equals_pure(key: str, seed: int) -> None:
    from pyscheduler import _hotpath

    assert _hotpath.pool_hash(key, seed) == hashing.py_pool_hash(key, seed)


@pytest.mark.hotpath
@given(key=st.text(), node=st.text())
def test_compiled_tiebreak_hash_equals_pure(key: str, node: str) -> None:
    from pyscheduler import _hotpath

    assert _hotpath.tiebreak_hash(key, node) == hashing.py_tiebreak_hash(key, node)


@pytest.mark.hotpath
@pytest.mark.parametrize(
    ("func", "args"),
    [(f, a) for f, a, _ in BAD_CALLS if f != "node_hash"]
    + [("pool_hash", ("k", -1)), ("pool_hash", ("k", 2**64)), ("pool_hash", ("k", 1.5))],
    ids=lambda v: repr(v)[:30],
)
def test_compiled_errors_equal_pure(func: str, args: tuple) -> None:
    from pyscheduler import _hotpath

    with pytest.raises((TypeError, ValueError)) as pure:
        getattr(hashing, f"py_{func}")(*args)
    with pytest.raises(pure.type) as compiled:
        getattr(_hotpath, func)(*args)
    assert str(compiled.value) == str(pure.value)


# --- wiring ---------------------------------------------------------------------


def test_public_names_follow_compat() -> None:
    assert ("compiled" if _compat.HAVE_HOTPATH else "python") == hashing.IMPLEMENTATION
    if not _compat.HAVE_HOTPATH:
        assert hashing.fnv1a64 is hashing.py_fnv1a64
        assert hashing.pool_hash is hashing.py_pool_hash
        assert hashing.tiebreak_hash is hashing.py_tiebreak_hash
        assert hashing.node_hash is hashing.py_node_hash


@pytest.mark.hotpath
def test_public_names_are_compiled() -> None:
    from pyscheduler import _hotpath

    assert hashing.IMPLEMENTATION == "compiled"
    assert hashing.fnv1a64 is _hotpath.fnv1a64
    assert hashing.pool_hash is _hotpath.pool_hash
    assert hashing.tiebreak_hash is _hotpath.tiebreak_hash
    assert _compat.hotpath is _hotpath


@pytest.mark.hotpath
def test_extension_is_compiled_and_documented() -> None:
    from pyscheduler import _hotpath

    assert _hotpath.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert _hotpath.FNV64_OFFSET_BASIS == hashing.FNV64_OFFSET_BASIS
    assert _hotpath.FNV64_PRIME == hashing.FNV64_PRIME
    for name in ("fnv1a64", "pool_hash", "tiebreak_hash"):
        doc = getattr(_hotpath, name).__doc__
        assert doc.startswith(f"{name}(")  # embedsignature
        assert "FNV-1a-64" in doc or "fnv1a64(" in doc


@pytest.mark.hotpath
def test_extension_imports_nothing_from_the_package() -> None:
    """Load the .so under its own name alone: no other pyscheduler module appears."""
    from pyscheduler import _hotpath

    script = textwrap.dedent(
        """
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("pyscheduler._hotpath", sys.argv[1])
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        assert mod.fnv1a64(b"a") == 0xAF63DC4C8601EC8C
        loaded = {m for m in sys.modules if m.split(".")[0] == "pyscheduler"}
        print(sorted(loaded - {"pyscheduler._hotpath"}))  # Cython registers itself
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, _hotpath.__file__],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "[]"
