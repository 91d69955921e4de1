"""The simulated part of the scale cluster: KWOK's Nodes, their Pods, a few Services with Endpoints, their addresses.

Written through the real API with the admin's credential, as a kubelet, a
scheduler and the endpoints controller would (none runs here): Nodes with
capacity and an InternalIP, Pods bound to them with limits (KWOK makes them
Running and gives each an IP), Services whose Endpoints list those IPs.

Addresses (ranges the project owns on this machine, next to those of
docs/localcluster.md; nothing is ever sent to them outside it):

- 10.216.0.0/16: simulated nodes' InternalIPs. RAP's per-node monitor dials
  every node's InternalIP on RAP_RTT_PORT; in each real node's namespace the
  whole range is a *local* route on loopback, so the dial is answered by that
  namespace's own RTT listener (rap.localcluster.nodeagent) and never leaves
  it. In the root namespace the range is a blackhole route, should anything
  there dial one.
- 10.217.0.0/16: simulated pods' IPs (KWOK's ``--cidr``); blackholed in the
  root namespace and in every real node's namespace: nothing answers there.

Not here: running KWOK (rap.scale.kwok), their usage (rap.scale.synthetic).
"""

from __future__ import annotations

import ipaddress
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kubernetes import client

from rap.errors import UserError
from rap.localcluster import objects
from rap.localcluster.sh import quiet, run
from rap.quantity import memory_quantity, milli_quantity
from rap.scale import synthetic
from rap.scale.options import MAX_NODES

NODE_NET = ipaddress.ip_network("10.216.0.0/16")
POD_NET = ipaddress.ip_network("10.217.0.0/16")
NAMESPACE = "default"
LABEL = "rap.scale/simulated"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
SERVICE_PREFIX = "sim-"


class FakeClusterError(UserError, RuntimeError):
    pass


def node_name(i: int) -> str:
    return f"kwok-node-{i:04d}"


def node_ip(i: int) -> str:
    if not 1 <= i <= MAX_NODES:
        raise ValueError(f"simulated node {i} outside 1..{MAX_NODES}")
    return str(NODE_NET.network_address + i)


def service_name(s: int) -> str:
    return f"{SERVICE_PREFIX}{s}"


@dataclass(frozen=True)
class Shape:
    """How many simulated objects: nodes, pods per node, Services they are spread over."""

    nodes: int
    pods_per_node: int
    services: int

    def pods(self, i: int) -> list[tuple[str, str]]:
        """(pod name, Service name) of node i's pods; pod k of node i belongs to Service (i·ppn + k) mod S."""
        return [(f"sim-{i:04d}-{k}", service_name((i * self.pods_per_node + k) % self.services))
                for k in range(self.pods_per_node)]


def node_body(i: int) -> dict:
    resources = {"cpu": milli_quantity(synthetic.NODE_CPU), "memory": memory_quantity(synthetic.NODE_MEM),
                 "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node_name(i), "labels": {LABEL: "true", "type": "kwok",
                                                          "kubernetes.io/hostname": node_name(i)},
                         "annotations": {KWOK_ANNOTATION: "fake"}},
            "status": {"capacity": resources, "allocatable": resources,
                       "addresses": [{"type": "InternalIP", "address": node_ip(i)},
                                     {"type": "Hostname", "address": node_name(i)}]}}


def pod_body(name: str, node: str, service: str) -> dict:
    limits = {"cpu": milli_quantity(synthetic.POD_CPU), "memory": memory_quantity(synthetic.POD_MEM)}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {LABEL: "true", "app": service}},
            "spec": {"nodeName": node, "containers": [{
                "name": "backend", "image": "rap.local/simulated",
                "ports": [{"containerPort": objects.TARGET_PORT}],
                "resources": {"limits": limits, "requests": limits}}]}}


def _parallel(fn, items, workers: int = 8) -> None:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(fn, items):
            pass


def _create(call) -> None:
    try:
        call()
    except client.ApiException as exc:
        if exc.status != 409:  # already there (a size grown from a smaller one)
            raise


def create_nodes(api: client.ApiClient, indexes) -> None:
    """Nodes ``indexes`` with their status (capacity, allocatable, InternalIP); KWOK marks them Ready."""
    core = client.CoreV1Api(api)

    def one(i: int) -> None:
        body = node_body(i)
        _create(lambda: core.create_node(body))
        core.patch_node_status(node_name(i), {"status": body["status"]})

    _parallel(one, list(indexes))


def create_pods(api: client.ApiClient, shape: Shape, indexes) -> None:
    core = client.CoreV1Api(api)
    bodies = [pod_body(name, node_name(i), svc) for i in indexes for name, svc in shape.pods(i)]
    _parallel(lambda b: _create(lambda: core.create_namespaced_pod(NAMESPACE, b)), bodies)


def create_services(api: client.ApiClient, shape: Shape) -> None:
    for s in range(shape.services):
        try:
            objects.create_service(api, name=service_name(s))
        except client.ApiException as exc:
            if exc.status != 409:
                raise


