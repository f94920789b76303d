"""The ``pyscheduler`` command line.

- ``pyscheduler simulate --workload small|10k|100k --jobs N --seed S [--json]``:
  run a standard workload in simulated time (:mod:`pyscheduler.simulation`)
  and print decisions/s, latency percentiles, success rate, rejections and
  the busiest pools.
- ``pyscheduler explain (--config FILE --fleet FILE | --workload NAME) --job SRC:TGT``:
  place one job and show every pool tried with its rejection breakdown.
- ``pyscheduler validate-config FILE``: load a Phase3 TOML config, print
  ``OK: N pools`` or the error, and warn about unknown language codes and
  empty configs.

Exit status, one per kind of failure (:data:`EXIT_STATUS`, printed by
``--help``): 0 success, 1 invalid input (a config, fleet or file that cannot
be read or is refused; warnings under ``validate-config --strict``), 2 usage
(arguments missing, malformed or contradicting each other, ``--job``
included), 3 unavailable (an optional dependency or service is missing:
matplotlib, redis-server or Redis, the compiled extension), 130 interrupted,
141 output closed early (a pipe). Errors print one line on stderr, never a
traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import NoReturn, TextIO

from ..domain.config import Phase3Config
from ..domain.errors import InvalidRequestError, SchedulerError
from ..domain.language_codes import unknown_languages
from ..domain.languages import normalize_lang
from ..domain.model import CORE_TYPES, JobRequest, Selection, parse_service_types
from ..selection.fast import FastPathUnavailable
from .engines import ENGINES, default_engine
from .report import text_table
from .simulation import SimulationReport, VirtualClock, simulate
from .workloads import WORKLOADS, build_registry, make_workload

__all__ = ["EXIT_STATUS", "build_parser", "config_warnings", "format_report", "format_selection", "main"]

PROG = "pyscheduler"

EXIT_OK, EXIT_INVALID_INPUT, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_PIPE_CLOSED = 130, 141

#: Every exit status the command line uses, and what it means (shown by ``--help``).
EXIT_STATUS: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "success"),
    (EXIT_INVALID_INPUT, "invalid input: a config, fleet or file that cannot be read or is refused "
                         "(and warnings under validate-config --strict)"),
    (EXIT_USAGE, "usage: arguments missing, malformed or contradicting each other (--job included)"),
    (EXIT_UNAVAILABLE, "unavailable: an optional dependency or service is missing "
                       "(matplotlib, redis-server or Redis, the compiled extension)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
    (EXIT_PIPE_CLOSED, "the output was closed early (e.g. piped into head)"),
)  # fmt: skip

_EPILOG = "exit status:\n" + "\n".join(f"  {code:<4} {text}" for code, text in EXIT_STATUS) + (
    "\n\nThe design behind every figure and rule: docs/DESIGN.md in the source distribution."
)


class _UsageError(Exception):
    """Arguments that parse but do not fit together (exit 2)."""


class _Unavailable(Exception):
    """An optional dependency or service the command needs is missing (exit 3)."""


class _Parser(argparse.ArgumentParser):
    """Usage errors print one line (not the usage block) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(convert: Callable[[str], float], ok: Callable[[float], bool], wanted: str):
    """An argparse type: ``convert`` the text, then require ``ok`` (else "expected <wanted>")."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_seed = _number(int, lambda v: v >= 0, "a non-negative integer")
_share = _number(float, lambda v: 0.0 <= v <= 1.0, "a number from 0 to 1")
_positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive number")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Scheduling core of a real-time speech-translation dispatcher.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser, required=True
    )
    common = {"epilog": _EPILOG, "formatter_class": argparse.RawDescriptionHelpFormatter}

    sim = sub.add_parser(
        "simulate",
        help="run a standard workload in simulated time and report the figures",
        description=(
            "Run a standard workload (docs/DESIGN.md, performance budget) through select_node "
            "in simulated time."
        ),
        **common,
    )
    sim.add_argument(
        "--workload", choices=WORKLOADS, default="small", help="standard workload (default: small)"
    )
    sim.add_argument(
        "--jobs", type=_positive_int, default=1000, help="jobs to place (default: 1000)"
    )
    sim.add_argument(
        "--seed", type=_seed, default=1, help="seed of workload, jobs and events (default: 1)"
    )
    sim.add_argument("--json", action="store_true", help="print the report as JSON")
    sim.add_argument(
        "--no-heartbeats", action="store_true", help="nodes send only their first heartbeat"
    )
    sim.add_argument(
        "--job-interval-ms",
        type=_positive_float,
        default=None,
        help="simulated time between jobs (default: offers half the fleet's capacity)",
    )
    sim.add_argument(
        "--engine",
        choices=ENGINES,
        default=None,
        help=(
            "selection path: fast (every flag on; the default when the compiled extension is "
            "built), legacy (every flag off; the default without it), shadow (serves legacy, "
            "computes fast beside it and counts mismatches: the migration check) or shadow-fast "
            "(serves fast, computes legacy beside it)"
        ),
    )
    sim.add_argument(
        "--fast", action="store_true", help="the same as --engine fast (kept for old scripts)"
    )
    sim.add_argument(
        "--fail-rate",
        type=_share,
        default=0.0,
        metavar="SHARE",
        help=(
            "share of nodes (0-1) that fail during the run: half go silent, half disconnect "
            "(default: 0)"
        ),
    )
    sim.add_argument(
        "--heartbeat-interval",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="simulated seconds between a node's heartbeats (default: the config's, 15)",
    )
    sim.add_argument(
        "--sessions",
        type=_positive_int,
        default=None,
        help="sessions the jobs come from (default: the workload's)",
    )
    sim.add_argument(
        "--plot",
        metavar="FILE.png",
        default=None,
        help="also draw latency distribution and load over time to FILE.png (needs matplotlib)",
    )
    sim.add_argument(
        "--top", type=_positive_int, default=10, help="pools shown in the table (default: 10)"
    )
    sim.add_argument(
        "--instances",
        type=_positive_int,
        default=1,
        metavar="N",
        help="run N dispatcher processes sharing the fleet through Redis, in real time (default: 1)",
    )
    sim.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="Redis for --instances (default: start a throwaway redis-server, if installed)",
    )
    sim.set_defaults(func=_cmd_simulate)

    exp = sub.add_parser(
        "explain",
        help="place one job and show why each node was or was not chosen",
        description="Place one job on a fleet and print every pool tried with its breakdown.",
        **common,
    )
    source = exp.add_argument_group("fleet (give --config and --fleet, or --workload)")
    source.add_argument(
        "--config", metavar="FILE", help="Phase3 config TOML (default: all defaults)"
    )
    source.add_argument("--fleet", metavar="FILE", help="fleet TOML: [[nodes]] tables")
    source.add_argument("--workload", choices=WORKLOADS, help="use a standard workload instead")
    source.add_argument("--seed", type=_seed, default=1, help="seed of --workload (default: 1)")
    exp.add_argument(
        "--job", required=True, metavar="SRC:TGT", help="language pair, e.g. zh:en or auto:en"
    )
    exp.add_argument(
        "--types",
        default=None,
        metavar="TYPES",
        help="required service types (default: ASR,NMT,TTS)",
    )
    exp.add_argument("--session", default=None, metavar="ID", help="session id")
    exp.add_argument("--tenant", default=None, metavar="ID", help="tenant id")
    exp.add_argument(
        "--routing-key", default=None, metavar="KEY", help="routing key (default: the session id)"
    )
    exp.add_argument(
        "--exclude",
        action="extend",
        nargs="+",
        default=[],
        metavar="ID",
        help="node ids to exclude",
    )
    exp.add_argument(
        "--private",
        action="store_true",
        help="a non-public job (nodes refusing public jobs qualify)",
    )
    exp.set_defaults(func=_cmd_explain)

    ben = sub.add_parser(
        "bench",
        help="measure the performance-budget figures, fast and legacy path in the same run",
        description=(
            "The figures of the performance budget (docs/DESIGN.md): single-call select_node "
            "p50/p99 on the fast and legacy paths and their ratio, "
            "batch decisions/s (end to end, and inside the nogil kernel), load-only heartbeat "
            "latency, snapshot build time, bytes per node, and a config change until the first "
            "select_node (set_phase3_config + select). Needs the compiled extension."
        ),
        **common,
    )
    ben.add_argument(
        "--workload",
        action="append",
        choices=WORKLOADS,
        help="a workload to measure (repeatable; default: small and 10k)",
    )
    ben.add_argument("--with-100k", action="store_true", help="also measure the 100k fleet (slow to build)")
    ben.add_argument("--calls", type=_positive_int, default=None, help="fast-path calls per workload")
    ben.add_argument("--seed", type=_seed, default=1, help="workload and job-stream seed (default 1)")
    ben.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ben.add_argument(
        "--contention",
        action="store_true",
        help=(
            "dispatch latency quiet vs during a heartbeat storm: legacy path, new path, and new path"
            " with each burst of beats applied by one update_node_heartbeats call (new+batch)"
        ),
    )
    ben.add_argument(
        "--rate",
        type=_positive_float,
        default=50_000.0,
        help="heartbeats per second in the storm (with --contention; default 50000)",
    )
    ben.add_argument(
        "--cluster",
        action="store_true",
        help=(
            "measure cluster sync instead: changes applied/s per instance and convergence delay "
            "(--calls: heartbeats each instance publishes, default 40,000)"
        ),
    )
    ben.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="Redis for --cluster (default: start a throwaway redis-server, if installed)",
    )
    ben.set_defaults(func=_cmd_bench)

    val = sub.add_parser(
        "validate-config",
        help="check a Phase3 config TOML file",
        description=(
            "Load a Phase3 config TOML file; print 'OK: N pools' or the error (exit 1). "
            "Warns (on stderr) about an empty file, a config without pools, and language "
            "codes that are neither ISO 639-1 nor common BCP-47 tags (e.g. a typo like 'cn')."
        ),
        **common,
    )
    val.add_argument("file", metavar="FILE")
    val.add_argument(
        "--allow-language",
        action="extend",
        nargs="+",
        default=[],
        metavar="CODE",
        help="a custom language code your fleet uses: not warned about (repeatable)",
    )
    val.add_argument(
        "--allow-custom-languages",
        action="store_true",
        help="do not check language codes at all",
    )
    val.add_argument(
        "--strict", action="store_true", help="treat warnings as errors (exit 1)"
    )
    val.set_defaults(func=_cmd_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.func(args, sys.stdout)
    except _UsageError as exc:
        print(
            f"{PROG} {args.command}: error: {exc} (see {PROG} {args.command} --help)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, and keep the interpreter's
        # final flush of stdout from raising again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_PIPE_CLOSED
    except (_Unavailable, FastPathUnavailable) as exc:
        print(f"{PROG} {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (SchedulerError, ValueError, OSError) as exc:
        print(f"{PROG} {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _cmd_bench(args: argparse.Namespace, out: TextIO) -> int:
    if args.cluster:
        return _cmd_bench_cluster(args, out)
    from .bench import format_table, run_bench

    if args.contention:
        return _cmd_bench_contention(args, out)
    names = list(args.workload or ["small", "10k"])
    if args.with_100k and "100k" not in names:
        names.append("100k")
    results = run_bench(names, seed=args.seed, calls=args.calls)
    if args.json:
        json.dump([r.to_dict() for r in results], out, indent=2)
        out.write("\n")
    else:
        out.write(format_table(results) + "\n")
    return 0


def _cmd_bench_contention(args: argparse.Namespace, out: TextIO) -> int:
    from .bench import contention_workload, format_contention

    results = []
    for name in args.workload or ["10k"]:
        results += contention_workload(name, rate=args.rate, calls=args.calls or 20_000, seed=args.seed)
    if args.json:
        json.dump([r.to_dict() for r in results], out, indent=2)
        out.write("\n")
    else:
        out.write(format_contention(results) + "\n")
    return 0


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


# -- simulate --------------------------------------------------------------------------------


def _cmd_simulate(args: argparse.Namespace, out: TextIO) -> int:
    if args.instances > 1 or args.redis is not None:
        return _cmd_simulate_cluster(args, out)
    from .simulation import PlotUnavailable, check_plotting, plot_report

    engine = args.engine
    if args.fast:
        if engine not in (None, "fast"):
            raise _UsageError(f"--fast and --engine {engine} contradict each other")
        engine = "fast"
    if args.plot is not None:
        try:
            check_plotting()  # before the run, not after it
        except PlotUnavailable as exc:
            raise _Unavailable(exc) from None
    with _SimulationProgress(sys.stderr) as progress:
        report = simulate(
            args.workload,
            args.jobs,
            args.seed,
            heartbeats=not args.no_heartbeats,
            job_interval_s=None if args.job_interval_ms is None else args.job_interval_ms / 1000.0,
            engine=engine or default_engine(),
            heartbeat_interval_s=args.heartbeat_interval,
            sessions=args.sessions,
            fail_rate=args.fail_rate,
            progress=progress,
        )
    if args.plot is not None:
        plot_report(report, args.plot)
    if args.json:
        json.dump(report.to_dict(), out, indent=2)
        out.write("\n")
    else:
        out.write(format_report(report, top=args.top))
        if args.plot is not None:
            out.write(f"\nplot written to {args.plot}\n")
    return 0


class _SimulationProgress:
    """A progress bar on ``stream`` for runs that last longer than a second.

    Shown only when ``stream`` is a terminal: with ``rich`` installed (the
    ``rich`` and ``dev`` extras) a rich bar, else one line rewritten in place.
    Nothing appears during the first second, so short runs print nothing.
    """

    DELAY_S = 1.0

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = _is_tty(stream)
        self._start = time.monotonic()
        self._bar = None  # a rich Progress, or "plain" once the plain line is in use
        self._task = None

    def __enter__(self) -> _SimulationProgress | None:
        return self if self.enabled else None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            if time.monotonic() - self._start < self.DELAY_S:
                return
            self._open(total)
        if self._bar == "plain":
            print(f"\r  {done:,}/{total:,} jobs ({done / total:.0%})", end="", file=self.stream, flush=True)
        else:
            self._bar.update(self._task, completed=done)

    def _open(self, total: int) -> None:
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
        except ImportError:
            self._bar = "plain"
            return
        self._bar = Progress(
            TextColumn("simulating"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("jobs"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(file=self.stream),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("simulate", total=total)

    def __exit__(self, *exc: object) -> None:
        if self._bar == "plain":
            print("\r" + " " * 48 + "\r", end="", file=self.stream, flush=True)
        elif self._bar is not None:
            self._bar.stop()


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def format_report(report: SimulationReport, top: int = 10) -> str:
    """The plain-text summary ``pyscheduler simulate`` prints."""
    lat = report.latency_us
    lines = [
        (
            f"workload {report.workload} (seed {report.seed}): {report.nodes} nodes, "
            f"{report.pools} pools, engine {report.engine} (path {report.path})"
        ),
        f"  engine         {report.engine}: {report.serves}",
        f"  jobs           {report.jobs} ({report.successes} placed, {report.failures} not placed)",
        f"  success rate   {report.success_rate * 100:.2f} %",
        f"  decisions/s    {report.decisions_per_s:,.0f} (jobs / real time inside select_node)",
        (
            f"  latency (us)   p50 {lat['p50']:.1f}   p95 {lat['p95']:.1f}   "
            f"p99 {lat['p99']:.1f}   max {lat['max']:.1f}"
        ),
        f"  wall time      {report.wall_time_s:.2f} s (+ {report.build_time_s:.2f} s building the registry)",
        (
            f"  simulated      {report.simulated_time_s:.1f} s, "
            f"{report.job_interval_s * 1000:.3f} ms between jobs; "
            f"{report.heartbeats} heartbeats{'' if report.heartbeats_enabled else ' (off)'}, "
            f"{report.completions} completions, {report.sweeps} sweeps"
        ),
        (
            f"  fleet          {report.sessions:,} sessions, a heartbeat every "
            f"{report.heartbeat_interval_s:g} s per node, "
            f"{report.nodes_marked_by_sweep} nodes marked by sweeps"
        ),
        f"  fallbacks      {report.fallbacks} jobs tried more than their preferred pool",
    ]
    failed = report.failures_injected
    if report.fail_rate > 0:
        lines += [
            (
                f"  node failures  {failed.nodes} of {report.nodes} nodes (fail rate "
                f"{report.fail_rate:g}): {failed.silent} went silent, "
                f"{failed.disconnected} disconnected"
            ),
            (
                f"                 {failed.jobs_lost} running jobs lost; {failed.placed_on_failed} "
                "jobs placed on silent nodes before the registry noticed"
            ),
        ]
    if report.shadow_compared is not None:
        lines.append(
            f"  shadow         {report.shadow_compared:,} decisions compared, "
            f"{report.shadow_mismatches} mismatches between fast and legacy"
        )
    lines.append("")
    if report.rejections:
        lines.append("rejections of failed selections, by top reason:")
        rows = [
            [str(reason), str(n), f"{n / report.jobs * 100:.2f} %"]
            for reason, n in report.rejections.items()
        ]
        lines += text_table(rows, right={1, 2}, indent="  ")
    else:
        lines.append("rejections of failed selections, by top reason: none")
    busiest = report.busiest_pools(top)
    if busiest:
        lines += [
            "",
            f"busiest pools (top {len(busiest)} of {len(report.pool_usage)} by jobs placed):",
        ]
        rows = [["pool", "name", "members", "capacity", "in use", "util", "placed"]]
        for p in busiest:
            rows.append(
                [
                    "-" if p.pool_id is None else str(p.pool_id),
                    p.name,
                    str(p.members),
                    str(p.capacity),
                    str(p.in_use),
                    f"{p.utilization * 100:.0f} %",
                    str(p.placed),
                ]
            )
        lines += text_table(rows, right={0, 2, 3, 4, 5, 6}, indent="  ")
    return "\n".join(lines) + "\n"


# -- explain ----------------------------------------------------------------------------------


def _parse_job(args: argparse.Namespace) -> JobRequest:
    """The job of ``--job`` and its options; a bad one is a usage error (exit 2)."""
    parts = args.job.split(":")
    if len(parts) != 2:
        raise _UsageError(f"--job must be SRC:TGT (e.g. zh:en), got {args.job!r}")
    try:
        types = CORE_TYPES
        if args.types is not None:
            names = [t for t in args.types.replace("|", ",").split(",") if t.strip()]
            types = parse_service_types(names, "--types", InvalidRequestError)
        return JobRequest(
            parts[0],
            parts[1],
            required_types=types,
            session_id=args.session,
            tenant_id=args.tenant,
            routing_key=args.routing_key,
            exclude_node_ids=frozenset(args.exclude),
            public=not args.private,
        )
    except InvalidRequestError as exc:
        raise _UsageError(_one_line(exc)) from None


def _cmd_explain(args: argparse.Namespace, out: TextIO) -> int:
    from .fleetfile import load_fleet, registry_from_fleet

    if args.workload is not None and (args.config or args.fleet):
        raise _UsageError("give --workload or --config/--fleet, not both")
    if args.workload is None and not args.fleet:
        raise _UsageError("give --fleet FILE (with --config FILE) or --workload NAME")
    job = _parse_job(args)
    clock = VirtualClock(0.0)
    if args.workload is not None:
        workload = make_workload(args.workload, args.seed)
        registry = build_registry(workload, clock)
        source = workload.summary()
    else:
        phase3 = Phase3Config.from_toml(args.config) if args.config else Phase3Config()
        entries = load_fleet(args.fleet)
        registry = registry_from_fleet(entries, phase3, clock=clock)
        source = f"fleet {args.fleet} ({len(entries)} nodes), config {args.config or '(defaults)'}"
    selection = registry.select_node(job)
    names = {p.pool_id: p.name for p in registry.pools()}
    out.write(format_selection(selection, job, source, names, _pool_plan(registry, job)))
    return 0


def _pool_plan(registry, job: JobRequest) -> str:
    """How the pools to try were chosen, in words (the case the breakdown cannot show)."""
    cfg = registry.phase3_config
    pools = registry.pools()
    pair = f"{job.src_lang}\u2192{job.tgt_lang}"
    if not cfg.two_level or not pools:
        return "single-level: no pools in use, every node is a candidate"
    if registry.select_eligible_pools(job.src_lang, job.tgt_lang, job.required_types):
        return ""
    if cfg.strict_pool_eligibility:
        return f"no pool admits {pair}; strict pool eligibility: the job is refused (no_eligible_pool)"
    return f"no pool admits {pair}; falling back to all pools"


def format_selection(
    selection: Selection,
    job: JobRequest,
    source: str = "",
    pool_names: dict[int, str] | None = None,
    plan: str = "",
) -> str:
    """What ``pyscheduler explain`` prints for one selection (``plan``: how the
    pools were chosen, when no pool admitted the pair)."""
    types = "|".join(t.name for t in type(job.required_types) if t in job.required_types and t.name)
    lines = []
    if source:
        lines.append(source)
    lines.append(
        f"job {job.src_lang} -> {job.tgt_lang}  types {types}  session {job.session_id or '-'}  "
        f"tenant {job.tenant_id or '-'}  excluded {', '.join(sorted(job.exclude_node_ids)) or '-'}"
    )
    if selection.ok:
        where = "all nodes" if selection.pool_id is None else f"pool {selection.pool_id}"
        lines.append(f"selected {selection.node_id} from {where}")
    else:
        lines.append(f"no node selected (top reason: {selection.breakdown.top_reason})")
    if plan:
        lines.append(plan)
    preferred = "-" if selection.preferred_pool is None else str(selection.preferred_pool)
    lines.append(
        f"preferred pool {preferred}, fallback {'yes' if selection.fallback_used else 'no'}, "
        f"path {selection.path}"
    )
    lines += ["", selection.explain(), ""]
    if selection.attempts:
        lines.append("pools tried, in order:")
        rows = [["pool", "name", "available", "top reason", "breakdown"]]
        for a in selection.attempts:
            b = a.breakdown
            top = a.top_reason
            rows.append(
                [
                    "-" if a.pool_id is None else str(a.pool_id),
                    a.pool_name or (pool_names or {}).get(a.pool_id, ""),  # type: ignore[arg-type]
                    "skipped" if a.skipped is not None else f"{b.available}/{b.total}",
                    "-" if top is None else str(top),
                    "no member passes this check" if a.skipped is not None else b.describe() or "-",
                ]
            )
        lines += text_table(rows, right={0}, indent="  ")
    return "\n".join(lines) + "\n"


# -- validate-config ----------------------------------------------------------------------------


def _cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    cfg = Phase3Config.from_toml(args.file)
    warnings = config_warnings(cfg, args.file, _allowed_languages(args.allow_language),
                               check_languages=not args.allow_custom_languages)  # fmt: skip
    for warning in warnings:
        print(f"{PROG} validate-config: warning: {warning}", file=sys.stderr)
    if warnings and args.strict:
        print(f"{PROG} validate-config: error: {len(warnings)} warning(s) and --strict",
              file=sys.stderr)  # fmt: skip
        return EXIT_INVALID_INPUT
    out.write(f"OK: {len(cfg.pools)} pools\n")
    return EXIT_OK


def _allowed_languages(codes: list[str]) -> frozenset[str]:
    try:
        return frozenset(normalize_lang(c, "--allow-language", InvalidRequestError) for c in codes)
    except InvalidRequestError as exc:
        raise _UsageError(_one_line(exc)) from None


def _empty_toml(path: str) -> bool:
    """Whether a (readable, well-formed) TOML file holds no key at all."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    with open(path, "rb") as fh:
        return not tomllib.load(fh)


