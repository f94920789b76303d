"""The load table: one suite that ``PyLoadTable`` and the compiled ``LoadTable`` both pass.

Both selection paths reserve through the same table, so the two implementations
must agree on every observable: rows, status codes, the reservation counters,
and what they refuse (out-of-range slots, a status code out of range,
reserving past the node's maximum, unreserving or committing nothing).
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyscheduler.state.loads import SlotAllocator


def _table(cls, slots: int = 4, now: float = 10.0):
    table = cls()
    table.ensure(slots - 1)
    for slot in range(slots):
        table.reset(slot, now)
    return table


def test_a_reset_row_is_empty_and_registering(load_table_cls):
    table = _table(load_table_cls)
    assert table.capacity >= 4
    assert table.get(2) == (0, 0, 0.0, 0.0, None, 10.0)
    assert table.status(2) == 1


def test_set_load_writes_running_usages_and_heartbeat_time(load_table_cls):
    table = _table(load_table_cls)
    table.set_load(1, 12.5, 40.0, None, 3, 99.0)
    assert table.get(1) == (3, 0, 12.5, 40.0, None, 99.0)
    table.set_load(1, 1.0, 2.0, 7.5, 0, 100.0)
    assert table.get(1) == (0, 0, 1.0, 2.0, 7.5, 100.0)
    assert table.get(0) == (0, 0, 0.0, 0.0, None, 10.0), "another slot was touched"


@pytest.mark.parametrize("status", [0, 1, 2])
def test_status_codes_round_trip(load_table_cls, status):
    table = _table(load_table_cls)
    table.set_status(3, status)
    assert table.status(3) == status


@pytest.mark.parametrize("status", [-1, 3, 99])
def test_a_status_code_out_of_range_is_refused_and_changes_nothing(load_table_cls, status):
    table = _table(load_table_cls)
    table.set_status(0, 2)
    with pytest.raises(ValueError):
        table.set_status(0, status)
    assert table.status(0) == 2


@pytest.mark.parametrize("call", ["get", "status", "running", "reserved", "unreserve", "commit"])
def test_slots_out_of_range_raise_index_error(load_table_cls, call):
    table = _table(load_table_cls, slots=2)
    with pytest.raises(IndexError):
        getattr(table, call)(table.capacity + 10)
    with pytest.raises((IndexError, OverflowError)):
        getattr(table, call)(-1)


def test_reserve_stops_at_the_maximum_counting_running_jobs(load_table_cls):
    table = _table(load_table_cls)
    table.set_load(0, 0.0, 0.0, None, 2, 10.0)
    assert table.try_reserve(0, 4)
    assert table.try_reserve(0, 4)
    assert not table.try_reserve(0, 4), "running 2 + reserved 2 is at max 4"
    assert (table.running(0), table.reserved(0)) == (2, 2)


def test_commit_moves_a_reservation_to_running_and_unreserve_gives_it_back(load_table_cls):
    table = _table(load_table_cls)
    assert table.try_reserve(1, 2) and table.try_reserve(1, 2)
    assert table.commit(1)
    assert (table.running(1), table.reserved(1)) == (1, 1)
    assert table.unreserve(1)
    assert (table.running(1), table.reserved(1)) == (1, 0)
    assert not table.unreserve(1), "nothing left to unreserve"
    assert not table.commit(1), "nothing left to commit"
    assert (table.running(1), table.reserved(1)) == (1, 0)


def test_a_heartbeat_sets_running_and_leaves_reservations(load_table_cls):
    table = _table(load_table_cls)
    assert table.try_reserve(2, 8)
    table.set_load(2, 5.0, 5.0, 5.0, 6, 11.0)
    assert (table.running(2), table.reserved(2)) == (6, 1)


def test_reset_clears_counters(load_table_cls):
    table = _table(load_table_cls)
    assert table.try_reserve(0, 3)
    table.set_load(0, 50.0, 50.0, None, 2, 20.0)
    table.reset(0, 30.0)
    assert table.get(0) == (0, 0, 0.0, 0.0, None, 30.0)


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "unreserve", "commit", "load"]),
        st.integers(0, 3),
        st.integers(0, 6),
    ),
    max_size=60,
)


@given(ops=_OPS)
def test_the_counters_follow_a_simple_model(load_table_cls, ops):
    """Any sequence of operations leaves (running, reserved) exactly where a plain model does."""
    table = _table(load_table_cls)
    model = {slot: [0, 0] for slot in range(4)}
    for op, slot, n in ops:
        running, reserved = model[slot]
        if op == "reserve":
            ok = running + reserved < n
            assert table.try_reserve(slot, n) is ok
            model[slot][1] += ok
        elif op == "unreserve":
            assert table.unreserve(slot) is (reserved > 0)
            model[slot][1] -= reserved > 0
        elif op == "commit":
            assert table.commit(slot) is (reserved > 0)
            if reserved:
                model[slot] = [running + 1, reserved - 1]
        else:
            table.set_load(slot, 1.0, 1.0, None, n, 12.0)
            model[slot][0] = n
    for slot, (running, reserved) in model.items():
        assert (table.running(slot), table.reserved(slot)) == (running, reserved)


def test_concurrent_reservations_never_pass_the_maximum(load_table_cls):
    table = _table(load_table_cls, slots=1)
    won = []
    barrier = threading.Barrier(4)

    def reserve_many() -> None:
        barrier.wait()
        won.append(sum(table.try_reserve(0, 500) for _ in range(400)))

    threads = [threading.Thread(target=reserve_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(won) == 500
    assert table.reserved(0) == 500


def test_a_freed_slot_is_reused_only_once_no_live_snapshot_can_reach_it():
    slots = SlotAllocator()
    first, second = slots.allocate(), slots.allocate()
    slots.free(first, version=7)
    assert slots.allocate(oldest_live_version=6) not in (first, second), "generation 6 may still read it"
    assert slots.allocate(oldest_live_version=7) == first
