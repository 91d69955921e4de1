"""rap.bench.scenarios: the scenarios are valid, options are checked, the order rotates."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rap.bench import runner, scenarios
from rap.bench.scenarios import POLICIES, SCENARIOS, Overload, Scenario, ScenarioError, Target


def test_every_scenario_is_valid_and_builds_a_cluster_config():
    from rap.localcluster.config import ClusterConfig

    assert set(SCENARIOS) == {"balanced", "geo", "overload", "rates", "overload-prod", "rates-prod", "contested"}
    for s in SCENARIOS.values():
        scenarios.validate(s)
        ClusterConfig(proxy="rap", **s.cluster_kwargs())
        assert s.description


def test_the_paper_shapes():
    geo, over, bal = SCENARIOS["geo"], SCENARIOS["overload"], SCENARIOS["balanced"]
    assert bal.rtt_ms == () and bal.clients == (1, 2, 3) and bal.overload is None
    rtt = {(a, b): ms for a, b, ms in geo.rtt_ms}
    assert rtt[(1, 2)] < rtt[(1, 3)] and geo.clients == (1,)
    # round robin must keep sending most connections to the saturated pods
    total = sum(over.pods_on(i) for i in range(1, over.nodes + 1))
    assert over.overload.node in over.clients and over.pods_on(over.overload.node) / total > 0.5
    assert SCENARIOS["rates"].mode == "open" and SCENARIOS["rates"].shape_key() == geo.shape_key()
    targets = {n: {(t.metric, t.op, t.value) for t in SCENARIOS[n].targets} for n in ("geo", "overload")}
    assert targets["geo"] == targets["overload"] == {("p50_ms", "<=", 0.7), ("throughput_rps", ">=", 1.2)}


def test_production_cadence_variants_change_only_the_cadence():
    for name in ("overload", "rates"):
        fast, prod = SCENARIOS[name], SCENARIOS[f"{name}-prod"]
        assert (prod.rap_period_s, prod.metrics_interval_s, prod.metrics_window_s) == (5.0, 15.0, 15.0)
        assert (fast.rap_period_s, fast.metrics_interval_s, fast.metrics_window_s) == (1.0, 0.5, 2.0)
        same = ("nodes", "pods", "default_pods", "pod_cpu", "cpu_ms", "rtt_ms", "clients", "mode", "concurrency",
                "rates", "duration_s", "overload")
        assert all(getattr(fast, f) == getattr(prod, f) for f in same), name
        assert prod.shape_key() != fast.shape_key() and not prod.in_quick and fast.in_quick
        assert ClusterConfigFor(prod).rap_period_s == 5.0 and ClusterConfigFor(prod).metrics_window_s == 15.0


def ClusterConfigFor(s):
    from rap.localcluster.config import ClusterConfig
    return ClusterConfig(proxy="rap", **s.cluster_kwargs())


def test_quick_leaves_out_the_production_cadence_unless_only_those_are_named():
    names = [s.name for s in scenarios.plan(list(SCENARIOS), quick=True)]
    assert names == ["balanced", "geo", "rates", "overload"]  # contested: its own 4-node cluster
    assert [s.name for s in scenarios.plan(["overload-prod"])] == ["overload-prod"]
    with pytest.raises(ScenarioError, match="without --quick"):
        scenarios.plan(["overload-prod"], quick=True)


def test_a_base_must_be_an_earlier_scenario(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[[scenario]]\nname = "a"\ntitle = "A"\ndescription = "d"\nbase = "b"\n')
    with pytest.raises(ScenarioError, match="base 'b' is not an earlier scenario"):
        scenarios.load(f)


@pytest.mark.parametrize("change, words", [
    (dict(mode="sideways"), "mode"),
    (dict(duration_s=0), "duration"),
    (dict(clients=(4,)), "clients"),
    (dict(clients=(1, 1)), "clients"),
    (dict(mode="open", rates=()), "rates"),
    (dict(mode="open", rates=(80, 20)), "rise"),
    (dict(overload=Overload(node=2), pods=((2, 0),)), "no pods"),
    (dict(targets=(Target("p42", "<=", 1),)), "target"),
    (dict(pod_cpu=0), "--pod-cpu"),
    (dict(rtt_ms=((1, 1, 5.0),)), "--rtt"),
    (dict(think_ms=-1), "think time"),
    (dict(think_ms=scenarios.MAX_THINK_MS + 1), "think time"),
    (dict(mode="open", rates=(20,), think_ms=5), "closed loop only"),
    (dict(mode="open", rates=(20, 80), quick_rates=(80, 20)), "quick_rates must rise"),
    (dict(mode="open", rates=(20,), quick_rates=(0,)), "quick_rates in"),
    (dict(quick_rates=(20,)), "open loop only"),
    (dict(bar="nope"), "bar 'nope'"),
])
def test_validation_names_the_problem(change, words):
    with pytest.raises(ScenarioError, match=words):
        scenarios.validate(replace(SCENARIOS["geo"], **change))


def test_balanced_load_stays_under_raps_threshold():
    # A closed-loop worker with think time Z sends at most 1/Z requests per
    # second; even at 1.5x the nominal CPU cost per request (the backend's
    # HTTP handling), every pod must stay clearly below RAP's CPU threshold,
    # or the "balanced" baseline would be an overload test in disguise.
    from rap.config import RapConfig

    s = SCENARIOS["balanced"]
    assert s.mode == "closed" and s.think_ms > 0
    max_rps = len(s.clients) * s.concurrency * 1000 / s.think_ms
    pods = sum(s.pods_on(i) for i in range(1, s.nodes + 1))
    pod_use = max_rps / pods * 1.5 * s.cpu_ms / 1000 / s.pod_cpu
    assert pod_use < RapConfig().cpu_threshold


def test_parse_names():
    assert scenarios.parse_names(None) == list(SCENARIOS)
    assert scenarios.parse_names("geo, overload") == ["geo", "overload"]
    with pytest.raises(ScenarioError, match="unknown nope"):
        scenarios.parse_names("geo,nope")
    with pytest.raises(ScenarioError, match="twice"):
        scenarios.parse_names("geo,geo")


def test_plan_quick_and_duration_and_grouping_by_shape():
    quick = scenarios.plan(["rates", "balanced", "geo"], quick=True)
    assert [s.name for s in quick] == ["rates", "geo", "balanced"]  # same shape kept together
    assert all(s.duration_s == scenarios.QUICK["duration_s"] for s in quick)
    assert quick[0].rates == SCENARIOS["rates"].quick_rates == (20, 80)
    assert all(s.duration_s == 7 for s in scenarios.plan(["geo"], duration=7))
    with pytest.raises(ScenarioError, match="--duration"):
        scenarios.plan(["geo"], duration=1000)


def test_quick_fits_in_a_minute_per_policy_by_estimate():
    # Was "under three minutes" with three policies; quick now runs every policy
    # (the peers of issue 12), so the bound is the same minute per policy.
    assert scenarios.estimate_seconds(scenarios.plan(list(SCENARIOS), quick=True), reps=1) < 60 * len(POLICIES)


def test_policy_order_rotates_and_chains_across_scenarios():
    names = list(POLICIES)
    assert scenarios.policy_order(0) == names
    assert scenarios.policy_order(1) == names[1:] + names[:1]
    assert scenarios.policy_order(2) == names[2:] + names[:2]
    assert scenarios.policy_order(len(names)) == scenarios.policy_order(0)
    for last in range(len(names)):
        nxt = runner.next_rotation(last, len(POLICIES))
        assert scenarios.policy_order(nxt)[0] == scenarios.policy_order(last)[-1]


def test_targets():
    assert Target("p50_ms", "<=", 0.7).check(0.7) is True
    assert Target("throughput_rps", ">=", 1.2).check(1.1) is False
    assert Target("p50_ms", "within", 0.1).check(0.91) is True
    assert Target("p50_ms", "within", 0.1).check(1.11) is False
    assert Target("p50_ms", "<=", 0.7).check(None) is None


def test_options_reject_bad_reps():
    with pytest.raises(ScenarioError, match="--reps"):
        scenarios.Options(reps=0)


def test_scenario_is_data():
    s = Scenario(name="x", title="x", description="x")
    assert s.steps() == [None] and s.seconds_per_run() == s.warmup_s + s.duration_s


def test_scenarios_file_loads_every_field_it_names(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[[scenario]]\nname = "x"\ntitle = "X"\ndescription = "d"\npods = {1 = 5}\n'
                    'rtt_ms = [[1, 2, 5.0]]\nclients = [1, 2]\noverload = {node = 1}\n'
                    'targets = [{metric = "p50_ms", op = "<=", value = 0.7}]\n')
    s = scenarios.load(path)["x"]
    assert s.pods == ((1, 5),) and s.rtt_ms == ((1, 2, 5.0),) and s.clients == (1, 2)
    assert s.overload == scenarios.Overload(node=1) and s.targets == (Target("p50_ms", "<=", 0.7),)
    assert scenarios.validate(s) is s


def test_scenarios_file_with_an_unknown_field_names_it(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[[scenario]]\nname = "x"\ntitle = "X"\ndescription = "d"\nnodez = 3\n')
    with pytest.raises(ScenarioError, match="scenario 'x'.*nodez"):
        scenarios.load(path)


def test_policies_option_keeps_the_table_order_and_names_unknown_ones():
    assert scenarios.parse_policies(None) == list(POLICIES)
    assert scenarios.parse_policies("iptables, rap") == ["rap", "iptables"]
    with pytest.raises(ScenarioError, match="--policies: unknown ipvs; choose from round-robin"):
        scenarios.parse_policies("rap,ipvs")


def test_a_subset_naming_one_twice_is_refused():
    with pytest.raises(ScenarioError, match="--scenarios: 'geo,geo' names one twice"):
        scenarios.parse_names("geo,geo")
    with pytest.raises(ScenarioError, match="--policies: 'rap,rap' names one twice"):
        scenarios.parse_policies("rap,rap")


def test_the_contested_shape_overloads_both_clients_and_its_best_target_is_not_the_nearest():
    from rap.config import RapConfig

    s = scenarios.validate(SCENARIOS["contested"])
    nodes = range(1, s.nodes + 1)
    assert s.nodes == 4 and s.clients == (1, 2) and s.mode == "open" and s.overload is None
    per_pod = s.pod_cpu * 1000 / s.cpu_ms  # req/s one pod serves at its CPU limit
    for c in s.clients:  # each client's rate is past its own pods' capacity, at the same time
        assert all(rate > s.pods_on(c) * per_pod for rate in s.rates)
    offered = len(s.clients) * max(s.rates)
    assert offered < RapConfig().cpu_threshold * per_pod * sum(s.pods_on(i) for i in nodes)  # fits if spread
    rtt = {(a, b): ms for a, b, ms in s.rtt_ms}
    assert set(rtt) == {(a, b) for a in nodes for b in nodes if a < b}  # a round trip between every pair
    assert min(ms for pair, ms in rtt.items() if 4 in pair) >= max(ms for pair, ms in rtt.items() if 4 not in pair)
    assert s.pods_on(4) > max(s.pods_on(i) for i in nodes if i != 4)  # the farthest holds the most pods
    nearest = min((i for i in nodes if i not in s.clients), key=lambda i: sum(rtt[(c, i)] for c in s.clients))
    assert nearest != 4 and offered > s.pods_on(nearest) * per_pod  # all of it to the nearest would swamp it
    for figure in ("0.1 / 0.004 = 25 req/s", "60 req/s", "150 req/s", "300 req/s"):  # the stated arithmetic
        assert figure in s.description
    assert s.bar == "best-peer" and not s.in_quick  # its bring-up would take --quick past a minute per policy


def test_quick_keeps_a_scenarios_own_rates_unless_it_names_quick_rates():
    [geo] = scenarios.plan(["geo"], quick=True)
    assert geo.rates == SCENARIOS["geo"].rates and geo.duration_s == scenarios.QUICK["duration_s"]
    [rates] = scenarios.plan(["rates"], quick=True)
    assert rates.rates == (20, 80) and SCENARIOS["rates"].rates == (20, 80, 160, 240)


def test_rap_adaptive_follows_rap_in_the_policies():
    names = list(POLICIES)
    assert names[names.index("rap") + 1] == "rap-adaptive"
    assert POLICIES["rap"][0] == "rap" and POLICIES["rap-adaptive"][0] == "rap-adaptive"
    assert scenarios.peers_of("rap-adaptive") == scenarios.PEERS + ("rap",)
    assert scenarios.peers_of("rap") == scenarios.peers_of("rap-5s") == scenarios.PEERS
