"""rap.aggregator.usage: the per-node records, with rap.go's maths and its monitor tests' cases.

The cluster below is rap_patch/rap_monitor_test.go's (rapTestMonitor): the same pods, nodes and metrics
give the same fractions here, grouped by node and rounded to 0.01.
"""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from rap.aggregator.usage import Load, NodeRecord, node_info, pod_info, pod_key, records
from rap.pyproxy.monitor import node_usage_by_name, pod_usage_by_ip

TS = "2026-01-01T00:00:00Z"


def node(name, ip, cpu, mem):
    addresses = [{"type": "Hostname", "address": name}] + ([{"type": "InternalIP", "address": ip}] if ip else [])
    return {"metadata": {"name": name}, "status": {"addresses": addresses, "allocatable": {"cpu": cpu, "memory": mem}}}


def res(cpu=None, mem=None):
    return {k: v for k, v in (("cpu", cpu), ("memory", mem)) if v is not None}


def pod(name, ip, on, *containers, host_network=False, phase="Running", ips=None):
    return {"metadata": {"namespace": "default", "name": name},
            "spec": {"nodeName": on, "hostNetwork": host_network,
                     "containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(containers)]},
            "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": i} for i in (ips or [ip])]}}


def pod_item(name, *usages, ts=TS):
    return {"metadata": {"namespace": "default", "name": name}, "timestamp": ts,
            "containers": [{"name": f"c{i}", "usage": u} for i, u in enumerate(usages)]}


def node_item(name, cpu, mem, ts=TS):
    return {"metadata": {"name": name}, "timestamp": ts, "usage": {"cpu": cpu, "memory": mem}}


NODES = [node("node-a", "127.0.0.1", "2", "4Gi"), node("node-b", "127.0.0.1", "1", "4Gi"), node("node-c", "", "4", "8Gi")]
PODS = [
    pod("limited", "10.0.1.1", "node-a", {"limits": res("500m", "128Mi")}, {"limits": res("300m", "128Mi")}),
    pod("requested", "10.0.2.1", "node-b", {"requests": res("1", "100Mi")}),
    pod("cpuonly", "10.0.2.2", "node-b", {"limits": res("100m")}),
    pod("unbounded", "10.0.3.1", "node-c", {}),
    pod("hostnet", "192.168.0.2", "node-a", {"limits": res("1", "1Gi")}, host_network=True),
]
POD_METRICS = {"items": [
    pod_item("limited", res("300m", "64Mi"), res("100m", "64Mi")),
    pod_item("requested", res("900m", "10Mi")),
    pod_item("cpuonly", res("50m", "900Mi")),
    pod_item("unbounded", res("5", "1Gi")),
    pod_item("hostnet", res("1", "1Gi")),
    pod_item("gone", res("1", "1Gi")),
]}
NODE_METRICS = {"items": [node_item("node-a", "1500m", "1Gi"), node_item("node-b", "250m", "3Gi"),
                          node_item("node-x", "1", "1Gi")]}


def round_of(nodes=NODES, pods=PODS, pod_metrics=POD_METRICS, node_metrics=NODE_METRICS):
    infos = {pod_key(p): i for p in pods if (i := pod_info(p)) is not None}
    return records({n["metadata"]["name"]: node_info(n) for n in nodes}, infos, pod_metrics, node_metrics)


def test_the_go_monitors_cases_give_its_fractions_grouped_by_node():
    r = round_of()
    assert r.records == {
        # 400m of 800m, 128Mi of 256Mi; 1500m of 2, 1Gi of 4Gi. The host-network pod is not published.
        "node-a": NodeRecord("node-a", "127.0.0.1", Load(0.75, 0.25), {"10.0.1.1": Load(0.5, 0.5)}),
        # requests stand in for missing limits; no memory bound: unknown counts 0
        "node-b": NodeRecord("node-b", "127.0.0.1", Load(0.25, 0.75),
                             {"10.0.2.1": Load(0.9, 0.1), "10.0.2.2": Load(0.5, 0.0)}),
        # neither limit nor request: no entry; no metrics for the node: no sample; no InternalIP: ip ""
        "node-c": NodeRecord("node-c", "", None, {}),
    }
    assert r.newest == datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_a_pod_is_published_under_every_ip():
    pods = [pod("dual", "10.0.1.1", "node-a", {"limits": res("1", "1Gi")}, ips=["10.0.1.1", "fd00::1"])]
    r = round_of(pods=pods, pod_metrics={"items": [pod_item("dual", res("250m", "512Mi"))]})
    assert r.records["node-a"].pods == {"10.0.1.1": Load(0.25, 0.5), "fd00::1": Load(0.25, 0.5)}


