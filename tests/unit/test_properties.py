"""Invariants of the policies over random clusters, snapshots and request streams."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rap.config import RapConfig
from rap.policies import AFFINITY_CLIENT_IP, AFFINITY_NONE, Endpoint, Rap, RoundRobin, make_policy
from rap.snapshot import Rtt, Snapshot, Usage

NODES = ["node-a", "node-b", "node-c", "node-d"]
SVC = "ns/svc:p"

fractions = st.floats(min_value=0, max_value=1.2, allow_nan=False)
times = st.floats(min_value=0, max_value=40, allow_nan=False)


@st.composite
def endpoint_lists(draw, min_size=1):
    ips = draw(st.lists(st.integers(1, 250), min_size=min_size, max_size=12, unique=True))
    return [Endpoint(f"10.1.0.{i}", 8080, draw(st.sampled_from(NODES))) for i in ips]


@st.composite
def snapshots(draw, endpoints):
    pods = {
        e.ip: Usage(draw(fractions), draw(fractions), draw(times))
        for e in endpoints
        if draw(st.booleans())
    }
    nodes = {n: Usage(draw(fractions), draw(fractions), draw(times)) for n in NODES if draw(st.booleans())}
    rtt = {n: Rtt(draw(st.floats(0, 300)), draw(times)) for n in NODES[1:] if draw(st.booleans())}
    return Snapshot(pods, nodes, rtt)


@st.composite
def scenarios(draw):
    endpoints = draw(endpoint_lists())
    snap = draw(snapshots(endpoints))
    stream = draw(st.lists(st.tuples(st.sampled_from(["c1", "c2", "c3"]), times), min_size=1, max_size=30))
    stream.sort(key=lambda r: r[1])
    churn = draw(endpoint_lists())
    affinity = draw(st.sampled_from([AFFINITY_NONE, AFFINITY_CLIENT_IP]))
    return endpoints, snap, stream, churn, affinity


def _free(snap: Snapshot, ep: Endpoint, now: float, stale: float = 15) -> bool:
    u = snap.pods.get(ep.ip)
    return u is None or now - u.at > stale or (u.cpu < 0.8 and u.mem < 0.9)


def _has_data(snap: Snapshot, endpoints, now: float, stale: float = 15) -> bool:
    fresh = lambda u: u is not None and now - u.at <= stale  # noqa: E731
    return any(fresh(snap.pods.get(e.ip)) or fresh(snap.nodes.get(e.node)) for e in endpoints)


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.sampled_from(["rap", "rap:classic", "round-robin", "least-request"]))
def test_only_live_endpoints_are_returned_and_none_refused(scenario, name):
    endpoints, snap, stream, churn, affinity = scenario
    name, _, mode = name.partition(":")
    policy = make_policy(name, local_node="node-a", seed=1, config=RapConfig(mode=mode or "adaptive"))
    policy.new_service(SVC, affinity, 30)
    policy.set_endpoints(SVC, endpoints)
    policy.update_snapshot(snap)
    half = len(stream) // 2
    for i, (client, now) in enumerate(stream):
        if i == half:
            policy.set_endpoints(SVC, churn)
            endpoints = churn
        ep = policy.next_endpoint(SVC, client, now)  # raising here would be a refusal
        assert ep in endpoints


@pytest.mark.parametrize("mode", ["classic", "adaptive"])
@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_rap_without_metrics_equals_round_robin(mode, scenario):
    endpoints, _, stream, churn, affinity = scenario
    rap, rr = Rap("node-a", RapConfig(mode=mode), seed=5), RoundRobin(seed=5)
    for p in (rap, rr):
        p.new_service(SVC, affinity, 30)
        p.set_endpoints(SVC, endpoints)
    half = len(stream) // 2
    for i, (client, now) in enumerate(stream):
        if i == half:
            rap.set_endpoints(SVC, churn)
            rr.set_endpoints(SVC, churn)
        assert rap.next_endpoint(SVC, client, now) == rr.next_endpoint(SVC, client, now)


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_non_overloaded_local_node_with_free_endpoints_never_forwards(scenario):
    endpoints, snap, stream, _, _ = scenario
    local_usage = snap.nodes.get("node-a")
    rap = Rap("node-a", RapConfig(mode="classic"), seed=2)
    rap.set_endpoints(SVC, endpoints)
    rap.update_snapshot(snap)
    for client, now in stream:
        local_ok = local_usage is None or now - local_usage.at > 15 or (
            local_usage.cpu < 0.8 and local_usage.mem < 0.9
        )
        has_free_local = any(e.node == "node-a" and _free(snap, e, now) for e in endpoints)
        ep = rap.next_endpoint(SVC, client, now)
        # Blind RAP is kube-proxy's round robin by design (rule 1 comes first).
        if local_ok and has_free_local and _has_data(snap, endpoints, now):
            assert ep.node == "node-a" and _free(snap, ep, now)
