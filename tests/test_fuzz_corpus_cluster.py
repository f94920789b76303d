"""The cluster codec's fuzz target, run without atheris: every seed of the
checked-in corpus, and random bytes from hypothesis, through the same
``check`` (``tests/fuzz/fuzz_cluster_codec.py``): decoding returns a valid
value or raises ``MalformedEntry``, nothing else."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyscheduler.cluster import codec

FUZZ = Path(__file__).parent / "fuzz"
SEEDS = sorted((FUZZ / "corpus" / "cluster_codec").iterdir())


def _target():
    spec = importlib.util.spec_from_file_location("fuzz_cluster_codec", FUZZ / "fuzz_cluster_codec.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


target = _target()


def test_the_seed_corpus_covers_every_decoder():
    assert {path.read_bytes()[0] % len(target.TARGETS) for path in SEEDS} == set(range(len(target.TARGETS)))


@pytest.mark.parametrize("seed", SEEDS, ids=[p.name for p in SEEDS])
def test_every_seed_decodes_or_is_refused_by_name(seed):
    target.check(seed.read_bytes())


def test_valid_seeds_decode_and_hostile_ones_are_refused():
    """The target really decodes: valid seeds succeed, hostile ones raise MalformedEntry."""
    for name in ("entry-put", "hash", "info", "config", "version", "load", "json"):
        data = (FUZZ / "corpus" / "cluster_codec" / name).read_bytes()
        target.TARGETS[data[0]](data[1:])  # no exception: a valid value
    for name in ("entry-nested", "info-nested", "version-1e400", "json-unbalanced"):
        data = (FUZZ / "corpus" / "cluster_codec" / name).read_bytes()
        with pytest.raises(codec.MalformedEntry):
            target.TARGETS[data[0]](data[1:])


@given(st.binary(max_size=512))
def test_random_bytes_decode_or_are_refused_by_name(data):
    target.check(data)


@given(st.sampled_from(SEEDS), st.data())
def test_mutated_seeds_decode_or_are_refused_by_name(seed, data):
    raw = bytearray(seed.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(1, len(raw)))
        what = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if what == "flip" and at < len(raw):
            raw[at] = data.draw(st.integers(0, 255))
        elif what == "cut":
            del raw[at:at + data.draw(st.integers(1, 16))]
        else:
            raw[at:at] = data.draw(st.sampled_from([b"[", b"{", b"\x1f", b"\xff", b"1e400", b'"', b"\\"]))
    target.check(bytes(raw))
