"""rap.bench.stats: percentiles, run measures (failures at the timeout, closed-loop throughput), spread, ratios."""

from __future__ import annotations

import pytest

from rap.bench import stats


def _s(lat, status=200, node="node-1", client="node-1", start=0.0, error=""):
    return {"start": start, "latency_ms": lat, "status": status, "node": node, "client": client, "error": error}


def test_percentile_interpolates_between_ranks():
    assert stats.percentile([1, 2, 3, 4], 50) == 2.5
    assert stats.percentile([10], 99) == 10
    assert stats.percentile([3, 1, 2], 0) == 1 and stats.percentile([3, 1, 2], 100) == 3
    assert stats.percentile([], 50) is None
    with pytest.raises(ValueError):
        stats.percentile([1], 101)


def test_a_failed_request_counts_at_the_timeout_in_the_latency_and_apart():
    samples = [_s(10), _s(20), _s(30, node="node-2"), _s(4, status=0, node="", error="ConnectionRefusedError")]
    m = stats.run_measures(samples, duration_s=2, timeout_s=10)
    assert m["requests"] == 4 and m["ok"] == 3 and m["failed"] == 1
    assert m["throughput_rps"] == 1.5
    assert m["p50_ms"] == 25  # 10, 20, 30 and the failure at 10 000 ms
    assert m["p99_ms"] == pytest.approx(30 + (10_000 - 30) * 0.97)
    assert m["error_rate"] == 0.25
    assert m["local_share"] == pytest.approx(2 / 3)  # of the successful requests


def test_ten_percent_failures_move_p50_and_p95_to_where_the_timeout_puts_them():
    ok = [_s(float(i)) for i in range(1, 91)]
    bad = [_s(3.0, status=503) for _ in range(5)] + [_s(10_000.0, status=0, error="TimeoutError") for _ in range(5)]
    m = stats.run_measures(ok + bad, duration_s=10, timeout_s=2)
    # over the 90 successes alone p50 would be 45.5 and p95 85.55
    assert m["p50_ms"] == pytest.approx(50.5)
    assert m["p95_ms"] == 2000.0 and m["p99_ms"] == 2000.0
    assert m["failed"] == 10 and m["error_rate"] == 0.1
    assert stats.failures([m, m]) == {"count": 20, "requests": 200, "share": 0.1}


def test_non_2xx_and_an_error_with_a_status_are_failures():
    assert stats.failed(_s(1, status=503)) and stats.failed(_s(1, status=0))
    assert stats.failed(_s(1, status=200, error="IncompleteRead"))
    assert not stats.failed(_s(1, status=204)) and not stats.failed(_s(1, status=200))


def test_closed_loop_throughput_counts_only_answers_inside_the_step():
    inside = [_s(100, start=t / 10) for t in range(10)]  # answered by 1.0 s
    late = [_s(600, start=1.5), _s(2000, start=0.5)]  # answered at 2.1 s and 2.5 s, the step ends at 2 s
    edge = [_s(500, start=1.5)]  # answered exactly at the end: inside
    m = stats.run_measures(inside + late + edge, duration_s=2, timeout_s=10, closed=True)
    assert m["throughput_rps"] == 11 / 2 and m["late"] == 2
    assert m["p50_ms"] == 100  # late answers still count in the latency
    opened = stats.run_measures(inside + late + edge, duration_s=2, timeout_s=10, closed=False)
    assert opened["throughput_rps"] == 13 / 2 and opened["late"] == 0


def test_failed_requests_never_count_in_throughput():
    m = stats.run_measures([_s(1), _s(1, status=500)], duration_s=1, timeout_s=1, closed=True)
    assert m["throughput_rps"] == 1


def test_local_share_is_per_client():
    samples = [_s(1, node="node-2", client="node-2"), _s(1, node="node-1", client="node-2")]
    assert stats.run_measures(samples, 1, 10)["local_share"] == 0.5


def test_outcomes_put_each_request_in_its_time_block():
    o = stats.outcomes([_s(1, start=0.0), _s(1, start=0.99), _s(1, start=1.0), _s(1, start=5.0)], 2, 10, True)
    assert o.block.tolist() == [0, 4, 5, stats.BLOCKS - 1]  # a start past the end stays in the last block


def test_run_measures_empty_and_bad_input():
    m = stats.run_measures([], 1, 10)
    assert m["throughput_rps"] == 0 and m["p50_ms"] is None and m["error_rate"] is None and m["failed"] == 0
    with pytest.raises(ValueError):
        stats.run_measures([], 0, 10)
    with pytest.raises(ValueError):
        stats.run_measures([], 1, 0)


def test_failures_of_runs_without_a_failed_count_come_from_their_error_rate():
    assert stats.failures([{"requests": 10, "error_rate": 0.2}]) == {"count": 2, "requests": 10, "share": 0.2}
    assert stats.failures([]) == {"count": 0, "requests": 0, "share": None}


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
