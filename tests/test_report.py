"""The tools' one percentile and one table formatter."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pyscheduler.tools.report import percentile, summary, text_table


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200), st.floats(0, 100))
def test_percentile_is_numpys_linear_percentile(values, q):
    assert percentile(values, q) == float(np.percentile(values, q))


def test_percentile_and_summary_of_nothing_are_nan():
    assert math.isnan(percentile([], 50))
    empty = summary([])
    assert empty["samples"] == 0 and all(math.isnan(empty[k]) for k in ("p50", "p99", "max"))


def test_summary_scales_every_figure():
    values = list(range(1, 101))
    s = summary(values, scale=1e3)
    assert s["samples"] == 100
    assert s["p50"] == percentile(values, 50) * 1e3
    assert s["p99"] == percentile(values, 99) * 1e3
    assert s["max"] == 100e3


def test_text_table_aligns_columns_left_or_right():
    lines = text_table([["name", "n"], ["alpha", "7"], ["b", "1234"]], right={1}, indent="  ")
    assert lines == [
        "  name      n",
        "  alpha     7",
        "  b      1234",
    ]


@given(st.lists(st.lists(st.text("ab c", max_size=6), min_size=3, max_size=3), min_size=1, max_size=8))
def test_every_left_aligned_cell_starts_where_its_column_starts(rows):
    lines = text_table(rows)
    widths = [max(len(r[c]) for r in rows) for c in range(3)]
    starts = [sum(widths[:c]) + 2 * c for c in range(3)]
    for line, row in zip(lines, rows):
        padded = line.ljust(sum(widths) + 4)
        for start, cell in zip(starts, row):
            assert padded[start:start + len(cell)] == cell
        assert not line.endswith(" ")
    assert text_table([]) == []
