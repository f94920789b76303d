"""Build the compiled hot path ``pyscheduler._hotpath`` from ``csrc/``.

Metadata lives in pyproject.toml; this file only declares the extension.

Environment:
  PYSCHEDULER_NO_EXTENSIONS=1  build no extension at all (pure-Python install;
                               ``pyscheduler._compat`` reads the same variable at
                               import time).
  PYSCHEDULER_CYTHON_DEBUG=1   bounds/wraparound/initialized checks on, ``-O0 -g3``
                               (release builds are optimized and, on Linux, stripped:
                               the linker's ``-s`` drops the symbol tables).
  PYSCHEDULER_KEEP_SYMBOLS=1   an optimized build that keeps its symbol tables, for
                               profilers (``perf report``, ``py-spy --native``).
  PYSCHEDULER_CYTHON_ANNOTATE=1  also write the Cython annotation (.html) next to
                               the generated C, under build/cython/<mode>/csrc/.

Cython compiler directives are set here, once; .pyx/.pxd file headers must not
repeat anything the debug build flips.
"""

import os
import sys

from setuptools import Extension, setup


def _env_flag(name: str) -> bool:
    """Any non-empty value other than "0" turns the flag on."""
    return os.environ.get(name, "") not in ("", "0")


NO_EXTENSIONS = _env_flag("PYSCHEDULER_NO_EXTENSIONS")
DEBUG_BUILD = _env_flag("PYSCHEDULER_CYTHON_DEBUG")
ANNOTATE = _env_flag("PYSCHEDULER_CYTHON_ANNOTATE")
KEEP_SYMBOLS = _env_flag("PYSCHEDULER_KEEP_SYMBOLS")


def _extensions() -> list:
    if NO_EXTENSIONS:
        return []

    import numpy
    from Cython.Build import cythonize

    checks = DEBUG_BUILD
    directives = {
        "language_level": 3,
        "embedsignature": True,
        "boundscheck": checks,
        "wraparound": checks,
        "initializedcheck": checks,
        "nonecheck": False,
        "cdivision": True,
    }
    extra_compile_args = ["-O0", "-g3"] if DEBUG_BUILD else ["-O3", "-DNDEBUG"]
    # A release .so carries no debug or symbol tables (2.1 MB -> a few hundred KB);
    # a debug build keeps everything for gdb.
    strip = not (DEBUG_BUILD or KEEP_SYMBOLS) and sys.platform.startswith("linux")
    extra_link_args = ["-s"] if strip else []

    extensions = [
        Extension(
            "pyscheduler._hotpath",
            sources=["csrc/_hotpath.pyx"],
            include_dirs=["csrc", numpy.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=extra_compile_args,
            extra_link_args=extra_link_args,
        )
    ]
    return cythonize(
        extensions,
        include_path=["csrc"],
        compiler_directives=directives,
        annotate=ANNOTATE,
        # Debug and release C files live apart, so switching modes never reuses
        # a C file generated with the other mode's directives.
        build_dir=os.path.join("build", "cython", "debug" if DEBUG_BUILD else "release"),
    )


setup(ext_modules=_extensions())
