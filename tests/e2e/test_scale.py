"""``invoke scale --quick`` for real: the simulator's quick run, then a local cluster, 50 KWOK nodes with 20 pods
each, real RAP kube-proxies under both monitors.

The per-node monitor must cost each RAP node its four requests per period
(list Nodes, list running Pods, the pod and the node metrics), counted by
kube-apiserver's audit log of RAP's own users; the aggregated monitor must
stay at most 1 request/s per RAP node. Afterwards
nothing of the run is left. Needs root and the builds (KWOK is built on first
use). Run it alone, under the machine's cluster lock:

    flock /tmp/rap-cluster.lock python3 -m pytest -q -m e2e tests/e2e/test_scale.py -s
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e.clusters import need_root_and_builds

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NODE_MONITOR_REQUESTS = {"list core/nodes", "list core/pods", "list metrics.k8s.io/nodes", "list metrics.k8s.io/pods"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    need_root_and_builds(rap=True)
    root = tmp_path_factory.mktemp("scale") / "out"
    done = subprocess.run([sys.executable, "-m", "invoke", "scale", "--quick", "--out", str(root)],
                          capture_output=True, text=True, timeout=1800)
    print(done.stdout[-6000:], done.stderr[-3000:])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[scale] part 1/2" in done.stdout and "[scale] part 2/2" in done.stdout
    out = root / "kwok"
    return json.loads((out / "scale.json").read_text()), out


def test_the_simulator_ran_first_with_its_report_and_plots(quick):
    sim = quick[1].parent / "sim"
    assert "largest share of forwarded traffic" in (sim / "report.md").read_text()
    assert len(list(sim.glob("*.png"))) >= 2


def test_the_per_node_monitor_makes_its_four_requests_each_period(quick):
    doc, out = quick
    size = doc["sizes"][0]
    assert size["simulated_nodes"] == 50 and size["simulated_pods"] == 1000
    row = size["monitors"]["node"]
    assert 3.6 <= row["requests_per_period"] <= 4.4, row
    kinds = row["requests_by_kind_per_period"]
    assert set(kinds) == NODE_MONITOR_REQUESTS, kinds
    assert all(0.85 <= v <= 1.15 for v in kinds.values()), kinds
    # Lists of 50 nodes and 1,000 pods: tens of kB per period through the API and on the wire.
    assert row["apiserver_metrics"]["bytes_per_period"] > 50_000
    assert row["wire_bytes_per_period"] > row["apiserver_metrics"]["response_bytes_per_period"] * 0.5
    assert 0 < row["cpu_pct_max"] < 100 and 10 < row["rss_mb_max"] < 1000
    assert (out / "scale.md").read_text().count("| 50 (1,000) | RAP, per-node monitor |") == 1


def test_nothing_of_the_run_is_left(quick):
    from rap.localcluster import netns, procs, state

    assert netns.existing_namespaces() == []
    assert not state.runtime_dir().exists() or state.load(state.runtime_dir()) is None
    assert procs.marked(state.runtime_dir()) == []
    routes = subprocess.run(["ip", "route", "show"], capture_output=True, text=True).stdout
    assert "10.216." not in routes and "10.217." not in routes


def test_the_aggregated_monitor_costs_at_most_one_request_per_second(quick):
    doc, _ = quick
    row = doc["sizes"][0]["monitors"]["aggregator"]
    assert row["requests_per_s"] <= 1.0, row
    assert row["requests_per_s"] < doc["sizes"][0]["monitors"]["node"]["requests_per_s"]
    assert row["aggregator"]["requests_per_period"] >= 3, row["aggregator"]  # it does the listing instead


def test_the_bounded_view_reads_fewer_records_than_every_record(quick):
    # 5 Services over all 53 nodes: a view of 32 per Service port is 32 other nodes (the same ranking for every
    # Service) and its own, about 0.6 of every record's events; both windows run on one aggregator.
    doc, out = quick
    monitors = doc["sizes"][0]["monitors"]
    bounded, every = monitors["aggregator"], monitors["aggregator-all"]
    assert 0 < bounded["wire_bytes_per_period"] < every["wire_bytes_per_period"], (bounded, every)
    assert (out / "scale.md").read_text().count("the aggregator process") == 1  # one aggregator, one row
