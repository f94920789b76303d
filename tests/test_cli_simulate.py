"""``pyscheduler simulate`` options: --engine, --fail-rate,
--heartbeat-interval, --sessions, --plot, and the progress bar."""

from __future__ import annotations

import io
import json
import sys

import pytest

from pyscheduler.tools import cli
from pyscheduler.tools.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv: str) -> dict:
    code, out, err = run(capsys, "simulate", "--json", *argv)
    assert code == 0, err
    return json.loads(out)


def test_default_engine_is_fast_when_the_extension_is_built(capsys):
    from pyscheduler import _compat

    report = run_json(capsys, "--jobs", "200")
    expected = "fast" if _compat.HAVE_HOTPATH else "legacy"
    assert report["engine"] == expected and report["path"] == expected
    assert report["serves"] == f"serves {expected}"


def test_legacy_engine(capsys):
    report = run_json(capsys, "--jobs", "200", "--engine", "legacy")
    assert report["engine"] == "legacy" and report["path"] == "legacy"


@pytest.mark.hotpath
@pytest.mark.parametrize("argv", [["--engine", "fast"], ["--fast"], ["--fast", "--engine", "fast"]])
def test_fast_engine(capsys, argv):
    report = run_json(capsys, "--jobs", "200", *argv)
    assert report["engine"] == "fast" and report["path"] == "fast"


@pytest.mark.hotpath
def test_shadow_engine_reports_mismatches(capsys):
    code, out, err = run(capsys, "simulate", "--jobs", "500", "--engine", "shadow")
    assert code == 0, err
    assert "engine shadow (path legacy)" in out
    assert "engine         shadow: serves legacy, computes fast beside it and counts mismatches" in out
    assert "shadow         500 decisions compared, 0 mismatches between fast and legacy" in out
    report = run_json(capsys, "--jobs", "500", "--engine", "shadow")
    assert report["shadow"] == {"compared": 500, "mismatches": 0}
    assert report["path"] == "legacy"


@pytest.mark.hotpath
def test_shadow_fast_engine_serves_fast(capsys):
    report = run_json(capsys, "--jobs", "300", "--engine", "shadow-fast")
    assert report["path"] == "fast" and report["shadow"] == {"compared": 300, "mismatches": 0}
    assert report["serves"] == "serves fast, computes legacy beside it and counts mismatches"


def test_fast_and_another_engine_contradict(capsys):
    code, _, err = run(capsys, "simulate", "--fast", "--engine", "legacy")
    assert code == 2 and "--fast and --engine legacy" in err


def test_fail_rate_shows_in_table_and_json(capsys):
    code, out, err = run(capsys, "simulate", "--jobs", "3000", "--fail-rate", "0.2", "--seed", "4")
    assert code == 0, err
    assert "node failures  20 of 100 nodes (fail rate 0.2)" in out
    assert "running jobs lost" in out
    report = run_json(capsys, "--jobs", "3000", "--fail-rate", "0.2", "--seed", "4")
    failed = report["failures_injected"]
    assert failed["nodes"] == 20 and failed["silent"] + failed["disconnected"] == 20
    assert report["timeline"]["nodes_up"][-1] == 80


def test_heartbeat_interval_and_sessions(capsys):
    report = run_json(capsys, "--jobs", "1000", "--heartbeat-interval", "5", "--sessions", "7")
    assert report["heartbeat_interval_s"] == 5.0 and report["sessions"] == 7
    expected = 100 * report["simulated_time_s"] / 5.0
    assert abs(report["heartbeats"] - expected) <= 100
    code, out, _ = run(capsys, "simulate", "--jobs", "100", "--sessions", "7")
    assert "7 sessions, a heartbeat every 15 s per node" in out


@pytest.mark.parametrize(
    "argv, option",
    [
        (["--fail-rate", "1.5"], "--fail-rate"),
        (["--fail-rate", "x"], "--fail-rate"),
        (["--heartbeat-interval", "0"], "--heartbeat-interval"),
        (["--sessions", "0"], "--sessions"),
        (["--engine", "turbo"], "--engine"),
    ],
)
def test_bad_values_are_usage_errors(capsys, argv, option):
    code, _, err = run(capsys, "simulate", *argv)
    assert code == 2 and option in err and "Traceback" not in err


def test_plot_writes_the_png_and_says_so(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "sim.png"
    code, out, err = run(
        capsys, "simulate", "--jobs", "2000", "--fail-rate", "0.1", "--plot", str(png)
    )
    assert code == 0, err
    assert f"plot written to {png}" in out
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_plot_with_json_keeps_stdout_json(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "sim.png"
    report = run_json(capsys, "--jobs", "300", "--plot", str(png))
    assert report["jobs"] == 300 and png.exists()


def test_plot_without_matplotlib_fails_before_the_run(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    png = tmp_path / "sim.png"
    code, out, err = run(capsys, "simulate", "--jobs", "100", "--plot", str(png))
    assert code == 3 and out == ""  # unavailable: an optional dependency is missing
    assert "pip install 'pyscheduler[plot]'" in err and "Traceback" not in err
    assert not png.exists()


# -- the progress bar ------------------------------------------------------------------------


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_progress_when_stderr_is_not_a_terminal():
    with cli._SimulationProgress(io.StringIO()) as progress:
        assert progress is None


def test_nothing_shows_during_the_first_second():
    stream = FakeTTY()
    with cli._SimulationProgress(stream) as progress:
        progress(1000, 5000)  # well within the first second of the run
    assert stream.getvalue() == ""


def test_plain_progress_line_without_rich(monkeypatch):
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.setitem(sys.modules, "rich.console", None)
    monkeypatch.setitem(sys.modules, "rich.progress", None)
    monkeypatch.setattr(cli._SimulationProgress, "DELAY_S", 0.0)
    stream = FakeTTY()
    with cli._SimulationProgress(stream) as progress:
        progress(1000, 4000)
        assert "1,000/4,000 jobs (25%)" in stream.getvalue()
        progress(2000, 4000)
    text = stream.getvalue()
    assert "2,000/4,000 jobs (50%)" in text
    assert text.endswith("\r")  # the line is wiped at the end


def test_rich_progress_bar(monkeypatch):
    pytest.importorskip("rich")
    monkeypatch.setattr(cli._SimulationProgress, "DELAY_S", 0.0)
    stream = FakeTTY()
    with cli._SimulationProgress(stream) as progress:
        progress(0, 4000)
        progress(3000, 4000)
        assert progress._bar.tasks[0].completed == 3000
        assert progress._bar.tasks[0].total == 4000
    assert not progress._bar.live.is_started


def test_simulate_passes_progress_only_on_a_terminal(capsys, monkeypatch):
    calls = []
    real = cli.simulate

    def spy(*args, **kwargs):
        calls.append(kwargs["progress"])
        return real(*args, **kwargs)

    monkeypatch.setattr(cli, "simulate", spy)
    code, _, err = run(capsys, "simulate", "--jobs", "50")
    assert code == 0 and calls == [None] and err == ""


def test_plot_series_styles_differ_so_identical_series_stay_visible():
    from pyscheduler.tools.simulation import _series_style

    styles = [_series_style(i, 200) for i in range(8)]
    for key in ("color", "linestyle", "marker"):
        assert len({s[key] for s in styles}) == (8 if key != "linestyle" else 4), key
    assert len({(s["color"], s["linestyle"], s["marker"]) for s in styles}) == 8
    assert len({s["markevery"][0] for s in styles}) == 8  # markers at different offsets
    assert all(0 <= s["markevery"][0] < 200 for s in styles)
    assert _series_style(3, 1)["markevery"] == (0, 1)
