"""rap.sim.report: forwarded shares, fair share, settle time and percentiles, on samples with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from rap.bench import stats
from rap.sim import report
from rap.sim.model import Samples

NODES = tuple(f"node-{i + 1}" for i in range(5))


def _samples(rows) -> Samples:
    s = Samples()
    for client, server, start, latency in rows:
        s.add(client, server, start, latency, server >= 0)
    return s.freeze()


def test_forwarded_share_and_fair_share_known_answer():
    # node-1 forwards 6 requests: 3 to node-2, 2 to node-3, 1 to node-4; 4 served locally; one failed
    rows = [(0, 0, t, 5.0) for t in range(4)] + [(0, 1, 4, 9.0)] * 3 + [(0, 2, 5, 9.0)] * 2 + [(0, 3, 6, 9.0)]
    rows.append((0, -1, 7, 10_000.0))
    pods = {"svc": {0, 1, 2, 3, 4}}
    spread = report.forwarded_spread(_samples(rows), NODES, pods, {0: "svc"})
    assert spread["forwarded"] == 6
    assert spread["forwarded_share"] == pytest.approx(6 / 10)
    assert spread["eligible_nodes"] == 4  # node-2..node-5: node-1 cannot receive its own
    assert spread["fair_share"] == pytest.approx(0.25)
    assert spread["max_node"] == "node-2"
    assert spread["max_share"] == pytest.approx(0.5)
    assert spread["max_over_fair"] == pytest.approx(2.0)
    assert spread["receivers"] == 3
    assert sorted(spread["shares"]) == pytest.approx([0, 1 / 6, 2 / 6, 3 / 6])


def test_an_even_spread_is_one_fair_share_and_two_sources_can_receive_each_others():
    pods = {"a": {0, 1, 2}}
    rows = [(0, 1, 0, 1.0), (0, 2, 0, 1.0), (1, 0, 0, 1.0), (1, 2, 0, 1.0)]
    spread = report.forwarded_spread(_samples(rows), NODES, pods, {0: "a", 1: "a"})
    assert spread["eligible_nodes"] == 3
    assert spread["max_over_fair"] == pytest.approx(1.5)  # node-3 got half: 1.5 x 1/3
    rows = [(0, 1, 0, 1.0), (0, 2, 0, 1.0), (1, 0, 0, 1.0), (1, 2, 0, 1.0), (0, 1, 0, 1.0), (1, 0, 0, 1.0)]
    assert report.forwarded_spread(_samples(rows), NODES, pods, {0: "a", 1: "a"})["max_over_fair"] == \
        pytest.approx(1.0)


def test_no_forwarded_traffic_has_no_share():
    spread = report.forwarded_spread(_samples([(0, 0, 0, 1.0)]), NODES, {"a": {0, 1}}, {0: "a"})
    assert spread["forwarded"] == 0 and spread["max_over_fair"] is None


def test_settle_time_is_where_every_later_window_stays_in_the_band():
    # step at 10 s, run to 30 s: 4 s of 500 ms latencies, then 20 ms; one spike at 7 s after the step
    rows = []
    for k in range(2000):
        t = 10 + k * 0.01
        late = t < 14 or 17 <= t < 18
        rows.append((0, 0, t, 500.0 if late else 20.0))
    out = report.settle(_samples(rows), 10.0, 30.0)
    assert out["reference_p95_ms"] == pytest.approx(20.0)
    assert out["settle_s"] == pytest.approx(8.0)


def test_a_run_that_ends_outside_the_band_did_not_settle():
    rows = [(0, 0, 10 + k * 0.01, 20.0 if k < 1980 else 900.0) for k in range(2000)]
    # the reference (p95 of the last quarter) is 20 ms; the last window's p95 is 900 ms
    out = report.settle(_samples(rows), 10.0, 30.0)
    assert out["settle_s"] is None


def test_percentile_is_the_benchs():
    xs = np.random.default_rng(0).exponential(10, 999)
    for q in (50, 95, 99):
        assert report.percentile(xs, q) == pytest.approx(stats.percentile(list(xs), q))
    assert report.percentile(np.array([]), 50) is None
