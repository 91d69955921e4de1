"""RAP's adaptive decision (docs/algorithm.md, "The adaptive decision"), one rule per test."""

import pytest

from rap.config import RapConfig
from rap.policies import Endpoint, Rap
from rap.policies import adaptive as adaptive_module
from rap.policies.adaptive import COST_EPSILON, HEADROOM_FLOOR
from rap.snapshot import Rtt, Snapshot, Usage

SVC = "ns/web:http"
LA, LB = Endpoint("10.0.1.1", 80, "node-a"), Endpoint("10.0.1.2", 80, "node-a")
RB, RC = Endpoint("10.0.2.1", 80, "node-b"), Endpoint("10.0.3.1", 80, "node-c")
IDLE = Usage(0.0, 0.0, 0)


def adaptive(endpoints, snap, **config) -> Rap:
    policy = Rap("node-a", RapConfig(**config), shuffle=False)
    assert policy.mode == "adaptive"  # the default
    policy.set_endpoints(SVC, endpoints)
    policy.update_snapshot(snap)
    return policy


def picks(policy, times, release=False):
    out = []
    for t in times:
        ep = policy.next_endpoint(SVC, "c", t)
        if release:
            policy.release(SVC, ep)
        out.append(ep.addr)
    return out


def test_blind_is_round_robin_over_the_usable_set():
    policy = adaptive([LA, RB, RC], Snapshot(rtt={"node-b": Rtt(1, 0)}))  # RTTs alone are not resource data
    assert picks(policy, range(4)) == [LA.addr, RB.addr, RC.addr, LA.addr]


def test_a_local_pod_takes_connections_until_one_more_costs_more_than_the_round_trip():
    # remote cost = (0 + 1) / 1 + 10 / 10 = 2; local cost = (active + 1) / 1
    snap = Snapshot(pods={LA.ip: IDLE, RB.ip: IDLE}, rtt={"node-b": Rtt(10, 0)})
    policy = adaptive([LA, RB], snap)
    # local 1 < 2; local 2 ties 2 and wins on RTT; local 3 > 2: remote; then local 3 ties remote 3 ...
    assert picks(policy, [1] * 5) == [LA.addr, LA.addr, RB.addr, LA.addr, RB.addr]
    assert (policy.active(SVC, LA), policy.active(SVC, RB)) == (3, 2)
    policy.release(SVC, LA)
    policy.release(SVC, LA)
    assert picks(policy, [2]) == [LA.addr]  # connections that end make room locally at once


def test_headroom_scales_the_cost_per_connection():
    # LA at half its CPU threshold: headroom 0.5, cost 2 per connection; LB idle: cost 1
    snap = Snapshot(pods={LA.ip: Usage(0.4, 0.0, 0), LB.ip: IDLE})
    policy = adaptive([LA, LB], snap)
    # LB 1 < LA 2 (rr -> 0) | LA 2 = LB 2, same RTT: LA, first from rr 0 (rr -> 1) | LB 2 < 4 | LB 3 < 4
    assert picks(policy, [1] * 4) == [LB.addr, LA.addr, LB.addr, LB.addr]


def test_the_node_headroom_counts_when_lower_than_the_pods():
    # the pod is idle but its node is at 3/4 of the CPU threshold: headroom 0.25, cost 4
    snap = Snapshot(pods={LA.ip: IDLE}, nodes={"node-a": Usage(0.6, 0.0, 0)}, rtt={"node-b": Rtt(35, 0)})
    policy = adaptive([LA, RB], snap)
    assert picks(policy, [1], release=True) == [LA.addr]  # 4 < 1 + 35/10
    policy = adaptive([LA, RB], snap, rtt_per_conn_ms=100)
    assert picks(policy, [1], release=True) == [RB.addr]  # 4 > 1 + 35/100


def test_headroom_has_a_floor_even_above_the_limit():
    assert HEADROOM_FLOOR == 0.05
    snap = Snapshot(pods={LA.ip: Usage(1.7, 0.0, 0), RB.ip: Usage(0.79, 0.0, 0)}, rtt={"node-b": Rtt(190, 0)})
    # both hot? LA yes (1.7 >= 0.8), RB no: RB is the only candidate anyway
    policy = adaptive([LA, RB], snap)
    assert picks(policy, [1], release=True) == [RB.addr]
    # with every endpoint overloaded the floor decides: LA 1/0.05 = 20 vs RB 1/0.05 + 190/10 = 39
    snap = Snapshot(pods={LA.ip: Usage(1.7, 0.0, 0), RB.ip: Usage(0.8, 0.0, 0)}, rtt={"node-b": Rtt(190, 0)})
    policy = adaptive([LA, RB], snap)
    assert picks(policy, [1], release=True) == [LA.addr]


