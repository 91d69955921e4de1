"""rap.pyproxy.aggmonitor: the Python proxy's reader of rap.aggregator's objects."""

from __future__ import annotations

import json

import pytest

from rap.config import RapConfig
from rap.policies import Endpoint, make_policy
from rap.pyproxy import aggmonitor
from rap.pyproxy.aggmonitor import (AggregatedMonitor, Record, RecordError, heartbeat_timestamp, parse_load,
                                    probe_order, published_samples, read_records)
from rap.pyproxy.monitor import Stamps

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


NODE_2 = json.dumps({"name": "node-2", "ip": "10.0.0.2", "cpu": 0.5, "mem": 0.25})


# The rules rap.go's parseRAPLoad keeps too (TestRAPAggParseLoadAgreesWithThePythonReader); each case was a
# disagreement between the two readers.
@pytest.mark.parametrize("name, node, pods", [
    ("rap-load-node-3", NODE_2, "{}"),  # a record under another node's name
    ("rap-load-node-2", NODE_2, "null"),  # pods is not an object
    ("rap-load-5", '{"name": 5}', "{}"),  # a name that is not a string
    ("rap-load-node-2", '{"name": "node-2", "cpu": NaN, "mem": 0}', "{}"),  # NaN is not JSON
    ("rap-load-node-2", '{"name": "node-2", "cpu": Infinity, "mem": 0}', "{}"),
])
def test_records_rap_go_cannot_read_are_unreadable_here_too(name, node, pods):
    with pytest.raises(RecordError, match=f"ConfigMap kube-system/{name}: "):
        parse_load(name, {"node": node, "pods": pods})


@pytest.mark.parametrize("node, pods, usage, pod_ips, ip", [
    # a cpu that is a string: no node usage, the record stands
    ('{"name": "node-2", "ip": "10.0.0.2", "cpu": "0.5", "mem": 0.25}', '{"10.1.2.3": {"cpu": 0.1, "mem": 0.1}}',
     None, ["10.1.2.3"], "10.0.0.2"),
    # beyond a double: out of range, not unreadable (and not an integer past Python's digit limit)
    ('{"name": "node-2", "cpu": 1e400, "mem": 0.25}', '{"10.1.2.3": {"cpu": 1' + "0" * 5000 + ', "mem": 0.1}, '
     '"10.1.2.4": {"cpu": 0.1, "mem": 0.1}}', None, ["10.1.2.4"], ""),
    # fields by their exact names only
    ('{"name": "node-2", "CPU": 0.5, "Mem": 0.25}', '{"10.1.2.3": {"CPU": 0.9, "mem": 0.1}}', None, [], ""),
    # a pod without mem, one that is not an object, one with a boolean, one whose key is not an IP
    (NODE_2, '{"10.1.2.3": {"cpu": 0.9}, "10.1.2.4": 5, "10.1.2.5": {"cpu": true, "mem": 0}, '
     '"pod-x": {"cpu": 0, "mem": 0}, "fe80::1%eth0": {"cpu": 0, "mem": 0}, "10.1.2.6": {"cpu": 0, "mem": 0}}',
     (0.5, 0.25), ["10.1.2.6"], "10.0.0.2"),
    ('{"name": "node-2", "ip": 7}', "", None, [], ""),  # an ip that is not a string: no IP
])
def test_what_is_not_a_usable_sample_is_left_out_of_a_readable_record(node, pods, usage, pod_ips, ip):
    rec = parse_load("rap-load-node-2", {"node": node, "pods": pods})
    assert (rec.usage, sorted(rec.pods), rec.ip) == (usage, pod_ips, ip)


def test_a_record_nested_past_the_recursion_limit_is_unreadable_not_a_crash():
    with pytest.raises(RecordError):
        parse_load("rap-load-x", {"node": '{"name": "x", "deep": ' + "[" * 100_000})


def test_read_records_keeps_the_readable_ones_and_says_why_not_the_others():
    records, bad = read_records([("rap-load-node-2", {"node": NODE_2}), ("rap-load-node-3", {"node": "{broken"})])
    assert [r.node for r in records] == ["node-2"] and list(bad) == ["rap-load-node-3"]


