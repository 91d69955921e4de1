"""The local cluster's network: a bridge, one namespace per node, one per pod.

Node namespaces hang off the root bridge ``rap0`` by veth pairs; inside each
node namespace a pod bridge ``cbr0`` joins that node's pod namespaces. Nodes
route to each other's pod ranges over rap0, so a connection from node 1 to a
pod on node 2 crosses node 1's eth0 — the inter-node path that netdelay slows.
"""

from __future__ import annotations

from rap.localcluster import config as cfg
from rap.localcluster.sh import quiet, run


def existing_namespaces() -> list[str]:
    out = run(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith(cfg.NS_PREFIX)]


def create_bridge() -> None:
    run(["ip", "link", "add", cfg.BRIDGE, "type", "bridge"])
    run(["ip", "addr", "add", f"{cfg.bridge_ip()}/24", "dev", cfg.BRIDGE])
    run(["ip", "link", "set", cfg.BRIDGE, "up"])


def create_node(i: int, nodes: int) -> None:
    ns, host_if = cfg.node_netns(i), f"rapn{i}"
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "link", "set", host_if, "master", cfg.BRIDGE, "up"])
    run(["ip", "link", "set", "lo", "up"], netns=ns)
    run(["ip", "addr", "add", f"{cfg.node_ip(i)}/24", "dev", "eth0"], netns=ns)
    run(["ip", "link", "set", "eth0", "up"], netns=ns)
    run(["ip", "route", "add", "default", "via", cfg.bridge_ip()], netns=ns)
    run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], netns=ns)
    # kube-proxy's userspace rules REDIRECT to a local port; connections from
    # pods must be allowed to reach it through the node's own address.
    run(["sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"], netns=ns)
    run(["ip", "link", "add", "cbr0", "type", "bridge"], netns=ns)
    run(["ip", "addr", "add", f"{cfg.pod_gateway(i)}/24", "dev", "cbr0"], netns=ns)
    run(["ip", "link", "set", "cbr0", "up"], netns=ns)
    for j in range(1, nodes + 1):
        if j != i:
            run(["ip", "route", "add", cfg.pod_cidr(j), "via", cfg.node_ip(j)], netns=ns)
    # The root namespace reaches pods too (metrics, health checks), via their node.
    run(["ip", "route", "replace", cfg.pod_cidr(i), "via", cfg.node_ip(i)])


def create_pod(i: int, k: int) -> None:
    node_ns, pod_ns, node_if = cfg.node_netns(i), cfg.pod_netns(i, k), f"vp{k}"
    run(["ip", "netns", "add", pod_ns])
    run(["ip", "link", "add", node_if, "netns", node_ns, "type", "veth", "peer", "name", "eth0", "netns", pod_ns])
    run(["ip", "link", "set", node_if, "master", "cbr0", "up"], netns=node_ns)
    run(["ip", "link", "set", "lo", "up"], netns=pod_ns)
    run(["ip", "addr", "add", f"{cfg.pod_ip(i, k)}/24", "dev", "eth0"], netns=pod_ns)
    run(["ip", "link", "set", "eth0", "up"], netns=pod_ns)
    run(["ip", "route", "add", "default", "via", cfg.pod_gateway(i)], netns=pod_ns)


def delete_pod(i: int, k: int) -> None:
    quiet(["ip", "netns", "del", cfg.pod_netns(i, k)])


def teardown() -> list[str]:
    """Remove every namespace, link and route of the local cluster; what was removed."""
    removed = []
    for ns in existing_namespaces():
        for pid in run(["ip", "netns", "pids", ns], check=False).split():
            quiet(["kill", "-9", pid])
        if quiet(["ip", "netns", "del", ns]):
            removed.append(f"netns {ns}")
    for link in _project_links():
        if quiet(["ip", "link", "del", link]):
            removed.append(f"link {link}")
    for route in run(["ip", "route", "show"], check=False).splitlines():
        if route.startswith("10.214."):
            quiet(["ip", "route", "del", route.split()[0]])
            removed.append(f"route {route.split()[0]}")
    return removed


def _project_links() -> list[str]:
    out = run(["ip", "-o", "link", "show"], check=False)
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]
    return [n for n in names if n == cfg.BRIDGE or (n.startswith("rapn") and n[4:].isdigit())]