def test_the_floor_is_the_headroom_of_usage_at_or_above_the_threshold():
    snap = Snapshot(pods={LA.ip: Usage(1.7, 0.0, 0), LB.ip: Usage(0.0, 0.9, 0), RB.ip: Usage(0.4, 0.45, 0)})
    snap = snap.swapped_in_over(Snapshot(), cpu_threshold=0.8, mem_threshold=0.9, hysteresis=0.1)
    t = adaptive_module.terms("node-a", RapConfig(), snap, [LA, LB, RB], [0, 1, 2], 1, generation=0, ejections=0)
    # LA and LB are hot; RB is not, so it is the only candidate: min(1 - 0.4/0.8, 1 - 0.45/0.9) = 0.5
    assert t.candidates == [2] and t.headroom == [0.5]
    t = adaptive_module.terms("node-a", RapConfig(), snap, [LA, LB], [0, 1], 1, generation=0, ejections=0)
    assert t.headroom == [HEADROOM_FLOOR, HEADROOM_FLOOR]


def test_overloaded_endpoints_are_left_out_unless_all_are():
    snap = Snapshot(pods={LA.ip: Usage(0.85, 0.0, 0), RB.ip: Usage(0.0, 0.95, 0), RC.ip: IDLE},
                    rtt={"node-b": Rtt(1, 0), "node-c": Rtt(500, 0)})
    policy = adaptive([LA, RB, RC], snap)
    assert picks(policy, [1] * 3, release=True) == [RC.addr] * 3  # however far, the only one not hot
    node_hot = Snapshot(pods={LA.ip: IDLE}, nodes={"node-a": Usage(0.1, 0.9, 0)}, rtt={"node-b": Rtt(400, 0)})
    policy = adaptive([LA, RB], node_hot)
    assert picks(policy, [1], release=True) == [RB.addr]  # a hot node's pods are overloaded too


def test_only_a_fresh_hot_sample_overloads():
    snap = Snapshot(pods={LA.ip: Usage(0.9, 0.0, 0), RB.ip: Usage(0, 0, 10)}, rtt={"node-b": Rtt(1, 10)})
    policy = adaptive([LA, RB], snap)
    assert picks(policy, [15], release=True) == [RB.addr]  # 15 - 0 <= 15: fresh, hot
    assert picks(policy, [15.5], release=True) == [LA.addr]  # stale: unknown, LA 1 < RB 1 + 1/10


def test_ties_go_to_the_lower_rtt_then_round_from_rr():
    # four idle endpoints; RB and RC both at 10 ms, so RB/RC cost 2 whenever LA costs 2 as well
    snap = Snapshot(pods={e.ip: IDLE for e in (LA, RB, RC)}, rtt={"node-b": Rtt(10, 0), "node-c": Rtt(10, 0)})
    policy = adaptive([RB, RC, LA], snap)
    # LA 1 | LA 2 = RB 2 = RC 2: LA, the lower RTT | LA 3 > 2: RB and RC tie on cost and RTT, RB is
    # first from rr 0 | RC 2 < 3
    assert picks(policy, [1] * 4) == [LA.addr, LA.addr, RB.addr, RC.addr]


def test_rr_picks_the_first_tied_position_from_the_cursor_and_resets_with_the_set():
    snap = Snapshot(pods={LA.ip: IDLE, LB.ip: IDLE})
    policy = adaptive([LA, LB], snap)
    assert picks(policy, [1] * 4, release=True) == [LA.addr, LB.addr, LA.addr, LB.addr]
    assert policy.next_endpoint(SVC, "c", 2) == LA  # rr -> 1
    policy.release(SVC, LA)
    policy.set_endpoints(SVC, [LA, LB, Endpoint("10.0.1.3", 80, "node-a")])  # new set: rr back to 0
    policy.update_snapshot(Snapshot(pods={LA.ip: IDLE, LB.ip: IDLE, "10.0.1.3": IDLE}))
    assert picks(policy, [3], release=True) == [LA.addr]


def test_a_selectorless_endpoint_is_never_local_and_costs_rtt_max():
    manual = Endpoint("192.0.2.10", 80, "")
    snap = Snapshot(pods={manual.ip: IDLE, RB.ip: IDLE}, rtt={"node-b": Rtt(5, 0), "node-c": Rtt(30, 0)})
    policy = Rap("", RapConfig(), shuffle=False)  # even a proxy whose node has no name sees it as remote
    policy.set_endpoints(SVC, [manual, RB])
    policy.update_snapshot(snap)
    assert picks(policy, [1], release=True) == [RB.addr]  # 1 + 5/10 < 1 + 30/10


