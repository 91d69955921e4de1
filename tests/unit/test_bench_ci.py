"""rap.bench.ci: the 95% intervals of ratios recover known ratios, cover them, and are reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from rap.bench import ci, stats
from tests.unit import bench_samples as fake


def _point(a, b, metric):
    med = lambda rs: stats.spread(r.measures[metric] for r in rs)["median"]  # noqa: E731
    return stats.ratio(med(a), med(b))


def test_the_bootstrap_percentile_is_stats_percentile_of_the_repeated_requests():
    rng = np.random.default_rng(1)
    o = stats.outcomes(fake.samples(rng, 57, 20.0), 8.0, 10.0, True)
    weights = np.array([[1] * stats.BLOCKS, [0, 3, 0, 2, 1, 0, 0, 4, 0, 0]])
    got = ci._percentiles(o, weights)
    repeated = [v for v, b in zip(o.latency_ms, o.block) for _ in range(weights[1][b])]
    for name, q in stats.PERCENTILES.items():
        assert got[name][0] == pytest.approx(stats.percentile(o.latency_ms.tolist(), q))
        assert got[name][1] == pytest.approx(stats.percentile(repeated, q))


@pytest.mark.parametrize("reps", [1, 3])  # 1: the bootstrap alone; 3: with the paired t
def test_a_known_ratio_is_recovered_and_covered(reps):
    rng = np.random.default_rng(7)
    a, b = fake.runs(rng, "geo", "rap", 10.0, reps=reps), fake.runs(rng, "geo", "haproxy", 20.0, reps=reps)
    for metric in ("p50_ms", "p95_ms"):
        point = _point(a, b, metric)
        lo, hi = ci.Intervals().ratio(a, b, metric, point)
        assert point == pytest.approx(0.5, rel=0.1)
        assert lo < 0.5 < hi and lo < point < hi
        assert hi - lo < 0.35  # informative, not everything


def test_closed_loop_throughput_gets_an_interval_though_no_request_failed():
    rng = np.random.default_rng(3)
    a, b = fake.runs(rng, "geo", "rap", 10.0, reps=1), fake.runs(rng, "geo", "iptables", 10.0, reps=1, n=200)
    point = _point(a, b, "throughput_rps")
    lo, hi = ci.Intervals().ratio(a, b, "throughput_rps", point)
    assert point == pytest.approx(2.0, rel=0.05) and lo < point < hi  # resampled time, not a fixed count


def _coverage(rep_noise: float, reps: int, trials: int = 40) -> float:
    rng = np.random.default_rng(11)
    hits = 0
    for t in range(trials):
        a = fake.runs(rng, f"s{t}", "rap", 10.0, reps=reps, n=200, rep_noise=rep_noise)
        b = fake.runs(rng, f"s{t}", "haproxy", 20.0, reps=reps, n=200, rep_noise=rep_noise)
        lo, hi = ci.Intervals(resamples=300).ratio(a, b, "p50_ms", _point(a, b, "p50_ms"))
        hits += lo <= 0.5 <= hi
    return hits / trials


def test_intervals_cover_the_true_ratio_within_runs():
    assert _coverage(rep_noise=0.0, reps=1) >= 0.85


def test_intervals_cover_the_true_ratio_when_runs_drift_apart():
    # each run's latency off by a factor of about ±15%: what a shared machine does between runs; a bootstrap
    # of the requests alone would cover far too rarely here
    assert _coverage(rep_noise=0.15, reps=3) >= 0.85


def test_paired_t_pairs_repetitions_by_number():
    class R:
        def __init__(self, rep, v):
            self.rep, self.measures = rep, {"p50_ms": v}

    lo, hi = ci.paired_t([R(1, 10), R(2, 20), R(3, 40)], [R(3, 80), R(1, 20), R(2, 40)], "p50_ms")
    assert lo == pytest.approx(0.5) and hi == pytest.approx(0.5)  # every pair is exactly 1:2
    assert ci.paired_t([R(1, 10)], [R(1, 20)], "p50_ms") is None
    assert ci.paired_t([R(1, 10), R(2, 10)], [R(1, 20), R(3, 20)], "p50_ms") is None  # one common rep


def test_runs_without_outcomes_use_the_repetitions_only():
    rng = np.random.default_rng(5)
    a, b = fake.runs(rng, "geo", "rap", 10.0), fake.runs(rng, "geo", "rr", 20.0)
    for r in a + b:
        r.outcomes = None
    point = _point(a, b, "p50_ms")
    t_lo, t_hi = ci.paired_t(a, b, "p50_ms")
    assert ci.Intervals().ratio(a, b, "p50_ms", point) == (min(t_lo, point), max(t_hi, point))
    assert ci.Intervals().ratio(a[:1], b[:1], "p50_ms", point) is None  # one rep, no requests: nothing to say
    assert ci.Intervals().ratio(a, b, "p50_ms", None) is None


def test_intervals_are_reproducible_and_independent_of_the_order_of_computation():
    rng = np.random.default_rng(9)
    a, b, c = (fake.runs(rng, "geo", p, m, reps=1) for p, m in (("rap", 10.0), ("haproxy", 12.0), ("iptables", 30.0)))
    point = _point(a, b, "p95_ms")
    first = ci.Intervals().ratio(a, b, "p95_ms", point)
    other = ci.Intervals()
    other.ratio(a, c, "p95_ms", _point(a, c, "p95_ms"))  # c's and a's replicates drawn first
    assert other.ratio(a, b, "p95_ms", point) == first
    assert ci.Intervals(seed=1).ratio(a, b, "p95_ms", point) != first


def test_an_interval_that_reaches_a_zero_denominator_is_unbounded_above():
    rng = np.random.default_rng(2)
    a = fake.runs(rng, "geo", "rap", 10.0, reps=1)
    data = fake.samples(rng, 50, 10.0)
    for d in data[1:]:
        d.update(status=0, error="TimeoutError")  # one answer in the whole step: most resamples miss it
    b = [fake.record("geo", "rr", 1, None, data)]
    point = _point(a, b, "throughput_rps")
    lo, hi = ci.Intervals().ratio(a, b, "throughput_rps", point)
    assert point == pytest.approx(400) and hi is None and lo > 1


def test_t_quantile():
    assert ci.t_quantile(2) == 4.303 and 1.96 < ci.t_quantile(60) < 2.01
    with pytest.raises(ValueError):
        ci.t_quantile(0)
