"""Backend pods: a real HTTP server in its own namespace and cgroup, recorded in the API."""

from __future__ import annotations

import sys
import time
import urllib.request
from pathlib import Path

from kubernetes.client import ApiException

from rap.localcluster import cgroups, netns, objects, procs
from rap.localcluster import config as cfg

CGROUP_PARENT = "rap-local"
MIB = 1024 * 1024


def node_cgroup(node: str) -> str:
    return f"{CGROUP_PARENT}/{node}"


def pod_name(i: int, k: int) -> str:
    return f"web-{i}-{k}"


def create_node_cgroup(c: cfg.ClusterConfig, i: int) -> str:
    name = node_cgroup(cfg.node_name(i))
    cgroups.create(name, cpus=c.node_cpu, memory_bytes=c.node_mem_mib * MIB)
    return name


def start_pod(runtime: Path, c: cfg.ClusterConfig, api, i: int, k: int) -> dict:
    """Namespace, cgroup, server process, Pod object; the pod's record for the state file."""
    node, name = cfg.node_name(i), pod_name(i, k)
    group = f"{node_cgroup(node)}/{name}"
    netns.create_pod(i, k)
    cgroups.create(group, cpus=c.pod_cpu, memory_bytes=c.pod_mem_mib * MIB)
    pid = procs.start(runtime, name, [
        sys.executable, "-m", "rap.localcluster.backend", "--port", str(objects.TARGET_PORT),
        "--name", name, "--node", node, "--cpu-ms", str(c.cpu_ms),
    ], netns=cfg.pod_netns(i, k))
    # Joined from out here: `ip netns exec` mounts a fresh /sys, hiding the cgroup trees.
    cgroups.group(group).add_pid(pid)
    ip = cfg.pod_ip(i, k)
    wait_healthy(runtime, name, ip)
    objects.create_pod(api, objects.PodSpec(name, node, ip, c.pod_cpu, c.pod_mem_mib))
    return {"name": name, "node": node, "ip": ip, "netns": cfg.pod_netns(i, k), "cgroup": group,
            "index": [i, k]}


def stop_pod(runtime: Path, api, pod: dict) -> None:
    procs.stop(runtime, pod["name"])
    cgroups.remove(pod["cgroup"])
    netns.delete_pod(*pod["index"])
    try:
        objects.delete_pod(api, pod["name"])
    except ApiException as exc:
        if exc.status != 404:  # absent: the Pod object was never created
            raise


def wait_healthy(runtime: Path, name: str, ip: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{ip}:{objects.TARGET_PORT}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"pod {name} ({ip}) did not become healthy in {timeout:.0f}s; "
                       f"see {procs.log_path(runtime, name)}")


def set_cost(ip: str, ms: float) -> None:
    """Change a backend's CPU cost per request (drives a pod past the threshold)."""
    req = urllib.request.Request(f"http://{ip}:{objects.TARGET_PORT}/cost?ms={ms}", method="POST")
    with urllib.request.urlopen(req, timeout=5):
        pass


def metrics_registry(nodes: list[str], pods: list[dict]) -> tuple[dict, dict]:
    node_groups = {n: node_cgroup(n) for n in nodes}
    pod_groups = {f"{objects.NAMESPACE}/{p['name']}": {
        "node": p["node"], "cgroup": p["cgroup"], "container": "backend", "labels": {"app": objects.SERVICE},
    } for p in pods}
    return node_groups, pod_groups
