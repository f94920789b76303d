"""The consistency check behind ``NodeRegistry.verify_consistency``.

Each function recomputes a derived structure from its source and lists the
differences, field by field, as sentences a person can act on; an empty list
means consistent. They read plain state and take no lock: the caller holds the
registry lock.
"""

from __future__ import annotations

from typing import Any

from ..runtime.delta import generation_differences
from ..runtime.snapshot import RuntimeSnapshot, build_snapshot
from ..state.fleet import Fleet
from ..state.management import ManagementState, NodeEntry, entry_differences
from ..state.nodes import STATUS_CODES
from ..state.pools import PoolLookup, node_pools
from ..state.reservations import Reservations

__all__ = ["fleet_problems", "management_problems", "snapshot_problems", "steady_problems"]


def steady_problems(fleet: Fleet, gate: Any) -> list[str]:
    """The steady table of the compiled heartbeat (``_hotpath.SteadyBeats``)
    against the records: it must hold exactly the steady nodes (those with an
    id of the exact ``str`` type), each at its slot."""
    problems: list[str] = []
    admitted = 0
    for node_id in sorted(fleet.nodes):
        rec = fleet.nodes[node_id]
        want = rec.slot if rec.steady and type(node_id) is str else -1
        got = gate.slot_of(node_id)
        admitted += got >= 0
        if got != want:
            problems.append(f"node {node_id}: steady-table slot {got} != expected {want} (status {rec.status.value})")
    if len(gate) != admitted:
        problems.append(f"steady table holds {len(gate)} ids, {len(gate) - admitted} of them unknown nodes")
    return problems


def fleet_problems(fleet: Fleet, reservations: Reservations) -> list[str]:
    """Check every derived structure against a recomputation from the nodes."""
    problems: list[str] = []
    lookup = PoolLookup(fleet.pools.values())
    expected_members: dict[int, list[str]] = {pid: [] for pid in fleet.pools}
    node_ids = sorted(fleet.nodes)
    held, reserved = reservations.held_and_reserved([fleet.nodes[n].slot for n in node_ids])
    for node_id, node_reserved in zip(node_ids, reserved):
        rec = fleet.nodes[node_id]
        want: tuple[int, ...] = ()
        if not rec.disconnected:
            want = node_pools(node_id, rec.capabilities.language_set(), rec.installed, lookup, fleet.cfg.membership)
        if rec.pool_ids != want:
            problems.append(f"node {node_id}: pool_ids {rec.pool_ids} != expected {want}")
        for pid in want:
            expected_members[pid].append(node_id)
        if rec.loads.status(rec.slot) != STATUS_CODES[rec.status]:
            problems.append(f"node {node_id}: load-table status {rec.loads.status(rec.slot)} != {rec.status}")
        tokens = held.get((rec.slot, rec.serial), 0)
        if node_reserved != tokens:
            problems.append(f"node {node_id}: reserved {node_reserved} != live reservations {tokens}")
    for pid, want_members in expected_members.items():
        if fleet.members.get(pid) != want_members:
            problems.append(f"pool {pid}: members {fleet.members.get(pid)} != expected {want_members}")
    configured = {p.pool_id for p in fleet.cfg.pools}
    for p in fleet.generated:
        if p.pool_id in configured or fleet.pools.get(p.pool_id) != p:
            problems.append(f"generated pool {p.pool_id} ({p.name}) is not installed as generated")
    return problems


def management_problems(fleet: Fleet, state: ManagementState) -> list[str]:
    """Compare the management state with the legacy structures, field by field."""
    problems = []
    if state.version != fleet.topology_version:
        problems.append(f"management: version {state.version} != legacy {fleet.topology_version}")
    if state.cfg != fleet.cfg or state.core != fleet.core:
        problems.append("management: config differs from the legacy side")
    if state.generated != fleet.generated or state.pools != fleet.pools:
        problems.append("management: pools differ from the legacy side")
    for node_id in sorted(set(fleet.nodes) | set(state.nodes)):
        record, entry = fleet.nodes.get(node_id), state.nodes.get(node_id)
        if record is None or entry is None:
            problems.append(f"management: node {node_id} is only on the {'legacy' if entry is None else 'management'} side")
            continue
        fields = entry_differences(NodeEntry.of(record), entry)
        if fields:
            problems.append(f"management: node {node_id} differs in {', '.join(fields)}")
    for pid in sorted(set(fleet.members) | set(state.members)):
        if fleet.members.get(pid, []) != state.members.get(pid, []):
            problems.append(f"management: members of pool {pid} differ")
    return problems


def snapshot_problems(snap: RuntimeSnapshot, fleet: Fleet) -> list[str]:
    """Compare a current snapshot with a full rebuild from the structures it was
    built from (a delta-published generation may number languages differently:
    see :func:`~pyscheduler.runtime.delta.generation_differences`)."""
    fresh = build_snapshot(fleet, snap.loads, snap.version)
    problems = []
    if snap.node_ids != fresh.node_ids:
        problems.append("snapshot: node ids differ from the registry's live nodes")
    if snap.pool_ids != fresh.pool_ids:
        problems.append("snapshot: pool ids differ from the registry's pools")
    for difference in generation_differences(snap, fresh):
        if difference.startswith("column "):
            problems.append(f"snapshot: {difference} from the registry")
        elif difference not in ("node_ids differ", "pool_ids differ"):
            problems.append(f"snapshot: {difference}")
    return problems
