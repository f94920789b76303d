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

Only this module decides; everything else asks ``HAVE_HOTPATH``.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["HAVE_HOTPATH", "HOTPATH_IMPORT_ERROR", "USE_EXTENSIONS", "hotpath"]


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