def config_warnings(
    cfg: Phase3Config, path: str, allowed: frozenset[str] = frozenset(), *, check_languages: bool = True
) -> list[str]:
    """What ``validate-config`` warns about: an empty file, no pools, unknown language codes."""
    warnings = []
    if _empty_toml(path):
        warnings.append(f"{path} is empty: every setting keeps its default and no pool is configured")
    elif not cfg.pools and not cfg.auto_generate_language_pools:
        warnings.append(
            "no pools are configured and auto_generate_language_pools is off: "
            "every job is placed single-level, over all nodes"
        )
    if check_languages:
        for pool in cfg.pools:
            codes = [*pool.languages, *(c for pair in (*pool.nmt_pairs, *pool.blocked_pairs) for c in pair)]
            unknown = unknown_languages(codes, allowed)
            if unknown:
                warnings.append(
                    f"pool {pool.pool_id} ({pool.name}): unknown language code(s) {', '.join(unknown)} "
                    "(not ISO 639-1 or a common BCP-47 tag; allow custom codes with "
                    "--allow-language CODE or --allow-custom-languages)"
                )
    return warnings


# -- cluster: simulate --instances, bench --cluster -------------------------------------------------


def _cmd_simulate_cluster(args: argparse.Namespace, out: TextIO) -> int:
    """``simulate --instances N [--redis URL]`` (:mod:`pyscheduler.cluster_sim`)."""
    from .cluster_sim import ClusterSetupError, format_cluster_report, simulate_cluster

    unsupported = [
        flag
        for flag, given in (
            ("--plot", getattr(args, "plot", None) is not None),
            ("--fail-rate", bool(getattr(args, "fail_rate", 0.0))),
            ("--heartbeat-interval", getattr(args, "heartbeat_interval", None) is not None),
            ("--sessions", getattr(args, "sessions", None) is not None),
            ("--job-interval-ms", getattr(args, "job_interval_ms", None) is not None),
        )
        if given
    ]
    if unsupported:
        raise _UsageError(f"{', '.join(unsupported)} cannot be combined with --instances/--redis")
    engine = getattr(args, "engine", None)
    if getattr(args, "fast", False):
        if engine not in (None, "fast"):
            raise _UsageError(f"--fast and --engine {engine} contradict each other")
        engine = "fast"
    try:
        report = simulate_cluster(
            args.workload,
            args.jobs,
            args.seed,
            instances=args.instances,
            redis_url=args.redis,
            engine=engine or default_engine(),
            heartbeats=not args.no_heartbeats,
        )
    except ClusterSetupError as exc:
        raise _Unavailable(exc) from None
    if args.json:
        json.dump(report.to_dict(), out, indent=2)
        out.write("\n")
    else:
        out.write(format_cluster_report(report))
    return 0


def _cmd_bench_cluster(args: argparse.Namespace, out: TextIO) -> int:
    """``bench --cluster [--redis URL]``: ``--calls`` sets the heartbeats each instance publishes."""
    from .cluster_sim import ClusterSetupError, bench_cluster, format_cluster_bench

    try:
        report = bench_cluster(args.redis, events=args.calls or 40_000)
    except ClusterSetupError as exc:
        raise _Unavailable(exc) from None
    if args.json:
        json.dump(report.to_dict(), out, indent=2)
        out.write("\n")
    else:
        out.write(format_cluster_bench(report))
    return 0
