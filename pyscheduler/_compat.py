"""The switch between the compiled hot path and the pure-Python fallback.

``PYSCHEDULER_NO_EXTENSIONS`` is read once, when this module is imported: any
non-empty value other than ``"0"`` disables the extension. Changing the variable
afterwards has no effect in this process.

- ``USE_EXTENSIONS``: the environment allows the extension.
- ``HAVE_HOTPATH``: ``pyscheduler._hotpath`` was allowed *and* imported.
- ``hotpath``: that module, or ``None``.
- ``HOTPATH_IMPORT_ERROR``: why the import failed (``None`` if it did not fail or
  was not tried); the test suite reports it, so a broken build fails loudly there
  instead of silently running the fallback.
- ``KERNEL_CODES``: the kernels' status, node-flag, language and reason codes and
  the attempt-record layout, as the compiled module exports them — or, without
  it, ``FALLBACK_KERNEL_CODES`` (a test holds the two equal). Python code that
  builds kernel input or reads kernel output takes its codes from here.

Only this module decides; everything else asks ``HAVE_HOTPATH``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from types import MappingProxyType, ModuleType

__all__ = ["FALLBACK_KERNEL_CODES", "HAVE_HOTPATH", "HOTPATH_IMPORT_ERROR", "KERNEL_CODES", "USE_EXTENSIONS", "hotpath"]


def _extensions_disabled(value: str) -> bool:
    return value not in ("", "0")


USE_EXTENSIONS: bool = not _extensions_disabled(os.environ.get("PYSCHEDULER_NO_EXTENSIONS", ""))

hotpath: ModuleType | None = None
HOTPATH_IMPORT_ERROR: ImportError | None = None

if USE_EXTENSIONS:
    try:
        # import_module, not "from pyscheduler import _hotpath": the package is
        # still initialising here, and that form would misreport a missing
        # extension as a circular import.
        hotpath = importlib.import_module("pyscheduler._hotpath")
    except ImportError as exc:  # not built, or built for another interpreter
        hotpath = None
        HOTPATH_IMPORT_ERROR = exc

HAVE_HOTPATH: bool = hotpath is not None

FALLBACK_KERNEL_CODES: Mapping[str, int] = MappingProxyType({
    "ST_READY": 0,  # node status in the load table
    "ST_NOT_READY": 1,  # REGISTERING, DEGRADED or DRAINING
    "ST_OFFLINE": 2,
    "NF_HAS_GPU": 1,  # bits of the snapshot's node_flags column
    "NF_PUBLIC": 2,
    "LANG_UNKNOWN": -1,  # a job language no node or pool of the generation knows
    "LANG_AUTO": -2,  # the source "auto"
    "ATT_POOL": 0,  # attempt record: pool index, candidates, then one count per check reason
    "ATT_TOTAL": 1,
    "ATT_COUNTS": 2,
    "ATT_WIDTH": 14,
    "ATT_SKIPPED": -1,  # ATT_TOTAL of a pool skipped for reason r: ATT_SKIPPED - r
    "LOAD_RECORD_BYTES": 64,  # one NodeLoad record: a cache line
    "R_NO_ELIGIBLE_POOL": 12,  # whole-job outcomes
    "R_NO_NODES": 13,
})
"""The kernel codes when the extension is absent (equal to the compiled ones)."""

KERNEL_CODES: Mapping[str, int] = (
    MappingProxyType(dict(hotpath.KERNEL_CODES)) if hotpath is not None else FALLBACK_KERNEL_CODES
)
