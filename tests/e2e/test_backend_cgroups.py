"""Backend pods under cgroup CPU limits, measured by the local metrics server.

Needs root and the cpu, cpuacct and memory cgroup controllers (v1) or cpu and
memory (v2). Everything stays on loopback and under a cgroup parent named for
this test process (rap-test-<pid>), so it never touches a running local cluster;
the module fixture removes every group and process it made, also on failure.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import pytest

from rap.localcluster import cgroups, metrics
from rap.quantity import parse_exact

pytestmark = pytest.mark.e2e

PARENT = f"rap-test-{os.getpid()}"
NODE = f"{PARENT}/node-1"
LIMITS = {"pod-slow": 0.1, "pod-fast": 0.5}  # CPU cores
MEMORY_LIMIT = 256 << 20
COST_MS = 20.0
START_TIMEOUT = 15.0


def _start(cmd: list[str], **popen) -> tuple[subprocess.Popen, int]:
    """Start a server that prints '... <host>:<port> ...' once listening; return it and the port."""
    proc = subprocess.Popen([sys.executable, *cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, stdin=subprocess.DEVNULL, **popen)
    line = _readline(proc, START_TIMEOUT)
    if "127.0.0.1:" not in line:
        proc.kill()
        pytest.fail(f"{' '.join(cmd)} did not start: {line!r}")
    return proc, int(line.split("127.0.0.1:")[1].split()[0])


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    out: list[str] = []
    t = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    return out[0] if out else ""


@dataclass
class Env:
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    metrics_port: int = 0
    registry: str = ""

    def group(self, pod: str) -> cgroups.Cgroup:
        return cgroups.group(f"{NODE}/{pod}")

    def cleanup(self) -> None:
        """SIGTERM every server (they must exit 0), then remove the groups; idempotent."""
        try:
            for name, proc in self.procs.items():
                self.exit_codes[name] = _stop(proc)
        finally:  # even when interrupted: removing the groups kills what is left
            cgroups.remove(PARENT)
            for proc in self.procs.values():
                proc.poll()  # reap


def _stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
    finally:
        proc.stdout.close()


def _remove_stale_test_groups() -> None:
    """Parents left by an earlier run that was killed before its finalizer ran."""
    for root in cgroups.layout().roots():
        for d in root.glob("rap-test-*"):
            pid = d.name.removeprefix("rap-test-")
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                cgroups.remove(d.name)


@pytest.fixture(scope="module")
def env(tmp_path_factory, request):
    if os.geteuid() != 0:
        pytest.skip("needs root (cgroups)")
    cgroups.layout()  # a missing controller fails here, with the name of the controller and mount
    _remove_stale_test_groups()
    e = Env()
    request.addfinalizer(e.cleanup)  # before anything is made: a half-built setup is removed too
    parent = cgroups.create(PARENT)
    # Other work on a shared machine would otherwise starve the groups below their limits.
    parent.set_cpu_weight(8192)
    cgroups.create(NODE)
    for pod, cpus in LIMITS.items():
        cgroups.create(f"{NODE}/{pod}", cpus=cpus, memory_bytes=MEMORY_LIMIT)
        e.procs[pod], e.ports[pod] = _start(
            ["-m", "rap.localcluster.backend", "--host", "127.0.0.1", "--port", "0", "--name", pod,
             "--node", "node-1", "--cpu-ms", str(COST_MS), "--cgroup", f"{NODE}/{pod}"])
    e.registry = str(tmp_path_factory.mktemp("metrics") / "registry.json")
    metrics.write_registry(e.registry, {"node-1": NODE}, {
        f"default/{pod}": {"node": "node-1", "cgroup": f"{NODE}/{pod}", "container": "backend"}
        for pod in LIMITS})
    # In a group of its own too, so even a killed test run leaves nothing a later run cannot sweep.
    side = cgroups.create(f"{PARENT}/metrics-server")
    e.procs["metrics"], e.metrics_port = _start(
        ["-m", "rap.localcluster.metrics", "--registry", e.registry, "--listen", "127.0.0.1:0",
         "--interval", "0.5", "--window", "2"], preexec_fn=side.enter)
    return e


def request(port: int, method: str = "GET", path: str = "/", headers: dict | None = None) -> tuple[int, dict | str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read().decode()
        is_json = resp.getheader("Content-Type", "").startswith("application/json")
        return resp.status, json.loads(body) if is_json else body
    finally:
        conn.close()


def load(port: int, clients: int, max_requests: int, seconds: float) -> list[float]:
    """Bounded load: `clients` keep-alive connections until `max_requests` or `seconds`; latencies."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if len(latencies) >= max_requests:
                        return
                start = time.monotonic()
                conn.request("GET", "/")
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200
                with lock:
                    latencies.append(time.monotonic() - start)
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    return latencies


def get_metrics(env: Env, path: str) -> dict:
    conn = http.client.HTTPSConnection("127.0.0.1", env.metrics_port, timeout=10,
                                       context=ssl._create_unverified_context())
    try:
        conn.request("GET", "/apis/metrics.k8s.io/v1beta1" + path)
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 200, body
        return body
    finally:
        conn.close()


