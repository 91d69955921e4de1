"""A crashed local backend that the Endpoints still list: RAP must fail no more connections than stock kube-proxy.

Between a backend's crash and the readiness probe that takes it out, its Endpoints entry stays. Stock
kube-proxy (userspace round robin) survives that: ``TryConnectEndpoints`` retries a refused dial with
``sessionAffinityReset`` and the round robin moves on. RAP would pick the dead pod again on every retry,
since it is local and measures idle, unless the retry ejects it (docs/algorithm.md, "Connection
bookkeeping"). The issue measured stock 30 of 30 answered, RAP 20 of 20 failed.

One 3-node cluster: node-1 runs exactly one pod, nodes 2 and 3 two each, node-2 10 ms and node-3 20 ms
from node-1 (so staying local is clearly RAP's choice in both modes). The fixture kills node-1's pod
process and leaves the Endpoints as they are; each proxy kind is then switched to in place and counted.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from rap.config import FIELDS
from rap.localcluster import cluster, config, objects, procs, traffic
from rap.quantity import parse_quantity

from tests.e2e.clusters import running, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NODE1 = config.node_netns(1)
PERIOD_S = 1.0
EJECT_S = FIELDS["eject_s"].default  # the cluster leaves RAP_EJECT_S unset
RAP_KINDS = ("rap", "rap-adaptive")  # classic and adaptive mode
CONNECTIONS = 30
# Not rap.config's wording but kube-proxy's: upstream TryConnectEndpoints logs each failed dial so.
DIAL_FAILED = "Dial failed"
METRICS_SEEN = "resource metrics available"  # rap_monitor.go, once the first metrics arrive


@dataclass(frozen=True)
class Counts:
    failed: int  # of CONNECTIONS new connections from node-1
    refused: int  # dials to the dead pod that node-1's proxy logged as failed

    def __str__(self) -> str:
        return f"{self.failed}/{CONNECTIONS} failed, {self.refused} dials to the dead pod refused"


@pytest.fixture(scope="module")
def dead_pod():
    """(runtime, the pod record) once node-1's only backend process is killed and measures idle."""
    # cpu_ms small: the locality check's own requests must not push the one pod near the threshold.
    c = config.ClusterConfig(nodes=3, proxy="rap", pods={1: 1}, default_pods=2, cpu_ms=0.2,
                             rtt_ms={(1, 2): 10.0, (1, 3): 20.0}, rap_period_s=PERIOD_S)
    with running(c) as (runtime, st):
        [pod] = [p for p in st.pods if p["node"] == config.node_name(1)]
        for kind in RAP_KINDS:  # RAP reads the metrics and keeps node-1's connections on its pod
            cluster.switch_proxy(kind, runtime=runtime)
            wait_for(lambda: _served_by(st) == {pod["name"]}, 30, f"{kind} to keep node-1's connections local")
        _kill(runtime, pod)
        api = objects.api_client(st.kubeconfig)
        assert pod["ip"] in _endpoint_ips(api), "the Endpoints must still list the dead pod"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((pod["ip"], objects.TARGET_PORT), 2).close()
        wait_for(lambda: _pod_cpu(api, pod["name"]) == 0, 20, f"{pod['name']} to measure idle")
        yield runtime, pod


@pytest.fixture(scope="module")
def stock(dead_pod) -> Counts:
    runtime, pod = dead_pod
    _switched(runtime, "stock")
    counts = _count(runtime, pod)
    print(f"\nstock: {counts}")
    return counts


def test_stock_kube_proxy_retries_every_refused_dial(stock):
    # The baseline; it also shows the dead pod was in the rotation.
    assert stock.failed == 0 and stock.refused >= 1, f"stock: {stock}"


@pytest.mark.parametrize("kind", RAP_KINDS)
def test_rap_fails_no_more_connections_than_stock(dead_pod, stock, kind):
    runtime, pod = dead_pod
    _switched(runtime, kind)
    first = _count(runtime, pod)
    # Past the first ejection's end: the dead pod, still idle, is RAP's choice again and must again be
    # retried elsewhere.
    time.sleep(EJECT_S + 1)
    again = _count(runtime, pod)
    report = f"stock: {stock}; {kind}: {first}, {EJECT_S + 1:g} s later {again}"
    print(f"\n{report}")
    assert first.failed <= stock.failed and again.failed <= stock.failed, report
    # Each round's first connection went to the dead pod first: the retry path ran, both times.
    assert first.refused >= 1 and again.refused >= 1, report


def _switched(runtime: Path, kind: str) -> None:
    """``kind`` on every node, started afresh, once it could have had metrics and any dial to the dead
    pod made while the switch probed the Service has stopped ejecting it."""
    offset = _log_size(runtime)
    cluster.switch_proxy(kind, runtime=runtime)
    # The switch's last probe of the Service, the last traffic that could have ejected the dead pod, ended
    # here, not when the switch began: on a slow machine the probes alone outlast the ejection.
    probed = time.monotonic()
    if kind in RAP_KINDS:
        wait_for(lambda: METRICS_SEEN in _log_since(runtime, offset), 30, f"{kind} to read metrics")
        time.sleep(max(0.0, probed + EJECT_S + 1 - time.monotonic()))


def _count(runtime: Path, pod: dict) -> Counts:
    """CONNECTIONS new connections from node-1, one at a time, each with a bounded timeout."""
    offset = _log_size(runtime)
    st = cluster.current(runtime)
    samples = traffic.load(NODE1, st.cluster_ip, objects.SERVICE_PORT, concurrency=1, duration=60,
                           max_requests=CONNECTIONS, timeout=5)
    assert len(samples) == CONNECTIONS, f"only {len(samples)} of {CONNECTIONS} connections were tried"
    refused = [line for line in _log_since(runtime, offset).splitlines()
               if DIAL_FAILED in line and f"{pod['ip']}:{objects.TARGET_PORT}" in line]
    return Counts(sum(s.status != 200 for s in samples), len(refused))


def _served_by(st) -> set[str]:
    samples = traffic.load(NODE1, st.cluster_ip, objects.SERVICE_PORT, concurrency=1, duration=5,
                           max_requests=20, think_ms=20)
    return {s.pod if s.status == 200 else "(failed)" for s in samples}


def _kill(runtime: Path, pod: dict) -> None:
    """SIGKILL the pod's server process only, as a crash would: its namespace, cgroup and objects stay."""
    pid = procs.recorded(runtime)[pod["name"]]
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"rap.localcluster.backend" in cmdline, cmdline  # `ip netns exec` has exec'd the server
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not procs.alive(pid), 10, f"{pod['name']} to die")


def _endpoint_ips(api) -> set[str]:
    eps = client.CoreV1Api(api).read_namespaced_endpoints(objects.SERVICE, objects.NAMESPACE)
    return {a.ip for s in eps.subsets or [] for a in s.addresses or []}


def _pod_cpu(api, name: str) -> float:
    m = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "metrics.k8s.io", "v1beta1", objects.NAMESPACE, "pods", name)
    return sum(parse_quantity(c["usage"]["cpu"]) for c in m["containers"])


def _log_size(runtime: Path) -> int:
    path = procs.log_path(runtime, "proxy-1")
    return path.stat().st_size if path.exists() else 0


def _log_since(runtime: Path, offset: int) -> str:
    with open(procs.log_path(runtime, "proxy-1"), "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")
