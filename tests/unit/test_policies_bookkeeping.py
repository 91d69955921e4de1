"""Connection bookkeeping (docs/algorithm.md, "Connection bookkeeping (both modes)"):
active counts, retry detection, ejection and the usable set, churn, OnEndpointsAdd."""

import pytest

from rap.config import RapConfig
from rap.policies import AFFINITY_CLIENT_IP, Endpoint, LeastRequest, Rap, RoundRobin
from rap.policies.bookkeeping import RETRY_WINDOW_S, ConnectionBook
from rap.snapshot import Snapshot, Usage

SVC = "ns/web:http"
A, B, C = (Endpoint(f"10.0.0.{i}", 80, "node-a") for i in (1, 2, 3))
MODES = ["classic", "adaptive"]


def rap(mode="classic", **config) -> Rap:
    policy = Rap("node-a", RapConfig(mode=mode, **config), shuffle=False)
    policy.set_endpoints(SVC, [A, B, C])
    return policy


def addrs(eps):
    return [e.addr for e in eps]


# ---- active ----

@pytest.mark.parametrize("policy", [RoundRobin(shuffle=False), LeastRequest(shuffle=False, seed=1), rap()],
                         ids=lambda p: p.name)
def test_every_endpoint_returned_counts_until_released_never_below_zero(policy):
    policy.new_service(SVC, AFFINITY_CLIENT_IP, 60)
    policy.set_endpoints(SVC, [A])
    policy.next_endpoint(SVC, "c", 0)  # a new choice
    policy.next_endpoint(SVC, "c", 1)  # an affinity hit counts too
    assert policy.active(SVC, A) == 2
    for _ in range(3):
        policy.release(SVC, A)
    assert policy.active(SVC, A) == 0
    policy.release("ns/missing:http", A)  # a service nobody knows: nothing to do


# ---- a retry is a failed dial ----

@pytest.mark.parametrize("mode", MODES)
def test_a_retry_from_the_same_src_takes_the_failed_dial_back_and_ejects_it(mode):
    policy = rap(mode, eject_s=5)
    first = policy.next_endpoint(SVC, "c", 10, src="c:1000")
    assert first == A and policy.active(SVC, A) == 1
    retry = policy.next_endpoint(SVC, "c", 11, affinity_reset=True, src="c:1000")
    assert retry != A and policy.active(SVC, A) == 0 and policy.active(SVC, retry) == 1
    assert policy.is_ejected(SVC, A, 16)  # until = 11 + 5, inclusive
    assert not policy.is_ejected(SVC, A, 16.001)


def test_a_retry_needs_affinity_reset_and_the_same_src():
    policy = rap()
    policy.next_endpoint(SVC, "c", 0, src="c:1000")
    policy.next_endpoint(SVC, "c", 1, src="c:1000")  # no affinity_reset: a new connection
    policy.next_endpoint(SVC, "c", 2, affinity_reset=True, src="c:1001")  # another connection's src
    policy.next_endpoint(SVC, "c", 3, affinity_reset=True)  # no src: nothing to detect
    assert [policy.active(SVC, e) for e in (A, B, C)] == [2, 1, 1]
    assert not any(policy.is_ejected(SVC, e, 3) for e in (A, B, C))


def test_the_retry_window_is_twenty_seconds_inclusive():
    assert RETRY_WINDOW_S == 20
    policy = rap()
    policy.next_endpoint(SVC, "c", 0, src="c:1")
    policy.next_endpoint(SVC, "c", 0, src="c:2")
    policy.next_endpoint(SVC, "c", 20, affinity_reset=True, src="c:1")  # 20 s ago: still a retry
    policy.next_endpoint(SVC, "c", 20.5, affinity_reset=True, src="c:2")  # 20.5 s ago: not
    assert policy.is_ejected(SVC, A, 20) and not policy.is_ejected(SVC, B, 20.5)
    # A's failed dial taken back; B's first connection still counts, and the second request got B too
    assert policy.active(SVC, A) == 0 and policy.active(SVC, B) == 2


def test_a_retry_drops_the_last_entry_so_it_reports_once():
    book = ConnectionBook()
    book.opened(A.addr, "c:1", 0)
    assert book.retried("c:1", 1, [A, B], eject_s=10) == A.addr
    assert book.last("c:1") is None
    assert book.retried("c:1", 2, [A, B], eject_s=10) is None  # nothing left to report
    assert book.ejected_until == {A.addr: 11}


