"""Replay every checked-in fuzz corpus file through its target (no atheris needed).

Each target (``tests/fuzz/_input_targets.py``) asserts that its input works or
raises a ``SchedulerError`` and that a failed call changed nothing; an input
that once crashed a target is kept in the corpus as its regression test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent / "fuzz"
sys.path.insert(0, str(FUZZ))
import _input_targets  # noqa: E402

sys.path.remove(str(FUZZ))

CASES = sorted(
    (name, path)
    for name in _input_targets.TARGETS
    for path in (FUZZ / "corpus" / name).iterdir()
    if path.is_file()
)


def test_every_target_has_a_seed_corpus_and_a_script():
    for name in _input_targets.TARGETS:
        assert any((FUZZ / "corpus" / name).iterdir()), name
        assert (FUZZ / f"fuzz_{name}.py").is_file(), name


@pytest.mark.parametrize(("name", "path"), CASES, ids=[f"{n}/{p.name}" for n, p in CASES])
def test_corpus_file_keeps_the_property(name, path):
    _input_targets.TARGETS[name](path.read_bytes())


@pytest.mark.parametrize("name", sorted(_input_targets.TARGETS))
@pytest.mark.parametrize(
    "data",
    [b"", b"\x00\xff", b"[" * 5000, b'{"info": ' * 3000, b"a = 1\n" * 3, "é = 1".encode("utf-16")],
    ids=["empty", "binary", "deep-brackets", "deep-json", "repeated-key", "utf16"],
)
def test_targets_hold_on_degenerate_inputs(name, data):
    _input_targets.TARGETS[name](data)


def test_the_checked_in_corpus_is_never_written_by_a_run(tmp_path):
    corpus = str(FUZZ / "corpus" / "phase3_toml")
    argv = _input_targets.fuzz_argv(["fuzz", "-max_total_time=1", corpus])
    assert argv[0] == "fuzz" and argv[-1] == corpus and len(argv) == 4
    assert not Path(argv[2]).resolve().is_relative_to(FUZZ)
    mine = ["fuzz", str(tmp_path), corpus]
    assert _input_targets.fuzz_argv(mine) == mine
    with_dict = _input_targets.fuzz_argv(mine, "phase3_toml")
    assert with_dict[1] == f"-dict={_input_targets.TOML_DICT}" and with_dict[2:] == mine[1:]
    assert _input_targets.fuzz_argv(mine, "node_ingestion") == mine


@pytest.mark.parametrize("name", sorted(_input_targets.TARGETS))
def test_each_fuzz_script_runs_under_atheris(name, tmp_path):
    """A fixed number of runs (not a time) of each script, as the docs say to run it."""
    pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris)")
    import subprocess

    script = FUZZ / f"fuzz_{name}.py"
    proc = subprocess.run(
        [sys.executable, str(script), "-runs=300", "-seed=1", str(tmp_path), str(FUZZ / "corpus" / name)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 300 runs" in proc.stderr