def pod_metrics(env: Env) -> dict[str, int]:
    """Nanocores per pod, from the metrics server's PodMetricsList."""
    body = get_metrics(env, "/namespaces/default/pods")
    return {i["metadata"]["name"]: _nanocores(i["containers"][0]["usage"]["cpu"]) for i in body["items"]}


def _nanocores(q: str) -> int:
    return round(parse_exact(q) * 10**9)


def test_backend_names_pod_and_node_and_keeps_alive(env):
    conn = http.client.HTTPConnection("127.0.0.1", env.ports["pod-fast"], timeout=10)
    try:
        for _ in range(3):  # three requests, one connection
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = json.loads(resp.read())
            assert (resp.status, body["pod"], body["node"]) == (200, "pod-fast", "node-1")
            assert resp.getheader("X-Pod") == "pod-fast"
    finally:
        conn.close()
    assert request(env.ports["pod-slow"], path="/?format=text") == (200, "pod-slow node-1\n")
    assert request(env.ports["pod-slow"], path="/healthz") == (200, "ok\n")


def test_backends_run_in_their_cgroups(env):
    for pod in LIMITS:
        assert env.group(pod).pids() == {env.procs[pod].pid}


def test_cost_changes_at_run_time(env):
    port, group = env.ports["pod-fast"], env.group("pod-fast")
    assert request(port, "POST", "/cost?ms=60")[1]["cpu_ms"] == 60.0
    try:
        assert request(port, path="/cost")[1]["cpu_ms"] == 60.0
        before = group.cpu_usage_ns()
        for _ in range(10):
            assert request(port)[1]["cpu_ms"] == 60.0
        used_ms = (group.cpu_usage_ns() - before) / 1e6
        assert 600 <= used_ms < 1200, f"10 requests at 60 ms used {used_ms:.0f} ms of CPU"
        assert request(port, headers={"X-Cost-Ms": "1"})[1]["cpu_ms"] == 1.0
        assert request(port, "POST", "/cost?ms=-1")[0] == 400
    finally:
        request(port, "POST", f"/cost?ms={COST_MS}")


def test_memory_ballast_shows_in_the_cgroup(env):
    port, group = env.ports["pod-fast"], env.group("pod-fast")
    before = group.memory_bytes()
    request(port, "POST", "/memory?mb=64")
    try:
        assert group.memory_bytes() - before >= 48 << 20
    finally:
        request(port, "POST", "/memory?mb=0")


def test_cpu_limit_slows_the_limited_pod(env):
    slow = env.group("pod-slow")
    throttled = slow.throttling().get("nr_throttled", 0)
    cpu = {pod: env.group(pod).cpu_usage_ns() for pod in LIMITS}
    started = time.monotonic()
    results: dict[str, list[float]] = {}
    threads = [threading.Thread(target=lambda p=p: results.__setitem__(p, load(env.ports[p], 4, 400, 4.0)))
               for p in LIMITS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    cores = {pod: (env.group(pod).cpu_usage_ns() - cpu[pod]) / 1e9 / elapsed for pod in LIMITS}
    rps = {pod: len(results[pod]) / elapsed for pod in LIMITS}
    mean = {pod: sum(results[pod]) / len(results[pod]) for pod in LIMITS}
    print(f"\nCPU used (cores): {cores}\nrequests/s: {rps}\nmean latency (s): {mean}")
    assert cores["pod-slow"] <= LIMITS["pod-slow"] * 1.3
    assert slow.throttling()["nr_throttled"] > throttled
    assert rps["pod-fast"] >= 2.5 * rps["pod-slow"]
    assert mean["pod-slow"] >= 2.5 * mean["pod-fast"]
    # Saturated, the limited pod's reported usage sits at its limit.
    reported = pod_metrics(env)["pod-slow"] / 1e9
    assert 0.05 <= reported <= LIMITS["pod-slow"] * 1.3, reported


def test_metrics_server_reports_the_busy_pod_higher(env):
    time.sleep(2.5)  # let the previous load age out of the 2 s window
    load(env.ports["pod-fast"], 4, 1000, 3.0)
    usage = pod_metrics(env)
    print(f"\nreported nanocores: {usage}")
    assert usage["pod-fast"] >= 0.2e9
    assert usage["pod-fast"] > 4 * usage["pod-slow"]
    node = get_metrics(env, "/nodes/node-1")
    assert _nanocores(node["usage"]["cpu"]) >= 0.9 * usage["pod-fast"]  # a node's usage includes its pods'


def test_sigusr1_makes_the_metrics_source_fail_and_recover(env):
    proc = env.procs["metrics"]
    proc.send_signal(signal.SIGUSR1)
    try:
        time.sleep(0.3)
        with pytest.raises(AssertionError, match="503|ServiceUnavailable"):
            pod_metrics(env)
    finally:
        proc.send_signal(signal.SIGUSR1)
    time.sleep(0.3)
    assert set(pod_metrics(env)) == set(LIMITS)


def test_cleanup_leaves_no_cgroup_or_process(env):
    pids = {pod: env.procs[pod].pid for pod in env.procs}
    env.cleanup()
    assert env.exit_codes == {name: 0 for name in env.procs}, "SIGTERM must be a clean exit"
    layout = cgroups.layout()
    left = [str(root / PARENT) for root in layout.roots() if (root / PARENT).exists()]
    assert left == []
    assert [p for p in pids.values() if os.path.exists(f"/proc/{p}")] == []
