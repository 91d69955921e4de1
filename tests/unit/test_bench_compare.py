"""rap.bench.compare: the best peer metric by metric, RAP variants, verdict words, missing peers."""

from __future__ import annotations

import numpy as np
import pytest

from rap.bench import compare, stats
from rap.bench.ci import Intervals
from rap.bench.runner import RunRecord
from tests.unit import bench_samples as fake


def _m(tput, p50, p95):
    return {"requests": 100, "ok": 100, "failed": 0, "throughput_rps": tput, "p50_ms": p50, "p95_ms": p95,
            "p99_ms": p95, "error_rate": 0.0, "local_share": 0.5}


# In closed loop a policy can buy a low p50 with a long tail and little throughput: three different winners.
MEASURED = {"round-robin": (50, 150, 300), "rap": (140, 40, 90), "rap-5s": (120, 45, 100),
            "haproxy": (100, 20, 900), "iptables": (80, 30, 60), "least-request": (200, 35, 70),
            "local-only": (90, 50, 95)}


def _step(policies=tuple(MEASURED), reps=3):
    runs = {p: [RunRecord("geo", p, r, None, 0, 0.0, _m(*MEASURED[p])) for r in range(1, reps + 1)]
            for p in policies}
    per_policy = {p: {"runs": reps, **stats.summarize([r.measures for r in rs])} for p, rs in runs.items()}
    return compare.step(per_policy, runs, list(policies), Intervals())


def test_the_best_peer_is_chosen_metric_by_metric_and_can_be_three_peers():
    best = _step()["best_peer"]
    assert best == {"p50_ms": {"policy": "haproxy", "value": 20}, "p95_ms": {"policy": "iptables", "value": 60},
                    "throughput_rps": {"policy": "least-request", "value": 200},
                    "error_rate": {"policy": "iptables", "value": 0.0}}  # no peer failed: the first listed


def test_every_policy_but_the_baseline_and_the_peers_is_a_rap_variant():
    assert compare.rap_variants(list(MEASURED)) == ["rap", "rap-5s"]
    against = _step()["vs_best_peer"]
    assert set(against) == {"rap", "rap-5s"}
    assert against["rap"]["p50_ms"]["peer"] == "haproxy" and against["rap"]["p50_ms"]["ratio"] == 2.0
    assert against["rap-5s"]["throughput_rps"]["ratio"] == pytest.approx(0.6)
    assert against["rap"]["p95_ms"]["ratio"] == pytest.approx(1.5)


def test_every_policy_is_compared_with_round_robin_with_an_interval():
    step = _step()
    assert set(step["ratios"]) == {f"{p}/round-robin" for p in MEASURED if p != "round-robin"}
    assert step["ratios"]["rap/round-robin"]["p50_ms"] == pytest.approx(40 / 150)
    # equal repetitions and no requests to resample: the interval is the point
    assert step["ratios_ci95"]["rap/round-robin"]["p50_ms"] == pytest.approx([40 / 150, 40 / 150])


@pytest.mark.parametrize("ci, metric, word", [
    ((0.4, 0.9), "p50_ms", "WIN"), ((1.1, 1.3), "p50_ms", "LOSS"), ((0.9, 1.1), "p95_ms", "TIE"),
    ((1.1, 1.3), "throughput_rps", "WIN"), ((0.5, 0.8), "throughput_rps", "LOSS"),
    ((1.0, 1.2), "throughput_rps", "TIE"), ((1.2, None), "throughput_rps", "WIN"), ((0.5, None), "p50_ms", "TIE"),
    (None, "p50_ms", None)])
def test_verdict_words(ci, metric, word):
    assert compare.verdict(ci, metric) == word


def test_missing_peers_give_no_best_peer_and_no_comparison():
    step = _step(("round-robin", "rap"))
    assert step["best_peer"] == {} and step["vs_best_peer"] == {"rap": {}}
    assert set(step["ratios"]) == {"rap/round-robin"}
    some = _step(("rap", "iptables"))  # no baseline, one peer: it is the best of every metric
    assert some["ratios"] == {} and {b["policy"] for b in some["best_peer"].values()} == {"iptables"}
    assert _step(("round-robin", "haproxy"))["vs_best_peer"] == {}  # no RAP ran


