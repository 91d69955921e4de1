"""rap.localcluster.haproxy.sync: endpoint sets diffed into server slots and runtime-API commands."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from rap.localcluster.haproxy.errors import HaproxyError
from rap.localcluster.haproxy.sync import Syncer, plan

A, B, C, D = ("10.214.1.11", 8080), ("10.214.2.11", 8080), ("10.214.3.11", 8080), ("10.214.1.12", 8080)


def test_first_sync_fills_the_lowest_slots_in_address_order():
    p = plan((None,) * 4, [C, A, B])
    assert p.slots == (A, B, C, None)
    assert p.commands == (
        "set server service/s1 addr 10.214.1.11 port 8080", "set server service/s1 state ready",
        "set server service/s2 addr 10.214.2.11 port 8080", "set server service/s2 state ready",
        "set server service/s3 addr 10.214.3.11 port 8080", "set server service/s3 state ready",
    )
    assert p.unplaced == ()


def test_same_endpoints_need_no_command():
    assert plan((A, B, None), [B, A]).commands == ()


def test_a_removed_endpoint_goes_to_maintenance_and_the_others_keep_their_slots():
    p = plan((A, B, C, None), [A, C])
    assert p.slots == (A, None, C, None)
    assert p.commands == ("set server service/s2 state maint",)


def test_a_new_endpoint_takes_the_lowest_free_slot_after_it_went_to_maintenance():
    p = plan((A, B, C), [A, D, C])
    assert p.slots == (A, D, C)
    assert p.commands == ("set server service/s2 state maint",
                          "set server service/s2 addr 10.214.1.12 port 8080", "set server service/s2 state ready")


def test_no_endpoints_puts_every_slot_in_maintenance():
    p = plan((A, None, B), [])
    assert p.slots == (None, None, None)
    assert p.commands == ("set server service/s1 state maint", "set server service/s3 state maint")


def test_endpoints_beyond_the_slots_are_reported_not_served():
    p = plan((None, None), [A, B, C])
    assert p.slots == (A, B)
    assert p.unplaced == (C,)


def test_a_port_change_is_a_new_endpoint():
    moved = (A[0], 9090)
    p = plan((A, None), [moved])
    assert p.slots == (moved, None)
    assert p.commands == ("set server service/s1 state maint", "set server service/s1 addr 10.214.1.11 port 9090",
                          "set server service/s1 state ready")


targets = st.tuples(st.sampled_from([f"10.214.{n}.{k}" for n in (1, 2, 3) for k in (11, 12, 13)]),
                    st.sampled_from([8080, 9090]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sets(targets, max_size=12), min_size=1, max_size=6))
def test_any_sequence_of_endpoint_sets_is_served_exactly_and_kept_endpoints_never_move(rounds):
    slots = (None,) * 12
    for wanted in rounds:
        p = plan(slots, wanted)
        assert {t for t in p.slots if t is not None} == wanted
        assert len([t for t in p.slots if t is not None]) == len(wanted)  # no endpoint twice
        for k, old in enumerate(slots):
            if old in wanted:
                assert p.slots[k] == old
        slots = p.slots


class FakeAdmin:
    def __init__(self, refuse: str = "") -> None:
        self.sent: list[str] = []
        self.refuse = refuse

    def set(self, line: str) -> None:
        if self.refuse and self.refuse in line:
            raise HaproxyError(f"haproxy refused `{line}`: No such server.")
        self.sent.append(line)


def test_syncer_sends_the_plan_and_remembers_the_slots():
    admin = FakeAdmin()
    s = Syncer(admin, slots=3)
    s.apply([A, B])
    s.apply([B, C])
    assert s.slots == (C, B, None)
    assert admin.sent[-3:] == ["set server service/s1 state maint",
                               "set server service/s1 addr 10.214.3.11 port 8080", "set server service/s1 state ready"]
    s.apply([B, C])
    assert len(admin.sent) == 7  # nothing more


def test_syncer_stops_at_a_refused_command_and_keeps_its_old_slots():
    s = Syncer(FakeAdmin(refuse="s2"), slots=3)
    with pytest.raises(HaproxyError, match="No such server"):
        s.apply([A, B])
    assert s.slots == (None, None, None)
