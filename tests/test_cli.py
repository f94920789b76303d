"""The ``pyscheduler`` command line, run in-process through ``main(argv)``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyscheduler import Phase3Config
from pyscheduler.tools.cli import main

ROOT = Path(__file__).resolve().parents[1]
POOLS = str(ROOT / "examples" / "pools.toml")
FLEET = str(ROOT / "examples" / "fleet.toml")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# -- simulate ----------------------------------------------------------------------------------


def test_simulate_small_prints_the_figures(capsys):
    code, out, err = run(capsys, "simulate", "--workload", "small", "--jobs", "300", "--seed", "3")
    assert code == 0, err
    for label in (
        "decisions/s",
        "p50",
        "p95",
        "p99",
        "success rate",
        "rejections",
        "busiest pools",
    ):
        assert label in out, label
    assert "workload small (seed 3): 100 nodes, 10 pools" in out
    assert "jobs           300 (" in out


def test_simulate_json_has_the_expected_keys(capsys):
    code, out, err = run(
        capsys, "simulate", "--workload", "small", "--jobs", "400", "--seed", "2", "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    for key in (
        "workload", "jobs", "successes", "success_rate", "decisions_per_s", "wall_time_s",
        "latency_us", "rejections", "heartbeats", "pool_usage",
    ):  # fmt: skip
        assert key in report, key
    assert report["workload"] == "small" and report["jobs"] == 400
    assert 0.0 <= report["success_rate"] <= 1.0
    assert report["success_rate"] == report["successes"] / 400
    assert sum(report["rejections"].values()) == 400 - report["successes"]
    assert set(report["latency_us"]) >= {"p50", "p95", "p99"}
    assert report["latency_us"]["p50"] <= report["latency_us"]["p95"] <= report["latency_us"]["p99"]
    assert report["decisions_per_s"] > 0
    assert report["heartbeats"] > 0
    assert len(report["pool_usage"]) == 10
    assert sum(p["placed"] for p in report["pool_usage"]) == report["successes"]


def test_simulate_without_heartbeats_sends_none(capsys):
    code, out, _ = run(capsys, "simulate", "--jobs", "50", "--no-heartbeats", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["heartbeats"] == 0 and report["heartbeats_enabled"] is False


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["simulate", "--jobs", "0"], "--jobs"),
        (["simulate", "--jobs", "many"], "--jobs"),
        (["simulate", "--workload", "1m"], "--workload"),
        (["simulate", "--seed", "-4"], "--seed"),
        (["frobnicate"], "frobnicate"),
        ([], "COMMAND"),
    ],
)
def test_usage_errors_exit_2_with_one_line(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert needle in one_error_line(err)
    assert out == ""


def test_help_exits_0(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "simulate" in out and "explain" in out and "validate-config" in out


# -- explain ------------------------------------------------------------------------------------


def test_explain_on_the_example_files(capsys):
    code, out, err = run(capsys, "explain", "--config", POOLS, "--fleet", FLEET, "--job", "zh:en")
    assert code == 0, err
    assert "nodes available" in out
    assert "selected gpu-en-zh-01 from pool 1" in out
    assert "pools tried" in out
    # the fleet's deliberate problems all show up in the breakdown
    for reason in ("status_not_ready", "gpu_unavailable", "not_in_public_pool", "capacity_exceeded",
                   "resource_threshold_exceeded"):  # fmt: skip
        assert reason in out, reason


def test_explain_counts_excluded_nodes(capsys):
    code, out, _ = run(
        capsys, "explain", "--config", POOLS, "--fleet", FLEET, "--job", "zh:en",
        "--exclude", "gpu-en-zh-01", "--exclude", "gpu-en-zh-03",
    )  # fmt: skip
    assert code == 0
    assert "excluded gpu-en-zh-01, gpu-en-zh-03" in out
    assert "2 excluded" in out
    assert "selected gpu-en-ja-zh-08 from pool 1" in out


def test_explain_with_a_session_uses_session_affinity(capsys):
    # pools.toml turns session affinity on: the session's hash picks the preferred pool
    code, out, _ = run(capsys, "explain", "--config", POOLS, "--fleet", FLEET, "--job", "zh:en",
                       "--session", "s-1")  # fmt: skip
    assert code == 0
    assert "session s-1" in out
    assert "nodes available" in out


def test_explain_shows_a_failed_selection(capsys):
    code, out, _ = run(capsys, "explain", "--config", POOLS, "--fleet", FLEET, "--job", "ja:zh")
    assert code == 0
    assert "nodes available" in out
    # ja->zh: pool 4 (specific pairs) is eligible; its members lack ja->zh translation or are busy
    assert "pool 4" in out


def test_explain_on_a_standard_workload(capsys):
    code, out, err = run(
        capsys, "explain", "--workload", "small", "--job", "auto:en", "--types", "ASR,NMT"
    )
    assert code == 0, err
    assert "nodes available" in out
    assert "types ASR|NMT" in out


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--job", "zh"], "SRC:TGT"),
        (["--job", "zh:"], "tgt_lang"),
        (["--job", "zh:auto"], "auto"),
        (["--job", "zh:en", "--types", "ASR,FOO"], "FOO"),
    ],
)
def test_explain_rejects_a_bad_job_as_a_usage_error(capsys, extra, needle):
    code, _, err = run(capsys, "explain", "--fleet", FLEET, *extra)
    assert code == 2  # --job is an argument: exit 2 like a missing --fleet
    assert needle in one_error_line(err)


def test_explain_needs_a_fleet_or_a_workload(capsys):
    code, _, err = run(capsys, "explain", "--job", "zh:en")
    assert code == 2
    assert "--fleet" in one_error_line(err)
    code, _, err = run(capsys, "explain", "--workload", "small", "--fleet", FLEET, "--job", "zh:en")
    assert code == 2
    one_error_line(err)


def test_explain_reports_a_bad_fleet_file(capsys, tmp_path):
    bad = tmp_path / "fleet.toml"
    bad.write_text('[[nodes]]\nnode_id = "a"\nmax_concurrent_jobs = 0\n')
    code, _, err = run(capsys, "explain", "--fleet", str(bad), "--job", "zh:en")
    assert code == 1
    line = one_error_line(err)
    assert "nodes[0]" in line and "max_concurrent_jobs" in line


def test_explain_reports_a_missing_fleet_file(capsys, tmp_path):
    code, _, err = run(capsys, "explain", "--fleet", str(tmp_path / "nope.toml"), "--job", "zh:en")
    assert code == 1
    assert "nope.toml" in one_error_line(err)


# -- validate-config ------------------------------------------------------------------------------


def test_validate_config_accepts_the_example(capsys):
    code, out, err = run(capsys, "validate-config", POOLS)
    assert code == 0, err
    assert out.strip() == f"OK: {len(Phase3Config.from_toml(POOLS).pools)} pools"
    assert out.strip() == "OK: 8 pools"


def test_example_config_uses_the_features_it_shows():
    cfg = Phase3Config.from_toml(POOLS)
    assert {p.nmt_rule for p in cfg.pools} == {
        "any_to_any",
        "any_to_en",
        "en_to_any",
        "specific_pairs",
    }
    assert any(p.blocked_pairs for p in cfg.pools) and any(p.required_services for p in cfg.pools)
    assert set(cfg.tenant_overrides.values()) <= {p.pool_id for p in cfg.pools}
    assert Phase3Config.from_dict(cfg.to_dict()) == cfg


POOL = '[[pools]]\npool_id = {id}\nname = "{name}"\nlanguages = ["en", "zh"]\n'


@pytest.mark.parametrize(
    "text, needles",
    [
        ("enabled = \n", ["malformed TOML"]),
        ("[[pools]\n", ["malformed TOML"]),
        (
            POOL.format(id=1, name="a") + POOL.format(id=1, name="b"),
            ["pools", "duplicate pool_id 1"],
        ),
        ("enabled = true\nfrobnicate = 3\n", ["unknown key", "frobnicate"]),
        (POOL.format(id=1, name="a") + "colour = 'red'\n", ["unknown key", "colour"]),
        ("resource_threshold = 120\n", ["resource_threshold", "120"]),
        ("heartbeat_interval_s = 60\nheartbeat_timeout_s = 30\n", ["heartbeat_timeout_s"]),
        (
            POOL.format(id=1, name="a").replace('"zh"', '"zh"]\nnmt_rule = "sideways"#'),
            ["nmt_rule", "sideways"],
        ),
        ("[tenant_overrides]\nacme = -1\n", ["tenant_overrides", "acme"]),
    ],
)
def test_validate_config_rejects_bad_files_naming_the_field(capsys, tmp_path, text, needles):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code, out, err = run(capsys, "validate-config", str(path))
    assert code == 1
    assert out == ""
    line = one_error_line(err)
    assert str(path) in line
    for needle in needles:
        assert needle in line, (needle, line)


def test_validate_config_missing_file_exits_1(capsys, tmp_path):
    code, _, err = run(capsys, "validate-config", str(tmp_path / "missing.toml"))
    assert code == 1
    assert "missing.toml" in one_error_line(err)


# -- python -m pyscheduler ------------------------------------------------------------------------


def test_python_dash_m_help_works():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "pyscheduler", "--help"],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: pyscheduler" in proc.stdout
    assert "simulate" in proc.stdout


@pytest.mark.hotpath
def test_bench_json_reports_both_paths_from_one_run(capsys):
    code, out, _ = run(capsys, "bench", "--workload", "small", "--calls", "500", "--json")
    assert code == 0
    (row,) = json.loads(out)
    assert row["workload"] == "small" and row["nodes"] == 100 and row["extension"] is True
    assert row["fast_calls"] == 500 and row["legacy_calls"] > 0
    assert 0 < row["fast_p50_us"] <= row["fast_p99_us"]
    assert 0 < row["legacy_p50_us"] <= row["legacy_p99_us"]
    assert row["speedup_p50"] == pytest.approx(row["legacy_p50_us"] / row["fast_p50_us"])
    assert row["batch_decisions_per_s"] > 0 and row["kernel_batch_decisions_per_s"] > 0
    assert 0 < row["snapshot_bytes_per_node"] <= 300  # docs/DESIGN.md §8 memory budget
    # the dispatcher's cycle (select + release, sessions on) on both paths, same run
    assert 0 < row["cycle_fast_p50_us"] <= row["cycle_fast_p99_us"] and row["cycle_legacy_p50_us"] > 0
    assert row["cycle_speedup_p50"] == pytest.approx(row["cycle_legacy_p50_us"] / row["cycle_fast_p50_us"])


@pytest.mark.hotpath
def test_bench_table_has_a_row_per_workload(capsys):
    code, out, _ = run(capsys, "bench", "--workload", "small", "--calls", "200")
    assert code == 0
    header, row = out.strip().splitlines()
    assert "fast p50 µs" in header and "speed-up p50" in header
    assert row.split()[0] == "small"


def test_bench_without_the_extension_says_why(tmp_path):
    env = {**os.environ, "PYSCHEDULER_NO_EXTENSIONS": "1"}
    argv = [sys.executable, "-m", "pyscheduler", "bench", "--workload", "small", "--calls", "10"]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3  # unavailable: the compiled extension is missing
    assert "extension is not available" in proc.stderr and "Traceback" not in proc.stderr


def test_bench_contention_reports_both_paths_quiet_and_under_a_storm(capsys):
    argv = ("bench", "--contention", "--workload", "small", "--calls", "400", "--rate", "5000", "--json")
    code, out, _ = run(capsys, *argv)
    assert code == 0
    rows = json.loads(out)
    assert [r["path"] for r in rows] == ["legacy", "new", "new+batch"]
    for r in rows:
        assert r["workload"] == "small" and r["calls"] > 0
        assert 0 < r["quiet_p50_us"] <= r["quiet_p99_us"] and 0 < r["storm_p50_us"] <= r["storm_p99_us"]
        assert r["storm_over_quiet_p99"] == pytest.approx(r["storm_p99_us"] / r["quiet_p99_us"])
        assert r["heartbeats_per_s"] > 0 and r["target_heartbeats_per_s"] == 5000


# -- exit status, explain's plan, validate-config warnings -----------------------------------------


def test_help_lists_one_exit_status_per_kind_of_failure(capsys):
    from pyscheduler.tools.cli import EXIT_STATUS

    codes = [code for code, _ in EXIT_STATUS]
    assert codes == [0, 1, 2, 3, 130, 141] and len(set(codes)) == len(codes)
    for command in ([], ["explain"], ["validate-config"], ["simulate"], ["bench"]):
        assert main([*command, "--help"]) == 0
        out = capsys.readouterr().out
        assert "exit status:" in out and "  2    usage:" in out and "  3    unavailable:" in out
        assert "docs/DESIGN.md §" not in out and "docs/DESIGN.md" in out


def test_explain_says_in_words_that_no_pool_admits_the_pair(capsys):
    code, out, err = run(capsys, "explain", "--config", POOLS, "--fleet", FLEET, "--job", "zh:ko")
    assert code == 0, err
    assert "no pool admits zh\u2192ko; falling back to all pools" in out
    code, out, _ = run(capsys, "explain", "--config", POOLS, "--fleet", FLEET, "--job", "zh:en")
    assert "no pool admits" not in out


def test_explain_under_strict_eligibility_says_the_job_is_refused(capsys, tmp_path):
    strict = tmp_path / "strict.toml"
    cfg = Phase3Config.from_toml(POOLS).to_dict()
    strict.write_text(Phase3Config.from_dict({**cfg, "strict_pool_eligibility": True}).to_toml())
    code, out, err = run(capsys, "explain", "--config", str(strict), "--fleet", FLEET, "--job", "zh:ko")
    assert code == 0, err
    assert "no pool admits zh\u2192ko; strict pool eligibility: the job is refused" in out
    assert "no_eligible_pool" in out


def test_validate_config_warns_about_an_empty_file(capsys, tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing here\n")
    code, out, err = run(capsys, "validate-config", str(empty))
    assert code == 0 and out == "OK: 0 pools\n"
    assert "is empty" in one_error_line(err)
    code, out, err = run(capsys, "validate-config", "--strict", str(empty))
    assert code == 1 and out == "" and "--strict" in err


def test_validate_config_warns_about_a_config_without_pools(capsys, tmp_path):
    path = tmp_path / "nopools.toml"
    path.write_text("enabled = true\n")
    code, _, err = run(capsys, "validate-config", str(path))
    assert code == 0 and "no pools are configured" in one_error_line(err)
    path.write_text("auto_generate_language_pools = true\n")
    code, _, err = run(capsys, "validate-config", str(path))
    assert code == 0 and err == ""


LANG_POOL = '[[pools]]\npool_id = 1\nname = "p"\nlanguages = {langs}\nblocked_pairs = {blocked}\n'


def test_validate_config_warns_about_unknown_language_codes(capsys, tmp_path):
    path = tmp_path / "langs.toml"
    path.write_text(LANG_POOL.format(langs='["en", "zh-Hant", "pt_BR", "xx-notreal"]', blocked='[["en", "qq"]]'))
    code, out, err = run(capsys, "validate-config", str(path))
    assert code == 0  # a warning, not an error: a fleet may use its own codes
    line = one_error_line(err)
    assert "pool 1 (p): unknown language code(s) qq, xx-notreal" in line
    assert "--allow-language" in line
    assert out == "OK: 1 pools\n"
    code, _, err = run(capsys, "validate-config", str(path), "--allow-language", "XX_notreal", "qq")
    assert code == 0 and err == ""
    code, _, err = run(capsys, "validate-config", str(path), "--allow-custom-languages", "--strict")
    assert code == 0 and err == ""
    code, _, err = run(capsys, "validate-config", str(path), "--strict")
    assert code == 1


def test_the_example_config_uses_only_known_languages(capsys):
    code, _, err = run(capsys, "validate-config", "--strict", POOLS)
    assert code == 0 and err == ""
