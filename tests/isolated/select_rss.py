"""Run many fast-path selections (each released, or committed and then beaten
away) and print the resident-set growth after a warm-up, in KiB.

Usage: python tests/isolated/select_rss.py [SELECTIONS]   (default 1,000,000)

Runs in its own interpreter so nothing else in a test session moves the RSS.
Used by tests/test_leaks.py; run it with 10,000,000 to check the docs/DESIGN.md §8
figure "RSS growth over 10 M selections: none".
"""

from __future__ import annotations

import gc
import sys


def rss_kib() -> int:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    import resource

    return pages * resource.getpagesize() // 1024


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    from pyscheduler import MigrationFlags
    from pyscheduler.tools.workloads import build_registry, make_jobs, make_workload

    workload = make_workload("small", 1)
    registry = build_registry(workload, clock=lambda: 100.0, flags=MigrationFlags.all_on())
    jobs = make_jobs(workload, 5_000, 3)
    beats = dict(zip((n.node_id for n in workload.nodes), workload.initial_heartbeats))
    warmup = min(200_000, total // 5)
    baseline = None
    done = 0
    while done < total:
        for i, job in enumerate(jobs):
            selection = registry.select_node(job)
            if selection.reservation is not None:
                if i % 2:
                    registry.release(selection)
                else:  # commit, then the node's next beat reports its own count
                    registry.commit(selection)
                    node_id = selection.node_id
                    registry.update_node_heartbeat(node_id, beats[node_id])
            if i % 64 == 0:
                _ = selection.breakdown  # decode some attempts too
            done += 1
            if done == warmup:
                gc.collect()
                baseline = rss_kib()
            if done >= total:
                break
    gc.collect()
    assert baseline is not None
    assert registry.verify_consistency() == []
    print(rss_kib() - baseline)


if __name__ == "__main__":
    main()