@pytest.mark.parametrize("raw, ok", [
    ("2027-01-15T08:00:00Z", True), ("2027-01-15T08:00:00.123456789+01:00", True), ("2027-01-15T08:00:00-00:00", True),
    ("2027-01-15 08:00:00Z", False), ("2027-01-15T8:00:00Z", False), ("2027-01-15T08:00:00,5Z", False),
    ("2027-01-15T08:00:00+24:00", False), ("2027-01-15t08:00:00z", False), ("2027-01-15T08:00:00", False),
    ("20270115T080000Z", False), ("2027-02-30T08:00:00Z", False), ("", False),
])
def test_the_heartbeat_is_rfc3339_as_rap_go_reads_it(raw, ok):  # TestRAPAggHeartbeatIsRFC3339Only
    assert (heartbeat_timestamp({aggmonitor.METRICS_TIME: raw}) is not None) == ok


def test_a_pod_ip_in_two_records_has_no_sample_whatever_their_order():
    a = Record("node-2", "", None, {"10.1.2.3": (0.9, 0.1), "10.1.2.4": (0.2, 0.1)})
    b = Record("node-3", "", (0.5, 0.5), {"10.1.2.3": (0.1, 0.1)})
    for records in ([a, b], [b, a]):
        pods, nodes, error = published_samples(records, TS, Stamps(), 100.0, WALL + 1, 3.0)
        assert error is None and set(pods) == {"10.1.2.4"} and pods["10.1.2.4"].at == 99.0
        assert set(nodes) == {"node-3"}


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


def test_a_stopped_heartbeat_ahead_of_the_clock_stays_stale():
    m = Fetched()
    m.lease = {aggmonitor.METRICS_TIME: "2027-01-15T08:01:00Z"}  # a minute ahead of the wall clock: measured now
    assert m.refresh().pods
    for now in (103.5, 104.5, 110.0):  # never renewed: stale after 3 s, and stays so
        m.now = now
        assert not m.refresh().pods, now


# ---- the bounded view ----

SERVICE = [["node-a", "node-b", "node-c", "node-d", "node-b", ""]]


def test_the_view_takes_the_highest_ranked_nodes_per_service_whatever_the_order():
    # sha256("node-a\0node-c") ranks highest (the vector aggregated-bounded-view-reads-only-watched-records)
    assert aggmonitor.watched_nodes("node-a", SERVICE, 1) == {"node-a", "node-c"}
    assert aggmonitor.watched_nodes("node-a", [list(reversed(SERVICE[0]))], 1) == {"node-a", "node-c"}
    assert aggmonitor.watched_nodes("node-a", SERVICE, 5) == {"node-a", "node-b", "node-c", "node-d"}
    assert aggmonitor.watched_nodes("node-a", SERVICE, 0) is None
    assert len(aggmonitor.watched_nodes("node-a", [["node-b", "node-c"], ["node-d", "node-e"]], 1)) == 3


def test_the_selector_names_the_watched_nodes_by_their_ids():
    assert aggmonitor.label_selector(None) == "rap.io/load=true"
    # rap.go's TestRAPWatchedNodesPicksTheSameNodesWhateverTheOrder holds the same text
    assert (aggmonitor.label_selector(frozenset({"node-c", "node-a"}))
            == "rap.io/load=true,rap.io/node-id in (092cd5e29db96478,66570ff05a207404)")
    many = frozenset(f"node-{i}" for i in range(aggmonitor.MAX_SELECTED + 1))
    assert aggmonitor.label_selector(many) == "rap.io/load=true"  # too long a URL: every record, filtered here


def test_only_watched_records_reach_the_snapshot_and_its_watched_nodes():
    m = Fetched(view_nodes=1)
    m.local_node = m.policy.local_node = "node-a"
    m.maps = [(f"rap-load-{n}", "1", load(n, f"10.0.0.{i}", 0.1, 0.1, {f"10.1.{i}.1": {"cpu": 0.1, "mem": 0.1}}))
              for i, n in enumerate(["node-a", "node-b", "node-c", "node-d"], 1)]
    m.policy.set_endpoints("svc", [Endpoint(f"10.1.{i}.1", 80, n)
                                   for i, n in enumerate(["node-a", "node-b", "node-c", "node-d"], 1)])
    snap = m.refresh()
    assert set(snap.pods) == {"10.1.1.1", "10.1.3.1"} and snap.watched == {"node-a", "node-c"}
    assert m._watched == {"node-a", "node-c"}  # what fetch lists with


def test_without_a_bound_every_record_is_read_and_nothing_is_unwatched():
    m = Fetched()
    snap = m.refresh()
    assert snap.watched is None and not snap.unwatched("node-9", "node-1")
