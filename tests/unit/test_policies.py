import pytest

from rap.policies import (
    AFFINITY_CLIENT_IP,
    Endpoint,
    LeastRequest,
    MissingServiceError,
    NoEndpointsError,
    POLICY_NAMES,
    Rap,
    RoundRobin,
    make_policy,
)
from rap.config import RapConfig
from rap.snapshot import Snapshot, Usage

CLASSIC = RapConfig(mode="classic")

SVC = "ns/web:http"
EPS = [Endpoint(f"10.0.0.{i}", 80, "node-a" if i < 3 else "node-b") for i in range(1, 6)]


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_every_policy_refuses_unknown_service_and_empty_endpoints(name):
    policy = make_policy(name, local_node="node-a")
    with pytest.raises(MissingServiceError):
        policy.next_endpoint(SVC, "1.1.1.1", 0)
    policy.new_service(SVC)
    with pytest.raises(NoEndpointsError):
        policy.next_endpoint(SVC, "1.1.1.1", 0)


def test_unknown_policy_name_lists_the_choices():
    with pytest.raises(ValueError, match="round-robin, rap, least-request"):
        make_policy("random")


def test_round_robin_shuffles_once_then_cycles():
    rr = RoundRobin(seed=7)
    rr.set_endpoints(SVC, EPS)
    order = rr.endpoints(SVC)
    assert sorted(e.addr for e in order) == sorted(e.addr for e in EPS)
    picks = [rr.next_endpoint(SVC, "c", t) for t in range(10)]
    assert picks == order + order


def test_round_robin_same_set_keeps_index_new_set_resets():
    rr = RoundRobin(shuffle=False)
    rr.set_endpoints(SVC, EPS)
    rr.next_endpoint(SVC, "c", 0)
    rr.set_endpoints(SVC, list(reversed(EPS)))
    assert rr.next_endpoint(SVC, "c", 1) == EPS[1]
    rr.set_endpoints(SVC, EPS[:3])
    assert rr.next_endpoint(SVC, "c", 2) == EPS[0]


def test_affinity_set_by_new_service_survives_endpoint_updates():
    rr = RoundRobin(shuffle=False)
    rr.new_service(SVC, AFFINITY_CLIENT_IP, 60)
    rr.set_endpoints(SVC, EPS)
    first = rr.next_endpoint(SVC, "9.9.9.9", 0)
    assert all(rr.next_endpoint(SVC, "9.9.9.9", t) == first for t in range(1, 50))


def test_least_request_prefers_the_idle_endpoint():
    lr = LeastRequest(shuffle=False, seed=1)
    busy, idle = EPS[0], EPS[1]
    lr.set_endpoints(SVC, [busy])
    for t in range(5):
        lr.next_endpoint(SVC, "c", t)  # five connections in flight on `busy`
    lr.set_endpoints(SVC, [busy, idle])  # `busy` stays listed, so its count stays
    assert lr.active(SVC, busy) == 5
    picks = [lr.next_endpoint(SVC, "c", t) for t in range(20)]
    # Two random draws pick `busy` only when both land on it (p = 1/4 each), and each
    # pick of `idle` adds to its count; `idle` must win clearly.
    assert picks.count(idle) > picks.count(busy)


def test_least_request_release_frees_the_slot():
    lr = LeastRequest(shuffle=False, seed=3)
    lr.set_endpoints(SVC, EPS[:1])
    ep = lr.next_endpoint(SVC, "c", 0)
    assert lr.active(SVC, ep) == 1
    lr.release(SVC, ep)
    lr.release(SVC, ep)  # a double release must not go negative
    assert lr.active(SVC, ep) == 0


def test_least_request_forgets_removed_endpoints():
    lr = LeastRequest(shuffle=False, seed=3)
    lr.set_endpoints(SVC, EPS[:2])
    for t in range(4):
        lr.next_endpoint(SVC, "c", t)
    lr.set_endpoints(SVC, EPS[1:3])
    assert lr.active(SVC, EPS[0]) == 0


def test_rap_explains_its_choice():
    rap = Rap("node-a", CLASSIC, shuffle=False)
    rap.set_endpoints(SVC, EPS)
    assert rap.explain(SVC, 0).startswith("blind")
    rap.update_snapshot(Snapshot(nodes={"node-a": Usage(0.95, 0.1, 0), "node-b": Usage(0.1, 0.1, 0)}))
    assert rap.explain(SVC, 1) == "forward: node-b scores best from node-a"
    assert rap.next_endpoint(SVC, "c", 1).node == "node-b"


def test_rap_replans_when_an_input_goes_stale():
    rap = Rap("node-a", CLASSIC, shuffle=False)
    rap.set_endpoints(SVC, EPS)
    rap.update_snapshot(Snapshot(nodes={"node-a": Usage(0.95, 0.1, 0), "node-b": Usage(0.1, 0.1, 10)}))
    assert rap.next_endpoint(SVC, "c", 15).node == "node-b"  # node-a's overload still fresh
    assert rap.next_endpoint(SVC, "c", 15.01).node == "node-a"  # now stale: local again


@pytest.mark.parametrize("mode", ["classic", "adaptive"])
def test_rap_forgets_a_deleted_service(mode):
    rap = Rap("node-a", RapConfig(mode=mode), shuffle=False)
    rap.update_snapshot(Snapshot(nodes={"node-a": Usage(0.1, 0.1, 0)}))
    rap.set_endpoints(SVC, EPS)
    rap.next_endpoint(SVC, "c", 1)
    rap.delete_service(SVC)
    fresh = [Endpoint("10.9.9.9", 80, "node-a")]
    rap.set_endpoints(SVC, fresh)  # the new service's generation restarts and could match the old plan
    assert rap.next_endpoint(SVC, "c", 2) == fresh[0]
