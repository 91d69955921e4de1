"""rap.bench.stats: percentiles, run measures, spread over repetitions, ratios."""

from __future__ import annotations

import pytest

from rap.bench import stats


def _s(lat, status=200, node="node-1", client="node-1"):
    return {"latency_ms": lat, "status": status, "node": node, "client": client}


def test_percentile_interpolates_between_ranks():
    assert stats.percentile([1, 2, 3, 4], 50) == 2.5
    assert stats.percentile([10], 99) == 10
    assert stats.percentile([3, 1, 2], 0) == 1 and stats.percentile([3, 1, 2], 100) == 3
    assert stats.percentile([], 50) is None
    with pytest.raises(ValueError):
        stats.percentile([1], 101)


def test_run_measures_counts_only_successes_in_throughput_and_latency():
    samples = [_s(10), _s(20), _s(30, node="node-2"), _s(5000, status=0, node="")]
    m = stats.run_measures(samples, duration_s=2)
    assert m["requests"] == 4 and m["ok"] == 3
    assert m["throughput_rps"] == 1.5
    assert m["p50_ms"] == 20
    assert m["error_rate"] == 0.25
    assert m["local_share"] == pytest.approx(2 / 3)


def test_local_share_is_per_client():
    samples = [_s(1, node="node-2", client="node-2"), _s(1, node="node-1", client="node-2")]
    assert stats.run_measures(samples, 1)["local_share"] == 0.5


def test_run_measures_empty_and_bad_duration():
    m = stats.run_measures([], 1)
    assert m["throughput_rps"] == 0 and m["p50_ms"] is None and m["error_rate"] is None
    with pytest.raises(ValueError):
        stats.run_measures([], 0)


def test_spread_median_min_max_quartiles_and_missing_values():
    sp = stats.spread([3, 1, None, 2])
    assert sp == {"median": 2, "min": 1, "max": 3, "q1": 1.5, "q3": 2.5, "n": 3}
    assert stats.spread([None])["median"] is None


def test_ratios_of_medians():
    rap = stats.summarize([{"throughput_rps": 150, "p50_ms": 10, "p95_ms": 20, "p99_ms": 30,
                            "error_rate": 0, "local_share": 1.0}])
    rr = stats.summarize([{"throughput_rps": 100, "p50_ms": 40, "p95_ms": 40, "p99_ms": 0,
                           "error_rate": 0, "local_share": 0.33}])
    r = stats.ratios(rap, rr)
    assert r["throughput_rps"] == 1.5 and r["p50_ms"] == 0.25 and r["p95_ms"] == 0.5
    assert r["p99_ms"] is None  # division by zero is "not measured", not an error
    assert "error_rate" not in r
