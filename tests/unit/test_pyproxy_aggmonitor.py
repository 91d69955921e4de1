"""rap.pyproxy.aggmonitor: the Python proxy's reader of rap.aggregator's objects."""

from __future__ import annotations

import json

import pytest

from rap.config import RapConfig
from rap.policies import Endpoint, make_policy
from rap.pyproxy import aggmonitor
from rap.pyproxy.aggmonitor import AggregatedMonitor, RecordError, parse_load, probe_order

WALL = 1_800_000_000.0  # 2027-01-15T08:00:00Z
TS = "2027-01-15T08:00:00Z"


def load(node: str, ip: str = "", cpu=None, mem=None, pods=None) -> dict:
    rec = {"name": node, "ip": ip}
    if cpu is not None:
        rec.update(cpu=cpu, mem=mem)
    return {"node": json.dumps(rec), "pods": json.dumps(pods or {})}


def test_a_record_gives_node_ip_usage_and_the_usable_pod_samples():
    node, ip, usage, pods = parse_load("rap-load-node-2", load(
        "node-2", "10.0.0.2", 0.5, 0.25, {"10.1.0.5": {"cpu": 0.9, "mem": 0.1}, "10.1.0.6": {"cpu": -1, "mem": 0},
                                          "10.1.0.7": {"cpu": True, "mem": 0}}))
    assert (node, ip, usage) == ("node-2", "10.0.0.2", (0.5, 0.25))
    assert pods == {"10.1.0.5": (0.9, 0.1)}
    assert parse_load("rap-load-node-3", load("node-3", "10.0.0.3"))[2] is None


@pytest.mark.parametrize("data", [{"node": "{broken"}, {"node": json.dumps({"ip": "1.2.3.4"})},
                                  {"node": json.dumps({"name": "x"}), "pods": "[1]"}, None])
def test_an_unreadable_record_is_one_error_naming_the_configmap(data):
    with pytest.raises(RecordError, match=r"^ConfigMap kube-system/rap-load-x: "):
        parse_load("rap-load-x", data)


def test_probe_order_puts_endpoint_hosts_first_then_the_longest_unmeasured():
    nodes = {n: f"10.0.0.{i}" for i, n in enumerate(["node-2", "node-3", "node-4", "node-5"], 2)}
    assert probe_order(nodes, {"node-5"}, {"node-2": 50.0, "node-3": 10.0}, 3) == ["node-5", "node-4", "node-3"]
    assert probe_order(nodes, set(), {}, 1) == ["node-2"]


class Fetched(AggregatedMonitor):
    """The monitor with the API replaced by what the test publishes."""

    def __init__(self, **kw) -> None:
        self.now = 100.0
        policy = make_policy("rap", local_node="node-1", config=RapConfig(period_s=1.0))
        super().__init__(None, policy, "node-1", 1.0, rtt_port=1, rtt_probes=2,
                         clock=lambda: self.now, wall=lambda: WALL + self.now - 100.0, **kw)
        self.maps = [("rap-load-node-2", "1", load("node-2", "", 0.5, 0.25, {"10.1.0.5": {"cpu": 0.9, "mem": 0.1}}))]
        self.lease = {aggmonitor.METRICS_TIME: TS}

    def fetch(self):
        if isinstance(self.maps, Exception):
            raise self.maps
        return self.maps, self.lease


def test_samples_are_stamped_with_the_heartbeat_and_reach_the_policy():
    m = Fetched()
    snap = m.refresh()
    assert snap.pods["10.1.0.5"].cpu == 0.9 and snap.pods["10.1.0.5"].at == 100.0
    assert snap.nodes["node-2"].mem == 0.25
    assert "10.1.0.5" in snap.hot_pods  # went through the policy's update_snapshot
    assert m.policy._snapshot is snap


def test_everything_goes_stale_together_when_the_heartbeat_stops(caplog):
    m = Fetched()
    m.refresh()
    m.now = 103.5  # stale_after_s is 3 x 1 s; the Lease still says TS
    snap = m.refresh()
    assert not snap.pods and not snap.nodes
    assert "cannot read resource metrics" in caplog.text
    m.lease = None
    assert not m.refresh().pods


def test_an_api_failure_is_blind_not_a_crash():
    m = Fetched()
    m.refresh()
    m.maps = ConnectionError("refused")
    snap = m.refresh()
    assert not snap.pods and not snap.nodes


def test_rtts_go_to_endpoint_hosts_first_and_at_most_rtt_probes(monkeypatch):
    m = Fetched()
    m.maps = [(f"rap-load-node-{i}", "1", load(f"node-{i}", f"10.0.0.{i}", 0.1, 0.1)) for i in range(1, 6)]
    m.policy.set_endpoints("svc", [Endpoint("10.1.0.9", 80, "node-4")])
    dialled = []
    monkeypatch.setattr(aggmonitor, "probe_rtt_ms", lambda ip, port, timeout: dialled.append(ip) or 1.0)
    snap = m.refresh()
    assert dialled[0] == "10.0.0.4" and len(dialled) == 2 and "10.0.0.1" not in dialled
    assert set(snap.rtt) == {"node-4", "node-2"}