def test_a_container_without_limit_or_request_makes_that_resource_unknown():
    pods = [pod("half", "10.0.1.1", "node-a", {"limits": res("1", "1Gi")}, {"limits": res(mem="1Gi")})]
    r = round_of(pods=pods, pod_metrics={"items": [pod_item("half", res("1", "1Gi"), res("1", "1Gi"))]})
    assert r.records["node-a"].pods == {"10.0.1.1": Load(0.0, 1.0)}


def test_pods_not_running_without_ip_or_node_get_no_entry():
    assert pod_info(pod("p", "10.0.1.1", "node-a", {"limits": res("1")}, phase="Pending")) is None
    assert pod_info(pod("p", "", "node-a", {"limits": res("1")}, ips=[])) is None
    assert pod_info(pod("p", "10.0.1.1", "", {"limits": res("1")})) is None


def test_a_pod_on_a_node_not_listed_is_left_out():
    pods = [pod("stray", "10.0.9.1", "node-z", {"limits": res("1", "1Gi")})]
    r = round_of(pods=pods, pod_metrics={"items": [pod_item("stray", res("1", "1Gi"))]})
    assert all(not rec.pods for rec in r.records.values()) and "node-z" not in r.records


def test_a_node_without_allocatable_gets_no_sample_and_unreadable_quantities_count_zero():
    nodes = [node("node-a", "10.0.0.1", "0", "4Gi"), node("node-b", "10.0.0.2", "2", "4Gi")]
    r = round_of(nodes=nodes, pods=[], pod_metrics={"items": []},
                 node_metrics={"items": [node_item("node-a", "1", "1Gi"), node_item("node-b", "-1", "junk")]})
    assert r.records["node-a"].node is None and r.records["node-b"].node == Load(0.0, 0.0)


def test_fractions_are_rounded_to_a_hundredth_and_the_newest_timestamp_wins():
    pods = [pod("p", "10.0.1.1", "node-a", {"limits": res("3", "3Gi")})]
    r = round_of(pods=pods, pod_metrics={"items": [pod_item("p", res("1", "2Gi"), ts="2026-01-01T00:00:05Z")]},
                 node_metrics={"items": [node_item("node-a", "1", "1Gi", ts="2026-01-01T00:00:03Z")]})
    assert r.records["node-a"].pods["10.0.1.1"] == Load(0.33, 0.67)
    assert r.newest == datetime(2026, 1, 1, 0, 0, 5, tzinfo=timezone.utc)
    assert round_of(pod_metrics={"items": []}, node_metrics={"items": []}).newest is None


QTY = st.one_of(st.none(), st.sampled_from(["0", "1", "250m", "1500m", "2", "64Mi", "1Gi", "3Gi", "-1", "x"]),
                st.integers(0, 10**10).map(lambda n: f"{n}n"))


@st.composite
def clusters(draw):
    nodes = [node(f"n{i}", f"10.0.0.{i}", draw(QTY) or "0", draw(QTY) or "0") for i in range(draw(st.integers(1, 3)))]
    pods, items = [], []
    for k in range(draw(st.integers(0, 6))):
        containers = [{"limits": res(draw(QTY), draw(QTY)), "requests": res(draw(QTY), draw(QTY))}
                      for _ in range(draw(st.integers(0, 2)))]
        pods.append(pod(f"p{k}", f"10.1.0.{k}", draw(st.sampled_from([n["metadata"]["name"] for n in nodes])),
                        *containers, host_network=draw(st.booleans())))
        if draw(st.booleans()):
            items.append(pod_item(f"p{k}", *[res(draw(QTY), draw(QTY)) for _ in containers]))
    node_items = [node_item(n["metadata"]["name"], draw(QTY) or "0", draw(QTY) or "0") for n in nodes
                  if draw(st.booleans())]
    return nodes, pods, {"items": items}, {"items": node_items}


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_same_fractions_as_the_python_proxys_monitor_which_keeps_rap_gos(cluster):
    nodes, pods, pod_metrics, node_metrics = cluster
    r = round_of(nodes, pods, pod_metrics, node_metrics)
    stamp = lambda key, ts: 0.0  # noqa: E731
    by_ip = pod_usage_by_ip({"items": pods}, pod_metrics, stamp)
    by_node = node_usage_by_name({"items": nodes}, node_metrics, stamp)
    published = {ip: u for rec in r.records.values() for ip, u in rec.pods.items()}
    assert published == {ip: Load(round(u.cpu, 2), round(u.mem, 2)) for ip, u in by_ip.items()}
    assert {n: rec.node for n, rec in r.records.items() if rec.node} == {
        n: Load(round(u.cpu, 2), round(u.mem, 2)) for n, u in by_node.items()}