def test_a_retry_of_an_endpoint_no_longer_listed_reports_nothing():
    policy = rap()
    policy.next_endpoint(SVC, "c", 0, src="c:1")  # A
    policy.set_endpoints(SVC, [B, C])
    policy.next_endpoint(SVC, "c", 1, affinity_reset=True, src="c:1")
    assert policy._services[SVC].book.ejected_until == {}


def test_old_last_entries_are_pruned():
    book = ConnectionBook()
    for port in range(100):
        book.opened(A.addr, f"c:{port}", 0)
    book.opened(A.addr, "c:new", RETRY_WINDOW_S + 1)
    assert book.last("c:0") is None and book.last("c:new") == (A.addr, RETRY_WINDOW_S + 1)
    assert len(book._last) == 1


# ---- ejected endpoints are a last resort ----

def test_usable_set_leaves_out_the_ejected_unless_all_are():
    book = ConnectionBook()
    eps = [A, B, C]
    assert book.usable(eps, 0) == ([0, 1, 2], float("inf"))
    book.ejected_until = {A.addr: 5.0, C.addr: 3.0}
    assert book.usable(eps, 3) == ([1], 3.0)  # holds until the earliest ejection ends
    assert book.usable(eps, 4) == ([1, 2], 5.0)
    book.ejected_until[B.addr] = 9.0
    assert book.usable(eps, 3) == ([0, 1, 2], 3.0)  # all ejected: all of them, a last resort


def _eject(policy, endpoint, now, src="x:1"):
    """Make ``endpoint`` the failed dial of a retry at ``now`` (the retry's own pick is released)."""
    policy._services[SVC].book.opened(endpoint.addr, src, now)
    ep = policy.next_endpoint(SVC, "x", now, affinity_reset=True, src=src)
    policy.release(SVC, ep)


def test_classic_round_robin_skips_ejected_endpoints():
    policy = rap()  # no metrics: blind, round robin
    _eject(policy, B, 0)  # the retry itself took A (index 0 -> 1)
    assert addrs(policy.next_endpoint(SVC, "c", t) for t in (1, 2, 3)) == addrs([C, A, C])
    # once the ejection is over (10 s), B is back in its place
    assert addrs(policy.next_endpoint(SVC, "c", t) for t in (11, 12, 13)) == addrs([A, B, C])


def test_classic_round_robin_over_all_when_everything_is_ejected():
    policy = rap()
    book = policy._services[SVC].book
    book.ejected_until = {e.addr: 100.0 for e in (A, B, C)}
    assert addrs(policy.next_endpoint(SVC, "c", t) for t in range(4)) == addrs([A, B, C, A])


def test_classic_plan_is_made_over_the_usable_set_and_dropped_by_a_new_ejection():
    d = Endpoint("10.0.1.1", 80, "node-b")
    policy = Rap("node-a", RapConfig(mode="classic"), shuffle=False)
    policy.set_endpoints(SVC, [A, B, d])
    policy.update_snapshot(Snapshot(pods={A.ip: Usage(0.1, 0.1, 0), B.ip: Usage(0.1, 0.1, 0)},
                                    nodes={"node-a": Usage(0.1, 0.1, 0), "node-b": Usage(0.1, 0.1, 0)}))
    assert policy.explain(SVC, 1) == "local: node-a has capacity"
    first = policy.next_endpoint(SVC, "c", 1, src="c:1")
    assert first == A
    policy.next_endpoint(SVC, "c", 2, affinity_reset=True, src="c:1")  # A failed: the plan is made again
    assert policy.is_ejected(SVC, A, 2)
    assert addrs(policy.next_endpoint(SVC, "c", t) for t in (3, 4)) == addrs([B, B])  # A left out
    _eject(policy, B, 5, src="x:2")  # every local endpoint ejected: forward
    assert policy.next_endpoint(SVC, "c", 6) == d
    # the plan made while A and B were ejected ends with A's ejection (2 + 10): A is local again
    assert policy.next_endpoint(SVC, "c", 12) == d
    assert policy.next_endpoint(SVC, "c", 12.5) == A


