"""rap.bench.bar and the bars of scenarios.toml: MET / MISSED per step, at the boundaries too."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from rap.bench import bar, compare, report, stats
from rap.bench.ci import Intervals
from rap.bench.runner import RunRecord
from rap.bench.scenarios import BARS, SCENARIOS, Bar, Condition, ScenarioError, validate, validate_bar


def _m(tput, p50, p95, err=0.0):
    return {"requests": 100, "ok": 100, "failed": round(err * 100), "throughput_rps": tput, "p50_ms": p50,
            "p95_ms": p95, "p99_ms": p95, "error_rate": err, "local_share": 0.5}


def _step(measured: dict, reps: int = 3) -> dict:
    runs = {p: [RunRecord("geo", p, r, None, 0, 0.0, _m(*measured[p])) for r in range(1, reps + 1)]
            for p in measured}
    per_policy = {p: {"runs": reps, **stats.summarize([r.measures for r in rs])} for p, rs in runs.items()}
    return {"policies": per_policy, **compare.step(per_policy, runs, list(measured), Intervals())}


def test_the_bars_are_the_issues():
    best, rr = BARS["best-peer"], BARS["round-robin"]
    assert best.policy == rr.policy == "rap-adaptive"
    assert best.against == "best-peer" and rr.against == "round-robin"
    assert {(c.metric, c.op, c.value) for c in best.conditions} == {
        ("p50_ms", "<=", 1.0), ("p95_ms", "<=", 1.1), ("throughput_rps", ">=", 0.95), ("error_rate", "<=", 1.0)}
    assert {(c.metric, c.op, c.value) for c in rr.conditions} == {
        ("p50_ms", "within", 0.1), ("throughput_rps", "within", 0.1)}


def test_which_scenarios_are_judged_by_which_bar():
    assert {n: s.bar for n, s in SCENARIOS.items()} == {
        "balanced": "round-robin", "geo": "best-peer", "overload": "best-peer", "rates": "best-peer",
        "contested": "best-peer", "overload-prod": "", "rates-prod": ""}


@pytest.mark.parametrize("op, value, subject, reference, met", [
    ("<=", 1.0, 20.0, 20.0, True),  # equal to the best peer's p50: met
    ("<=", 1.0, math.nextafter(20.0, 99), 20.0, False),
    ("<=", 1.1, 1.1 * 30.0, 30.0, True),  # exactly 1.1x: met (inclusive)
    ("<=", 1.1, math.nextafter(1.1 * 30.0, 99), 30.0, False),
    (">=", 0.95, 0.95 * 160.0, 160.0, True),
    (">=", 0.95, math.nextafter(0.95 * 160.0, 0), 160.0, False),
    ("<=", 1.0, 0.0, 0.0, True),  # no failed request on either side
    ("<=", 1.0, 0.001, 0.0, False),  # one failure where the best peer had none
    ("<=", 1.0, 0.05, 0.05, True),
    ("within", 0.1, 1.1 * 9.0, 9.0, True),
    ("within", 0.1, 0.9 * 9.0, 9.0, True),
    ("within", 0.1, math.nextafter(1.1 * 9.0, 99), 9.0, False),
    ("within", 0.1, math.nextafter(0.9 * 9.0, 0), 9.0, False),
    ("<=", 1.0, None, 20.0, None),
    (">=", 0.95, 100.0, None, None),
])
def test_a_condition_at_and_around_its_boundary(op, value, subject, reference, met):
    assert Condition("p50_ms", op, value).check(subject, reference) is met


# rap-adaptive: a p50 as low as the best peer's, a p95 within 10% of classic RAP's (the best p95),
# a throughput 5% under the best peer's, and a failure share the best peer also has.
MEASURED = {"round-robin": (50, 150, 300, 0.02), "rap": (140, 40, 50, 0.02),
            "rap-adaptive": (190, 20, 55, 0.01), "haproxy": (100, 20, 900, 0.01),
            "iptables": (200, 30, 60, 0.03), "least-request": (200, 35, 70, 0.01)}


def test_met_at_every_boundary_against_each_metrics_own_best_peer():
    judged = bar.judge(BARS["best-peer"], _step(MEASURED))
    checks = {c["metric"]: c for c in judged["checks"]}
    assert {m: c["reference"]["policy"] for m, c in checks.items()} == {
        "p50_ms": "haproxy", "p95_ms": "rap", "throughput_rps": "iptables", "error_rate": "haproxy"}
    assert {m: c["verdict"] for m, c in checks.items()} == dict.fromkeys(checks, "MET")
    assert checks["p95_ms"]["ratio"] == pytest.approx(1.1) and checks["throughput_rps"]["ratio"] == 0.95
    assert checks["p50_ms"]["ci95"] is not None and checks["p50_ms"]["median"] == 20


def test_missed_just_past_each_boundary():
    worse = {**MEASURED, "rap-adaptive": (189, 21, 56, 0.011)}
    judged = bar.judge(BARS["best-peer"], _step(worse))
    assert [c["verdict"] for c in judged["checks"]] == ["MISSED"] * 4


def test_classic_rap_is_the_reference_only_for_the_adaptive_mode():
    step = _step(MEASURED)
    assert step["vs_best_peer"]["rap-adaptive"]["p95_ms"]["peer"] == "rap"
    assert step["vs_best_peer"]["rap"]["p95_ms"]["peer"] == "iptables"  # rap is not its own peer
    assert step["best_peer"]["p95_ms"]["policy"] == "iptables"  # the peers' own best stays among PEERS


def test_the_balanced_bar_is_against_round_robin():
    step = _step({"round-robin": (100, 10, 20), "rap-adaptive": (90, 11, 15), "iptables": (200, 1, 2)})
    checks = {c["metric"]: c for c in bar.judge(BARS["round-robin"], step)["checks"]}
    assert checks["p50_ms"]["reference"] == {"policy": "round-robin", "median": 10}
    assert checks["p50_ms"]["met"] and checks["throughput_rps"]["met"]  # 1.1x and 0.9x: the edges count
    assert checks["p50_ms"]["ci95"] == pytest.approx([1.1, 1.1])  # the ratio's interval from compare.step


def test_not_measured_without_the_policy_or_a_reference():
    no_peer = bar.judge(BARS["best-peer"], _step({"round-robin": (50, 150, 300), "rap-adaptive": (1, 1, 1)}))
    assert {c["met"] for c in no_peer["checks"]} == {None}
    assert no_peer["checks"][0]["reference"] == {"policy": None, "median": None}
    absent = bar.judge(BARS["round-robin"], _step({"round-robin": (50, 150, 300)}))
    assert {c["verdict"] for c in absent["checks"]} == {None}


def test_the_tally_counts_met_missed_and_not_measured_over_the_run():
    met = bar.judge(BARS["best-peer"], _step(MEASURED))
    missed = bar.judge(BARS["best-peer"], _step({**MEASURED, "rap-adaptive": (100, 25, 50, 0.0)}))
    nothing = bar.judge(BARS["round-robin"], _step({"round-robin": (50, 150, 300)}))
    doc = {"scenarios": {"geo": {"steps": {"closed": {"bar": met}}},
                         "rates": {"steps": {"20": {"bar": missed}, "80": {}}},
                         "balanced": {"steps": {"closed": {"bar": nothing}}}}}
    t = bar.tally(doc)
    assert (t["met"], t["missed"], t["not_measured"]) == (4 + 2, 2, 2)
    assert t["missed_checks"] == [["rates", "20", "p50_ms"], ["rates", "20", "throughput_rps"]]
    assert t["policies"] == ["rap-adaptive"]


def test_summary_and_report_state_the_bar_and_count_it(tmp_path):
    from tests.unit import test_bench_report as tr

    policies = ["round-robin", "rap", "rap-adaptive", "iptables", "haproxy"]
    doc = tr._doc(tmp_path, records=tr._synthetic(policies=policies, names=("balanced", "geo", "rates")),
                  policies=policies, names=("balanced", "geo", "rates"))
    geo = doc["scenarios"]["geo"]["steps"]["closed"]["bar"]
    assert geo["name"] == "best-peer" and len(geo["checks"]) == 4
    assert doc["scenarios"]["balanced"]["steps"]["closed"]["bar"]["against"] == "round-robin"
    t = doc["bar_tally"]
    assert t["met"] + t["missed"] + t["not_measured"] == 2 + 4 + 4 * len(SCENARIOS["rates"].rates)
    assert set(doc["statistics"]["bars"]) == set(BARS)
    md = report.markdown(doc, [])
    assert "## The bar for rap-adaptive" in md and f"**Bar: {t['met']} MET, {t['missed']} MISSED**" in md
    assert "| geo | closed | p95_ms <= 1.1x the best peer | " in md
    assert "**bar for rap-adaptive**: p50_ms <= 1x the best peer: " in md
    assert any(line.startswith(f"bar for rap-adaptive: {t['met']} MET, {t['missed']} MISSED")
               for line in report.screen(doc, tmp_path).splitlines())


def test_no_bar_where_its_policy_did_not_run(tmp_path):
    from tests.unit import test_bench_report as tr

    doc = tr._doc(tmp_path)  # round robin, rap and least-request only
    assert all("bar" not in st for sc in doc["scenarios"].values() for st in sc["steps"].values())
    assert doc["bar_tally"]["met"] == doc["bar_tally"]["missed"] == 0
    assert "## The bar for" not in report.markdown(doc, []) and "bar for" not in report.screen(doc, tmp_path)


@pytest.mark.parametrize("change, words", [
    (dict(policy="iptables"), "RAP variant"),
    (dict(policy="round-robin"), "RAP variant"),
    (dict(against="the moon"), "against"),
    (dict(conditions=()), "no conditions"),
    (dict(conditions=(Condition("p42", "<=", 1.0),)), "bad condition"),
    (dict(conditions=(Condition("p50_ms", "<", 1.0),)), "bad condition"),
])
def test_a_bad_bar_is_refused(change, words):
    with pytest.raises(ScenarioError, match=words):
        validate_bar(replace(BARS["best-peer"], **change))


def test_a_scenario_naming_an_unknown_bar_is_refused():
    with pytest.raises(ScenarioError, match="bar 'nope' is not one of"):
        validate(replace(SCENARIOS["geo"], bar="nope"))
    assert isinstance(BARS["best-peer"], Bar)
