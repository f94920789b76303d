"""The PYSCHEDULER_NO_EXTENSIONS switch (read once, at import) and the fallback.

Each case runs in a fresh interpreter, since the switch is read at import time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pyscheduler
from pyscheduler.domain import hashing

# Imported in a child process; prints what it saw as JSON.
PROBE = textwrap.dedent(
    """
    import json
    from pyscheduler import _compat
    import pyscheduler.domain.hashing as h
    print(json.dumps({
        "use_extensions": _compat.USE_EXTENSIONS,
        "have_hotpath": _compat.HAVE_HOTPATH,
        "hotpath_is_none": _compat.hotpath is None,
        "import_error": repr(_compat.HOTPATH_IMPORT_ERROR),
        "implementation": h.IMPLEMENTATION,
        "public_is_pure": [
            h.fnv1a64 is h.py_fnv1a64,
            h.pool_hash is h.py_pool_hash,
            h.tiebreak_hash is h.py_tiebreak_hash,
            h.node_hash is h.py_node_hash,
        ],
        "hashes": [
            h.fnv1a64(b"foobar"),
            h.pool_hash("session-1", 42),
            h.pool_hash("日本語", 2**64 - 1),
            h.tiebreak_hash("session-1", "node-a"),
            h.node_hash("node-a"),
        ],
    }))
    """
)


def expected_hashes() -> list[int]:
    return [
        hashing.py_fnv1a64(b"foobar"),
        hashing.py_pool_hash("session-1", 42),
        hashing.py_pool_hash("日本語", 2**64 - 1),
        hashing.py_tiebreak_hash("session-1", "node-a"),
        hashing.py_node_hash("node-a"),
    ]


def run_probe(env_value: str | None, prelude: str = "") -> dict:
    """Run PROBE in a child interpreter that imports this same pyscheduler."""
    env = dict(os.environ)
    env.pop("PYSCHEDULER_NO_EXTENSIONS", None)
    if env_value is not None:
        env["PYSCHEDULER_NO_EXTENSIONS"] = env_value
    package_parent = str(Path(pyscheduler.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", prelude + PROBE],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("value", ["1", "y", "true", "yes", "anything"])
def test_no_extensions_uses_pure_python(value: str) -> None:
    seen = run_probe(value)
    assert seen["use_extensions"] is False
    assert seen["have_hotpath"] is False
    assert seen["hotpath_is_none"] is True
    assert seen["import_error"] == "None"  # not even tried
    assert seen["implementation"] == "python"
    assert seen["public_is_pure"] == [True, True, True, True]
    assert seen["hashes"] == expected_hashes()


@pytest.mark.hotpath
@pytest.mark.parametrize("value", [None, "", "0"])
def test_extensions_enabled_use_compiled(value: str | None) -> None:
    seen = run_probe(value)
    assert seen["use_extensions"] is True
    assert seen["have_hotpath"] is True, seen["import_error"]
    assert seen["implementation"] == "compiled"
    assert seen["public_is_pure"] == [False, False, False, False]
    assert seen["hashes"] == expected_hashes()


def test_failed_import_falls_back() -> None:
    """An extension that cannot be imported leaves HAVE_HOTPATH False, not an error."""
    block = "import sys\nsys.modules['pyscheduler._hotpath'] = None  # import now raises\n"
    seen = run_probe(None, prelude=block)
    assert seen["use_extensions"] is True
    assert seen["have_hotpath"] is False
    assert seen["import_error"].startswith(("ImportError", "ModuleNotFoundError"))
    assert seen["implementation"] == "python"
    assert seen["public_is_pure"] == [True, True, True, True]
    assert seen["hashes"] == expected_hashes()


def test_parent_process_agrees_with_the_pure_definition() -> None:
    assert [
        hashing.fnv1a64(b"foobar"),
        hashing.pool_hash("session-1", 42),
        hashing.pool_hash("日本語", 2**64 - 1),
        hashing.tiebreak_hash("session-1", "node-a"),
        hashing.node_hash("node-a"),
    ] == expected_hashes()


def test_registry_without_the_extension_serves_legacy_and_says_so():
    """All flags on but no extension: the legacy path serves, visibly (path="legacy")."""
    code = (
        "from pyscheduler import *\n"
        "from pyscheduler.tools.workloads import make_workload, make_jobs, build_registry\n"
        "wl = make_workload('small', 1)\n"
        "reg = build_registry(wl, clock=lambda: 100.0, flags=MigrationFlags.all_on())\n"
        "sels = [reg.select_node(j) for j in make_jobs(wl, 50, 2)]\n"
        "assert {s.path for s in sels} == {'legacy'}, {s.path for s in sels}\n"
        "assert any(s.ok for s in sels)\n"
        "assert reg.verify_consistency() == []\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYSCHEDULER_NO_EXTENSIONS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
