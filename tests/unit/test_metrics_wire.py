"""rap.localcluster.metrics.wire: durations and times as apimachinery prints them; the objects' shape."""

from __future__ import annotations

import pytest

from rap.localcluster import metrics as m


@pytest.mark.parametrize("ns, text", [
    (0, "0s"), (5 * 10**9, "5s"), (10_034_216_000, "10.034216s"), (60 * 10**9, "1m0s"),
    (90_500_000_000, "1m30.5s"), (3600 * 10**9, "1h0m0s"), (1_500_000, "1.5ms"),
    (500, "500ns"), (1_500, "1.5µs"),
])
def test_window_is_a_go_duration(ns, text):
    assert m.go_duration(ns) == text


def test_timestamps_are_rfc3339_utc_seconds():
    assert m.rfc3339(0.9) == "1970-01-01T00:00:00Z"
    assert m.rfc3339(1_700_000_000.5) == "2023-11-14T22:13:20Z"


def test_node_and_pod_objects():
    u = m.Usage(timestamp=1_700_000_000.0, window_ns=2 * 10**9, nanocores=1_500_000_000, memory=1_000_000)
    node = m.single("NodeMetrics", m.node_metrics("node-1", u, 1_700_000_001.0))
    assert node == {"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                    "metadata": {"name": "node-1", "creationTimestamp": "2023-11-14T22:13:21Z"},
                    "timestamp": "2023-11-14T22:13:20Z", "window": "2s",
                    "usage": {"cpu": "1500m", "memory": "1000000"}}
    pod = m.pod_metrics(m.PodEntry("ns", "p", "node-1", "g/p"), u, 0)
    assert pod["metadata"] == {"name": "p", "namespace": "ns", "creationTimestamp": "1970-01-01T00:00:00Z"}
    assert pod["containers"] == [{"name": m.DEFAULT_CONTAINER, "usage": node["usage"]}]
