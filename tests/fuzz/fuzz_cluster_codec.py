"""Coverage-guided fuzz target for the cluster codec (what is read from Redis).

The property: decoding any bytes, as any of the fields cluster sync reads
from Redis, either returns a valid value or raises
:class:`pyscheduler.cluster.MalformedEntry` - never anything else (no
``RecursionError``, ``UnicodeDecodeError``, ``OverflowError``...), and what it
returns encodes back to the same value.

Run it (atheris: ``pip install atheris``)::

    python3 tests/fuzz/fuzz_cluster_codec.py -max_total_time=20 tests/fuzz/corpus/cluster_codec

The checked-in seed corpus is only read: new inputs go to a temporary
directory (printed at start) unless another directory is named first, e.g.
``python3 tests/fuzz/fuzz_cluster_codec.py -max_total_time=300 /tmp/cc
tests/fuzz/corpus/cluster_codec``. Without atheris, ``tests/test_fuzz_corpus_cluster.py``
replays the corpus through :func:`check`.

Input layout: the first byte picks the decoder (modulo :data:`TARGETS`), the
rest is what Redis would return. For a node hash, the rest is
``field 0x1F value 0x1F field 0x1F value ...``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

SEEDS = Path(__file__).resolve().parent / "corpus" / "cluster_codec"


def _import_codec() -> Any:
    """Import the codec (instrumented for coverage when atheris is running)."""
    from pyscheduler.cluster import codec

    return codec


codec: Any = None


def _json_depth(value: Any) -> int:
    """The nesting depth of decoded JSON (arrays and objects)."""
    if isinstance(value, dict):
        return 1 + max((_json_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_json_depth(v) for v in value), default=0)
    return 0


def _entry(payload: bytes) -> None:
    gen, origin, at, kind, parts = codec.decode_entry([b"e", payload])
    assert gen >= 1 and origin and kind in codec.EVENT_KINDS_BYTES, (gen, origin, kind)
    node = parts[codec.NODE]
    if kind == b"cfg":
        codec.decode_version(parts[5])
        return
    node_id = codec.decode_node_id(node)
    if kind == b"reg":
        _info(parts[5], node_id)
    elif kind == b"put":
        state = codec.decode_put(node_id, codec.decode_owner(origin), gen, parts)
        assert state.node_id == node_id and state.info.node_id == node_id
    elif kind == b"hb":
        codec.decode_status(parts[5])
        _load(parts[6])
        if len(parts) > 7:
            _info(parts[7], node_id)
    elif kind in (b"drain", b"disc"):
        codec.decode_status(parts[5])


def _node_hash(payload: bytes) -> None:
    items = payload.split(codec.SEP)
    fields = dict(zip(items[0::2], items[1::2]))
    state = codec.decode_node_hash("n1", fields)
    assert state.node_id == "n1" == state.info.node_id and state.owner and state.generation >= 1
    assert set(state.flags) <= {codec.FLAG_DRAINING, codec.FLAG_DISCONNECTED}


def _info(payload: bytes, node_id: str = "n1") -> None:
    info = codec.decode_info(payload, node_id)
    assert info.node_id == node_id
    assert codec.decode_info(codec.encode_info(info), node_id) == info


def _config(payload: bytes) -> None:
    cfg = codec.decode_config(payload)
    assert codec.decode_config(codec.encode_config(cfg)) == cfg


def _version(payload: bytes) -> None:
    version = codec.decode_version(payload)
    assert 1 <= version < 10 ** codec.MAX_VERSION_DIGITS and str(version).encode() == payload


def _load(payload: bytes) -> None:
    hb = codec.decode_load(payload)
    assert codec.decode_load(codec.encode_load(hb)) == hb


def _json(payload: bytes) -> None:
    value = codec.loads_bounded(payload, "fuzz input", codec.MAX_INFO_BYTES)
    assert _json_depth(value) <= codec.MAX_JSON_DEPTH


def _short_fields(payload: bytes) -> None:
    for decode in (codec.decode_node_id, codec.decode_owner, codec.decode_flags, codec.decode_status):
        try:
            decode(payload)
        except codec.MalformedEntry:
            pass


TARGETS = (_entry, _node_hash, _info, _config, _version, _load, _json, _short_fields)


def check(data: bytes) -> None:
    """Decode ``data`` (see the module docstring); raise if the codec broke its promise."""
    global codec
    if codec is None:
        codec = _import_codec()
    if not data:
        return
    target = TARGETS[data[0] % len(TARGETS)]
    try:
        target(data[1:])
    except codec.MalformedEntry:
        pass


def main(argv: list[str]) -> None:
    """Run the fuzzer (libFuzzer options and corpus directories as arguments)."""
    import atheris

    global codec
    with atheris.instrument_imports(include=["pyscheduler"]):
        codec = _import_codec()
    dirs = [a for a in argv[1:] if not a.startswith("-")]
    if dirs and Path(dirs[0]).resolve() == SEEDS:
        scratch = tempfile.mkdtemp(prefix="fuzz-cluster-codec-")
        print(f"new inputs go to {scratch} (the seed corpus is not written)", file=sys.stderr)
        argv = [argv[0], *[a for a in argv[1:] if a.startswith("-")], scratch, *dirs]
    atheris.Setup(argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    sys.path.insert(0, os.fspath(Path(__file__).resolve().parents[2]))  # the worktree's package
    main(sys.argv)