def test_verdicts_from_runs_with_requests_win_loss_and_tie():
    rng = np.random.default_rng(4)
    runs = {"rap": fake.runs(rng, "geo", "rap", 10.0, n=400),  # half the p50 of the best p50 peer
            "haproxy": fake.runs(rng, "geo", "haproxy", 20.0, n=800),  # twice the throughput
            "iptables": fake.runs(rng, "geo", "iptables", 30.0, n=300, sigma=0.1)}  # a tight tail
    per_policy = {p: {"runs": 3, **stats.summarize([r.measures for r in rs])} for p, rs in runs.items()}
    against = compare.step(per_policy, runs, list(runs), Intervals())["vs_best_peer"]["rap"]
    assert against["p50_ms"]["peer"] == "haproxy" and against["p50_ms"]["verdict"] == "WIN"
    assert against["throughput_rps"]["peer"] == "haproxy" and against["throughput_rps"]["verdict"] == "LOSS"
    assert against["p95_ms"]["peer"] == "iptables"  # 30 ms * e^0.16 ~ 35 ms against rap's 10 ms * e^0.82 ~ 23 ms
    assert against["p95_ms"]["verdict"] == "WIN"
    lo, hi = against["p50_ms"]["ci95"]
    assert lo < against["p50_ms"]["ratio"] < hi < 1


def test_tally_counts_the_words_per_variant():
    doc = {"scenarios": {"geo": {"steps": {"closed": _step()}}}}
    counts = compare.tally(doc)
    assert set(counts) == {"rap", "rap-5s"} and sum(counts["rap"].values()) == 3
    assert counts["rap"]["LOSS"] == 3  # equal repetitions without requests: the intervals are the points


def test_errors_are_compared_with_the_peer_that_failed_fewest():
    rng = np.random.default_rng(7)
    runs = {"rap": fake.runs(rng, "geo", "rap", 10.0, n=400, fail_share=0.2),
            "haproxy": fake.runs(rng, "geo", "haproxy", 10.0, n=400, fail_share=0.05),
            "iptables": fake.runs(rng, "geo", "iptables", 10.0, n=400, fail_share=0.1)}
    per_policy = {p: {"runs": 3, **stats.summarize([r.measures for r in rs])} for p, rs in runs.items()}
    step = compare.step(per_policy, runs, list(runs), Intervals())
    assert step["best_peer"]["error_rate"] == {"policy": "haproxy", "value": pytest.approx(0.05)}
    errors = step["vs_best_peer"]["rap"]["error_rate"]
    assert errors["ratio"] == pytest.approx(4.0) and errors["verdict"] == "LOSS"  # fewer is better
    lo, hi = errors["ci95"]
    assert 1 < lo < 4 < hi


def test_no_failed_request_anywhere_gives_no_errors_ratio_and_no_verdict():
    against = _step()["vs_best_peer"]["rap"]["error_rate"]
    assert against["value"] == against["peer_value"] == 0.0
    assert against["ratio"] is None and against["verdict"] is None


def test_classic_rap_is_a_peer_of_the_adaptive_mode_only():
    measured = {**MEASURED, "rap-adaptive": (150, 30, 80), "rap": (300, 15, 50)}  # rap best on everything
    runs = {p: [RunRecord("geo", p, r, None, 0, 0.0, _m(*measured[p])) for r in (1, 2, 3)] for p in measured}
    per_policy = {p: {"runs": 3, **stats.summarize([r.measures for r in rs])} for p, rs in runs.items()}
    step = compare.step(per_policy, runs, list(measured), Intervals())
    adaptive, classic = step["vs_best_peer"]["rap-adaptive"], step["vs_best_peer"]["rap"]
    assert {m: c["peer"] for m, c in adaptive.items() if m != "error_rate"} == dict.fromkeys(
        ("p50_ms", "p95_ms", "throughput_rps"), "rap")
    others = [*classic.values(), *step["vs_best_peer"]["rap-5s"].values()]
    assert "rap" not in {c["peer"] for c in others}
    assert "rap" not in {b["policy"] for b in step["best_peer"].values()}
