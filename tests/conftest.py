"""Shared pytest configuration: the ``hotpath`` marker switch and hypothesis profiles.

Tests that need the compiled ``pyscheduler._hotpath`` are marked ``hotpath``.
They run by default and FAIL (they are not skipped) when the extension cannot be
imported, so a broken build never passes silently. ``--no-hotpath`` deselects
them (use it for a pure-Python run, e.g. with ``PYSCHEDULER_NO_EXTENSIONS=1``).

Hypothesis profiles: ``ci`` (derandomized, no deadline, 200 examples; the
default), ``dev`` (no deadline) and ``long`` (3,000 examples, for a local
soak of the equivalence properties); pick one with ``HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

pytest_plugins = ["redis_server"]  # redis-server fixtures of the cluster tests (marker ``redis``)

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=200)
settings.register_profile("dev", deadline=None)
settings.register_profile("long", deadline=None, max_examples=3000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-hotpath",
        action="store_true",
        default=False,
        help="deselect tests marked 'hotpath' (those needing pyscheduler._hotpath)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--no-hotpath"):
        return
    kept, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker("hotpath") else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("hotpath") is None:
        return
    from pyscheduler import _compat

    if not _compat.HAVE_HOTPATH:
        why = (
            "PYSCHEDULER_NO_EXTENSIONS is set"
            if not _compat.USE_EXTENSIONS
            else f"import failed: {_compat.HOTPATH_IMPORT_ERROR!r}"
        )
        pytest.fail(
            f"test needs the compiled pyscheduler._hotpath extension ({why}); "
            "rebuild it with `pip install -e .` or run with --no-hotpath",
            pytrace=False,
        )


@pytest.fixture(
    scope="session",  # it hands out a class, never state: safe to share across hypothesis examples
    params=[
        pytest.param("python", id="python"),
        pytest.param("compiled", id="compiled", marks=pytest.mark.hotpath),
    ]
)
def load_table_cls(request: pytest.FixtureRequest) -> type:
    """Each load-table implementation in turn: ``PyLoadTable`` and the compiled ``LoadTable``.

    Tests that take this fixture are the one suite both implementations must pass;
    the compiled case is marked ``hotpath`` (deselected by ``--no-hotpath``).
    """
    if request.param == "python":
        from pyscheduler.state.loads import PyLoadTable

        return PyLoadTable
    from pyscheduler import _compat

    if not _compat.HAVE_HOTPATH:
        pytest.fail("the compiled LoadTable needs pyscheduler._hotpath", pytrace=False)
    return _compat.hotpath.LoadTable
