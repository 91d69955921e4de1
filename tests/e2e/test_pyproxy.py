"""rap.pyproxy end to end, without the local cluster: real namespaces, real DNAT rules, real HTTP backends.

Two namespaces of this test's own (``rpt-<pid>-a`` client/node, ``rpt-<pid>-b``
backends) hang off a bridge of its own, in 10.218.0.0/24. The proxier runs on
an asyncio loop in a thread that has entered namespace a (setns is per
thread), so its listeners, its outgoing connections and the iptables commands
it forks all live there; it is driven through ``Proxier.sync`` and
``update_snapshot`` with no API server. Clients in namespace a connect to the
ClusterIP, which only the DNAT rules make reachable. Everything is removed
afterwards, also when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import http.client
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from rap.policies import Endpoint, make_policy
from rap.pyproxy.iptables import Iptables
from rap.pyproxy.relay import Proxier
from rap.pyproxy.services import PortSpec
from rap.snapshot import Snapshot, Usage

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, iptables)"),
    pytest.mark.skipif(not (shutil.which("ip") and shutil.which("iptables")), reason="needs iproute2 and iptables"),
]

TAG = os.getpid() % 100000
NS_A, NS_B = f"rpt-{os.getpid()}-a", f"rpt-{os.getpid()}-b"
BRIDGE, VETH_A, VETH_B = f"rptbr{TAG}", f"rpta{TAG}", f"rptb{TAG}"
NODE_A_IP, NODE_B_IP = "10.218.0.11", "10.218.0.12"
BACKEND_IPS = ("10.218.0.21", "10.218.0.22", "10.218.0.23")
CLUSTER_IP, SERVICE_PORT, BACKEND_PORT = "10.218.0.200", 80, 8080
SERVICE = "default/web"
CLONE_NEWNET = 0x40000000


def sh(*cmd: str, netns: str | None = None, check: bool = True) -> str:
    argv = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


def enter_netns(name: str) -> None:
    """Move the calling thread (only) into a named network namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def in_netns(name: str, fn, timeout: float = 60):
    """Run ``fn()`` in a fresh thread inside namespace ``name``; return its result or raise its error."""
    out: dict = {}

    def run():
        try:
            enter_netns(name)
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"{fn} did not finish in {timeout}s")
    if "error" in out:
        raise out["error"]
    return out.get("value")