def test_affinity_hits_do_not_consult_the_usable_set():
    policy = Rap("node-a", RapConfig(mode="classic"), shuffle=False)
    policy.new_service(SVC, AFFINITY_CLIENT_IP, 60)
    policy.set_endpoints(SVC, [A, B, C])
    assert policy.next_endpoint(SVC, "sticky", 0) == A
    _eject(policy, A, 1)
    assert policy.next_endpoint(SVC, "sticky", 2) == A  # the live entry wins
    assert policy.next_endpoint(SVC, "sticky", 3, affinity_reset=True, src="s:1") != A  # a reset does not


# ---- churn ----

def test_churn_keeps_the_bookkeeping_of_staying_addresses_and_drops_the_rest():
    policy = rap()
    for t, src in enumerate(("c:1", "c:2", "c:3")):
        policy.next_endpoint(SVC, "c", t, src=src)  # A, B, C
    _eject(policy, C, 3)
    book = policy._services[SVC].book
    policy.set_endpoints(SVC, [A, C, Endpoint("10.0.0.9", 80, "node-a")])
    assert (book.active, set(book.ejected_until)) == ({A.addr: 1, C.addr: 1}, {C.addr})
    assert book.last("c:1") == (A.addr, 0) and book.last("c:2") is None
    policy.add_endpoints(SVC, [A])
    assert (book.active, book.ejected_until, book.last("c:3")) == ({A.addr: 1}, {}, None)


def test_an_empty_list_or_a_deleted_service_drops_all_bookkeeping():
    policy = rap()
    policy.next_endpoint(SVC, "c", 0, src="c:1")
    policy.set_endpoints(SVC, [])
    policy.set_endpoints(SVC, [A, B, C])
    assert policy.active(SVC, A) == 0
    policy.next_endpoint(SVC, "c", 1, src="c:1")
    policy.delete_service(SVC)
    policy.set_endpoints(SVC, [A, B, C])
    assert policy.active(SVC, A) == 0


def test_refreshed_node_names_keep_the_bookkeeping():
    policy = rap()
    policy.next_endpoint(SVC, "c", 0)
    policy.set_endpoints(SVC, [Endpoint(A.ip, A.port, "node-z"), B, C])
    assert policy.active(SVC, A) == 1 and policy.endpoints(SVC)[0].node == "node-z"


# ---- OnEndpointsAdd ----

def test_add_endpoints_replaces_even_the_same_set():
    for policy in (RoundRobin(shuffle=False), rap()):
        policy.set_endpoints(SVC, [A, B, C])
        policy.next_endpoint(SVC, "c", 0)
        policy.set_endpoints(SVC, [C, B, A])  # update path, same set: order and index stay
        assert policy.next_endpoint(SVC, "c", 1) == B
        policy.add_endpoints(SVC, [C, B, A])  # add path: replaced, index back to 0
        assert policy.endpoints(SVC) == [C, B, A] and policy.next_endpoint(SVC, "c", 2) == C


def test_add_endpoints_creates_the_service_and_an_empty_list_leaves_one_alone():
    policy = RoundRobin(shuffle=False)
    policy.add_endpoints(SVC, [])
    assert SVC in policy._services and policy.endpoints(SVC) == []
    policy.add_endpoints(SVC, [A, B])
    policy.add_endpoints(SVC, [])
    assert policy.endpoints(SVC) == [A, B]


def test_add_endpoints_keeps_affinity_entries_as_upstream_does():
    policy = RoundRobin(shuffle=False)
    policy.new_service(SVC, AFFINITY_CLIENT_IP, 60)
    policy.set_endpoints(SVC, [A, B])
    assert policy.next_endpoint(SVC, "c", 0) == A
    policy.add_endpoints(SVC, [B, C])
    assert policy.next_endpoint(SVC, "c", 1) == A  # OnEndpointsAdd does not touch the affinity map
    policy.set_endpoints(SVC, [C, B])  # same set: node names refreshed, the stray entry survives that too
    policy.set_endpoints(SVC, [C])  # upstream's removeStaleAffinity drops only entries of the old list (B)
    assert policy.next_endpoint(SVC, "c", 2) == A
    assert policy.next_endpoint(SVC, "d", 3) == C
    policy.set_endpoints(SVC, [B])  # C was listed and is gone: d's entry goes
    assert policy.next_endpoint(SVC, "d", 4) == B