def test_rtt_max_is_zero_without_fresh_rtts():
    snap = Snapshot(pods={LA.ip: Usage(0.4, 0, 0), RB.ip: IDLE}, rtt={"node-b": Rtt(10, 0), "node-a": Rtt(99, 0)})
    policy = adaptive([LA, RB], snap, stale_after_s=100)
    # node-b's RTT fresh at 50: RB 1 + 1 = 2 ties LA 2 and loses on RTT
    assert picks(policy, [50], release=True) == [LA.addr]
    policy.update_snapshot(Snapshot(pods={LA.ip: Usage(0.4, 0, 200), RB.ip: IDLE}, rtt={"node-b": Rtt(10, 0)}))
    # at 150, RB's pod and node-b's RTT are stale: rtt_max = 0, RB costs 1
    assert picks(policy, [150], release=True) == [RB.addr]


def test_ejected_endpoints_are_not_candidates():
    snap = Snapshot(pods={LA.ip: IDLE, RB.ip: IDLE}, rtt={"node-b": Rtt(10, 0)})
    policy = adaptive([LA, RB], snap)
    assert policy.next_endpoint(SVC, "c", 1, src="c:1") == LA
    assert policy.next_endpoint(SVC, "c", 2, affinity_reset=True, src="c:1") == RB  # LA's dial failed
    assert picks(policy, [3, 12], release=True) == [RB.addr, RB.addr]  # ejected until 2 + 10
    assert picks(policy, [12.5], release=True) == [LA.addr]


def test_costs_within_epsilon_are_ties():
    assert COST_EPSILON == 1e-9
    # LB: 1 / (1 - 0.4/0.8) = 2 exactly; LA slightly busier
    near = Snapshot(pods={LA.ip: Usage(0.40000000004, 0, 0), LB.ip: Usage(0.4, 0, 0)})
    policy = adaptive([LA, LB], near)
    assert picks(policy, [1], release=True) == [LA.addr]  # LA costs 2.0000000002: a tie, LA first from rr 0
    far = Snapshot(pods={LA.ip: Usage(0.400000004, 0, 0), LB.ip: Usage(0.4, 0, 0)})
    policy = adaptive([LA, LB], far)
    assert picks(policy, [1], release=True) == [LB.addr]  # LA costs 2.00000002: LB is cheaper


def test_the_hysteresis_keeps_a_hot_pod_out_until_clearly_below():
    # RB is far (cost 1 + 100), so LA wins whenever it is a candidate at all
    def swap(cpu, at):
        policy.update_snapshot(Snapshot(pods={LA.ip: Usage(cpu, 0, at), RB.ip: IDLE}, rtt={"node-b": Rtt(1000, 0)}))

    policy = adaptive([LA, RB], Snapshot())
    swap(0.85, 0)
    assert picks(policy, [1], release=True) == [RB.addr]  # hot
    swap(0.75, 1)
    assert picks(policy, [2], release=True) == [RB.addr]  # 0.75 >= 0.8 - 0.1: still hot
    swap(0.65, 2)
    assert picks(policy, [3], release=True) == [LA.addr]  # cooled: 1 / (1 - 0.65/0.8) = 5.3 < 101
    assert policy.explain(SVC, 3).startswith("adaptive: 10.0.1.1:80 costs least of 2 candidates")
    swap(0.75, 3)
    assert picks(policy, [4], release=True) == [LA.addr]  # not hot before: 0.75 < 0.8


def test_cached_terms_expire_exactly_when_a_sample_goes_stale():
    # at = 0.1, stale_after = 0.2: 0.3 - 0.1 is 0.19999999999999998 in floats (fresh), while
    # at + stale_after = 0.30000000000000004; the spec's rule is the subtraction.
    snap = Snapshot(pods={LA.ip: Usage(0.9, 0, 0.1), RB.ip: Usage(0, 0, 0.1)}, rtt={"node-b": Rtt(1, 0.1)})
    policy = adaptive([LA, RB], snap, stale_after_s=0.2)
    assert picks(policy, [0.1], release=True) == [RB.addr]  # LA hot and fresh; terms cached
    assert picks(policy, [0.3], release=True) == [RB.addr]  # still fresh by the subtraction
    # all stale: blind, round robin from index 0
    assert picks(policy, [0.30000000000000004], release=True) == [LA.addr]


def test_classic_mode_is_all_or_nothing_on_the_same_input():
    snap = Snapshot(pods={LA.ip: IDLE, RB.ip: IDLE}, rtt={"node-b": Rtt(10, 0)})
    policy = Rap("node-a", RapConfig(mode="classic"), shuffle=False)
    policy.set_endpoints(SVC, [LA, RB])
    policy.update_snapshot(snap)
    assert picks(policy, [1] * 5) == [LA.addr] * 5  # the adaptive mode spills the third (test above)


@pytest.mark.parametrize("config", [{"mode": "adaptive"}, {"mode": "classic"}])
def test_update_snapshot_returns_it_with_hot_flags(config):
    policy = Rap("node-a", RapConfig(**config))
    swapped = policy.update_snapshot(Snapshot(pods={LA.ip: Usage(0.8, 0, 0)}))
    assert swapped.hot_pods == {LA.ip} and policy._snapshot is swapped