class NetnsLoop:
    """An asyncio loop running in a thread inside a namespace; coroutines are submitted to it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.error: BaseException | None = None

        def run():
            try:
                enter_netns(name)
            except BaseException as e:  # noqa: BLE001
                self.error = e
                ready.set()
                return
            asyncio.set_event_loop(self.loop)
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)
        if self.error:
            raise self.error

    def call(self, make_coro, timeout: float = 30):
        async def wrapper():
            return await make_coro()

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# -- the lab: namespaces, bridge, backends --


def _remove_lab() -> None:
    for ns in (NS_A, NS_B):
        sh("ip", "netns", "del", ns, check=False)  # takes its veth ends, addresses and rules with it
    for link in (VETH_A, VETH_B, BRIDGE):
        sh("ip", "link", "del", link, check=False)


def _make_lab() -> None:
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "link", "set", BRIDGE, "up")
    for ns, veth, ips in ((NS_A, VETH_A, [NODE_A_IP]), (NS_B, VETH_B, [NODE_B_IP, *BACKEND_IPS])):
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", veth, "master", BRIDGE, "up")
        sh("ip", "link", "set", "lo", "up", netns=ns)
        for ip in ips:
            sh("ip", "addr", "add", f"{ip}/24", "dev", "eth0", netns=ns)
        sh("ip", "link", "set", "eth0", "up", netns=ns)


def _start_backend(i: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", NS_B, sys.executable, "-m", "rap.localcluster.backend", "--host", BACKEND_IPS[i],
         "--port", str(BACKEND_PORT), "--name", f"be-{i}", "--node", "node-b", "--cpu-ms", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    line = proc.stdout.readline()  # the backend prints one line once it listens
    if "listening" not in line:
        proc.kill()
        raise RuntimeError(f"backend be-{i} did not start: {line}{proc.stdout.read()}")
    return proc


@contextlib.contextmanager
def lab():
    _remove_lab()  # a killed earlier run with the same pid
    backends: list[subprocess.Popen] = []
    try:
        _make_lab()
        backends.extend(_start_backend(i) for i in range(len(BACKEND_IPS)))
        yield backends
    finally:
        for p in backends:
            if p.poll() is None:
                p.kill()
            p.wait(10)
        _remove_lab()


@contextlib.contextmanager
def proxier(policy):
    """A Proxier with real rules in namespace a, serving the three backends as one Service."""
    loop = NetnsLoop(NS_A)
    rules = Iptables()
    prox = Proxier(policy, NODE_A_IP, rules)
    try:
        loop.call(lambda: _setup(prox, rules))
        yield prox, loop
    finally:
        loop.call(prox.close)
        loop.stop()


async def _setup(prox: Proxier, rules: Iptables) -> None:
    rules.setup()  # forks iptables from the loop thread, so inside namespace a
    eps = tuple(Endpoint(ip, BACKEND_PORT, "node-b") for ip in BACKEND_IPS)
    await prox.sync([PortSpec(SERVICE, CLUSTER_IP, SERVICE_PORT, endpoints=eps)])


def get_pod(timeout: float = 5) -> str:
    """One HTTP request on a new connection to the ClusterIP; the answering backend's name."""
    conn = http.client.HTTPConnection(CLUSTER_IP, SERVICE_PORT, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        return resp.getheader("X-Pod")
    finally:
        conn.close()


def requests(n: int) -> list[str]:
    return in_netns(NS_A, lambda: [get_pod() for _ in range(n)])


def nat_rules(ns: str) -> str:
    return sh("iptables-save", "-t", "nat", netns=ns)


# -- tests --


def test_round_robin_spreads_evenly_through_real_dnat():
    with lab(), proxier(make_policy("round-robin", shuffle=False)) as (prox, _):
        port = prox.proxy_port(SERVICE)
        rules = nat_rules(NS_A)
        assert f"-d {CLUSTER_IP}/32 -p tcp -m tcp --dport 80" in rules
        assert f"--to-destination {NODE_A_IP}:{port}" in rules
        assert Counter(requests(30)) == {"be-0": 10, "be-1": 10, "be-2": 10}


def test_rap_avoids_an_overloaded_backend():
    policy = make_policy("rap", local_node="node-a", shuffle=False)
    with lab(), proxier(policy):
        now = time.monotonic()  # the proxier's clock, so the samples are fresh
        policy.update_snapshot(Snapshot(
            pods={BACKEND_IPS[0]: Usage(0.95, 0.1, now), BACKEND_IPS[1]: Usage(0.1, 0.1, now),
                  BACKEND_IPS[2]: Usage(0.1, 0.1, now)},
            nodes={"node-a": Usage(0.1, 0.1, now), "node-b": Usage(0.2, 0.2, now)},
        ))
        counts = Counter(requests(30))
        assert counts == {"be-1": 15, "be-2": 15}, counts


def test_killed_backend_loses_no_new_connection():
    with lab() as backends, proxier(make_policy("round-robin", shuffle=False)):
        log: list[tuple[float, float, str | None]] = []  # (start, end, pod or None on failure)
        killed_at: list[float] = []

        def client():
            for _ in range(90):  # bounded: ~30 before the kill, the rest after
                start = time.monotonic()
                try:
                    pod = get_pod()
                except Exception:  # noqa: BLE001 - counted below
                    pod = None
                log.append((start, time.monotonic(), pod))

        worker = threading.Thread(target=lambda: in_netns(NS_A, client, timeout=120), daemon=True)
        worker.start()
        deadline = time.monotonic() + 30
        while len(log) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        backends[1].send_signal(signal.SIGKILL)  # ip netns exec execs, so this is the backend itself
        backends[1].wait(10)
        killed_at.append(time.monotonic())
        worker.join(120)
        assert not worker.is_alive()
        after = [pod for start, _, pod in log if start > killed_at[0]]
        assert len(after) >= 30, "the client finished before the kill took effect"
        assert None not in after, "a new connection after the kill was lost"
        assert set(after) == {"be-0", "be-2"}
        assert sum(pod is None for *_, pod in log) <= 1  # at most the one in flight at the kill


def test_everything_is_removed_afterwards():
    with pytest.raises(RuntimeError, match="boom"):
        with lab(), proxier(make_policy("least-request")):
            assert "RAP-PYPROXY-HOST" in nat_rules(NS_A)
            assert len(set(requests(6))) >= 1
            raise RuntimeError("boom")  # a failing test must clean up as well
    assert NS_A not in sh("ip", "netns", "list") and NS_B not in sh("ip", "netns", "list")
    for link in (BRIDGE, VETH_A, VETH_B):
        assert sh("ip", "link", "show", link, check=False) == ""


def test_proxier_close_removes_its_rules():
    with lab():
        with proxier(make_policy("round-robin")):
            assert "rap-local" in nat_rules(NS_A)
        rules = nat_rules(NS_A)
        assert "rap-local" not in rules and "RAP-PYPROXY" not in rules
        # with the rules gone the ClusterIP answers nothing: nothing else served it
        with pytest.raises(OSError):
            in_netns(NS_A, lambda: get_pod(timeout=1))


def test_stale_rules_of_a_crashed_run_are_replaced():
    with lab():
        for chain, parent in (("RAP-PYPROXY-HOST", "OUTPUT"), ("RAP-PYPROXY-CONTAINER", "PREROUTING")):
            sh("iptables", "-t", "nat", "-N", chain, netns=NS_A)
            for _ in range(2):  # a crash loop can leave the jump more than once
                sh("iptables", "-t", "nat", "-A", parent, "-m", "comment", "--comment", "rap-local", "-j", chain, netns=NS_A)
            sh("iptables", "-t", "nat", "-A", chain, "-d", "10.218.0.201/32", "-p", "tcp", "-j", "DNAT",
               "--to-destination", f"{NODE_A_IP}:1", netns=NS_A)
        with proxier(make_policy("round-robin")):
            rules = nat_rules(NS_A)
            assert "10.218.0.201" not in rules
            assert rules.count("-j RAP-PYPROXY-HOST") == 1 and rules.count("-j RAP-PYPROXY-CONTAINER") == 1
            assert len(requests(3)) == 3
        assert "rap-local" not in nat_rules(NS_A)