def get_raw(api: client.ApiClient, path: str, query: list[tuple[str, str]] = (), timeout: float = 120) -> bytes:
    """GET ``path`` with the client's credential; the body, or FakeClusterError naming the path and the status."""
    from urllib.parse import urlencode

    url = api.configuration.host + path + (f"?{urlencode(list(query))}" if query else "")
    resp = api.call_api("GET", url, header_params={"Accept": "application/json, text/plain"},
                        _request_timeout=timeout)
    data = resp.read()
    if resp.status != 200:
        raise FakeClusterError(f"GET {path}: HTTP {resp.status}: {data[:200]!r}")
    return data


def _get_json(api: client.ApiClient, path: str, query: list[tuple[str, str]]) -> dict:
    return json.loads(get_raw(api, path, query))


def running_pods(api: client.ApiClient) -> list[dict]:
    """The simulated pods that are Running with an IP: {name, node, ip, service}."""
    doc = _get_json(api, f"/api/v1/namespaces/{NAMESPACE}/pods",
                    [("labelSelector", f"{LABEL}=true"), ("fieldSelector", "status.phase=Running")])
    out = []
    for p in doc.get("items", []):
        ip = (p.get("status") or {}).get("podIP")
        if ip:
            out.append({"name": p["metadata"]["name"], "node": p["spec"].get("nodeName", ""), "ip": ip,
                        "service": p["metadata"].get("labels", {}).get("app", "")})
    return out


def ready_nodes(api: client.ApiClient) -> int:
    doc = _get_json(api, "/api/v1/nodes", [("labelSelector", f"{LABEL}=true")])
    return sum(1 for n in doc.get("items", []) for c in (n.get("status") or {}).get("conditions") or []
               if c.get("type") == "Ready" and c.get("status") == "True")


def wait_running(api: client.ApiClient, shape: Shape, timeout: float, alive=lambda: None, say=print) -> list[dict]:
    """Until every simulated node is Ready and every pod Running with an IP; the pods.
    ``alive()`` raises if KWOK died meanwhile."""
    want_pods = shape.nodes * shape.pods_per_node
    deadline = time.monotonic() + timeout
    last = (-1, -1)
    while True:
        alive()
        pods, nodes = running_pods(api), ready_nodes(api)
        if (len(pods), nodes) != last:
            say(f"  {nodes}/{shape.nodes} simulated nodes Ready, {len(pods)}/{want_pods} pods Running")
            last = (len(pods), nodes)
        if len(pods) >= want_pods and nodes >= shape.nodes:
            return pods
        if time.monotonic() > deadline:
            raise FakeClusterError(f"after {timeout:.0f}s only {nodes}/{shape.nodes} simulated nodes are Ready and "
                                   f"{len(pods)}/{want_pods} pods Running: see the kwok log in the runtime folder")
        time.sleep(3)


def set_endpoints(api: client.ApiClient, shape: Shape, pods: list[dict]) -> None:
    """Each Service's Endpoints (and EndpointSlice): its Running pods, as the endpoints controller writes them."""
    by_service: dict[str, list[objects.PodSpec]] = {service_name(s): [] for s in range(shape.services)}
    for p in sorted(pods, key=lambda p: p["name"]):
        if p["service"] in by_service:
            by_service[p["service"]].append(objects.PodSpec(p["name"], p["node"], p["ip"], synthetic.POD_CPU,
                                                            synthetic.POD_MEM // 2**20))
    for svc, specs in by_service.items():
        objects.set_endpoints(api, specs, name=svc)


def registry_entries(shape: Shape, pods: list[dict]) -> tuple[dict, dict]:
    """Metrics-registry entries (rap.localcluster.metrics.registry) for the simulated nodes and pods."""
    nodes = {node_name(i): synthetic.node_name(node_name(i)) for i in range(1, shape.nodes + 1)}
    entries = {f"{NAMESPACE}/{p['name']}": {"node": p["node"], "cgroup": synthetic.pod_name(NAMESPACE, p["name"]),
                                            "container": "backend", "labels": {"app": p["service"]}}
               for p in pods}
    return nodes, entries


# -- addresses --------------------------------------------------------------------------------

def isolate(node_namespaces: list[str]) -> None:
    """Keep every dial of a simulated address on this machine (module docstring)."""
    for net in (NODE_NET, POD_NET):
        run(["ip", "route", "replace", "blackhole", str(net)])
    for ns in node_namespaces:
        run(["ip", "route", "replace", "local", str(NODE_NET), "dev", "lo"], netns=ns)
        run(["ip", "route", "replace", "blackhole", str(POD_NET)], netns=ns)


def remove_isolation() -> list[str]:
    """The root namespace's routes of ``isolate`` (the node namespaces' go with them); what was removed."""
    removed = []
    for net in (NODE_NET, POD_NET):
        if quiet(["ip", "route", "del", "blackhole", str(net)]):
            removed.append(f"route blackhole {net}")
    return removed
