"""End-to-end: netdelay really delays traffic between network namespaces, and by how much.

Builds three namespaces of its own (names ``rndt<pid>-n<i>``, links
``rndt<pid>b`` / ``rndt<pid>v<i>``, addresses 10.219.0.0/24 for the "nodes" and
10.219.<i>.0/24 for their "pods"; the bridge has no address, so nothing is
reachable from or routed to the root namespace), runs a TCP echo server in each
and measures TCP connect time and a one-byte request/response round trip from
the others: without delay, with configured RTTs, after the delayer is killed
(fail closed by default; fail open with bypass on) and after everything is removed.

Needs root. Run: ``python3 -m pytest -m e2e tests/e2e/test_netdelay.py -s``
(-s prints the measured figures).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rap.localcluster import netdelay as nd

pytestmark = pytest.mark.e2e

PORT = 7070
SAMPLES = 15

SERVER = r"""
import socket, sys, threading, time
deadline = time.monotonic() + float(sys.argv[2])   # never outlive the test run
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(256); s.settimeout(1.0)
def serve(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); c.settimeout(30)
    try:
        first = c.recv(65536)
        if first[:1] == b"b":            # bulk: swallow until EOF, then say how much
            n = len(first)
            while True:
                d = c.recv(1 << 20)
                if not d: break
                n += len(d)
            c.sendall(str(n).encode())
        else:                            # ping: echo everything
            d = first
            while d:
                c.sendall(d); d = c.recv(65536)
    except OSError:
        pass
    finally:
        c.close()
while time.monotonic() < deadline:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

CLIENT = r"""
import json, socket, sys, time
host, port, n, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
out = {"connect_ms": [], "rr_ms": [], "errors": []}
for _ in range(n):
    try:
        t0 = time.perf_counter()
        s = socket.create_connection((host, port), timeout=timeout)
        t1 = time.perf_counter()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"p"); got = s.recv(1)
        t2 = time.perf_counter()
        s.close()
        if got != b"p": raise OSError("bad echo %r" % got)
        out["connect_ms"].append((t1 - t0) * 1e3); out["rr_ms"].append((t2 - t1) * 1e3)
    except OSError as e:
        out["errors"].append(repr(e))
print(json.dumps(out))
"""

BULK = r"""
import json, socket, sys, time
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port), timeout=30)
buf = b"b" * (1 << 20)
t0 = time.perf_counter(); left = size
while left > 0:
    left -= s.send(buf[:min(left, len(buf))])
s.shutdown(socket.SHUT_WR)
got = int(s.recv(64)); t1 = time.perf_counter()
print(json.dumps({"bytes": got, "seconds": t1 - t0}))
"""


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    return proc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _sweep_stale() -> None:
    """Remove what an earlier, killed run of this test left (its pid is gone)."""
    for line in sh("ip", "netns", "list", check=False).stdout.splitlines():
        m = re.fullmatch(r"rndt(\d+)-n\d+", line.split()[0]) if line.strip() else None
        if m and not _pid_alive(int(m.group(1))):
            _delete_ns(line.split()[0])
    for line in sh("ip", "-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        m = re.fullmatch(r"rndt(\d+)[bv]\d*", name)
        if m and not _pid_alive(int(m.group(1))):
            sh("ip", "link", "del", name, check=False)


def _delete_ns(ns: str) -> None:
    for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    sh("ip", "netns", "del", ns, check=False)


class Net:
    """Three namespaces on one bridge, an echo server in each; ``nodes`` for netdelay."""

    def __init__(self, tmp: Path):
        self.prefix = f"rndt{os.getpid()}"
        self.bridge = f"{self.prefix}b"
        self.tmp = tmp
        self.nodes = [nd.NodeAddr(i, f"{self.prefix}-n{i}", f"10.219.0.{10 + i}", f"10.219.{i}.0/24")
                      for i in (1, 2, 3)]
        self.servers: list[subprocess.Popen] = []

    def pod_ip(self, i: int) -> str:
        return f"10.219.{i}.10"

    def up(self) -> None:
        assert len(self.bridge) <= 15
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "link", "set", self.bridge, "up")
        for n in self.nodes:
            veth = f"{self.prefix}v{n.index}"
            sh("ip", "netns", "add", n.namespace)
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", n.namespace)
            sh("ip", "link", "set", veth, "master", self.bridge, "up")
            ex = ("ip", "netns", "exec", n.namespace)
            sh(*ex, "ip", "link", "set", "lo", "up")
            sh(*ex, "ip", "addr", "add", f"{n.ip}/24", "dev", "eth0")
            sh(*ex, "ip", "link", "set", "eth0", "up")
            sh(*ex, "ip", "addr", "add", f"{self.pod_ip(n.index)}/32", "dev", "lo")  # a "pod" address
            for o in self.nodes:
                if o.index != n.index:
                    sh(*ex, "ip", "route", "add", o.pod_cidr, "via", o.ip)
        for n in self.nodes:
            self.servers.append(subprocess.Popen(
                ["ip", "netns", "exec", n.namespace, sys.executable, "-c", SERVER, str(PORT), "900"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for a, b in ((1, 2), (2, 3), (3, 1)):  # every server answers (bounded wait)
            deadline = time.monotonic() + 10
            while True:
                res = self.probe(a, self.nodes[b - 1].ip, n=1, timeout=1)
                if not res["errors"]:
                    break
                assert time.monotonic() < deadline, f"echo server in node {b} not up: {res}"
                time.sleep(0.1)

    def down(self) -> None:
        nd.remove(self.nodes)
        for p in self.servers:
            p.kill()
            p.wait(5)
        for n in self.nodes:
            _delete_ns(n.namespace)
        for n in self.nodes:
            sh("ip", "link", "del", f"{self.prefix}v{n.index}", check=False)
        sh("ip", "link", "del", self.bridge, check=False)

    def probe(self, src: int, host: str, n: int = SAMPLES, timeout: float = 5.0) -> dict:
        out = sh("ip", "netns", "exec", self.nodes[src - 1].namespace, sys.executable, "-c", CLIENT,
                 host, str(PORT), str(n), str(timeout)).stdout
        return json.loads(out)

    def bulk(self, src: int, dst: int, size: int) -> float:
        """MB/s of one TCP stream from node src to node dst."""
        out = sh("ip", "netns", "exec", self.nodes[src - 1].namespace, sys.executable, "-c", BULK,
                 self.nodes[dst - 1].ip, str(PORT), str(size)).stdout
        res = json.loads(out)
        assert res["bytes"] == size
        return size / res["seconds"] / 1e6

    def rules(self, i: int) -> str:
        return sh("ip", "netns", "exec", self.nodes[i - 1].namespace, "iptables-save", "-t", "mangle").stdout


def summary(res: dict) -> dict:
    assert not res["errors"], res["errors"]
    c, r = res["connect_ms"], res["rr_ms"]
    return {"connect_med": statistics.median(c), "connect_min": min(c), "connect_max": max(c),
            "rr_med": statistics.median(r), "rr_min": min(r), "rr_max": max(r),
            "connect_stdev": statistics.pstdev(c)}


def show(label: str, s: dict) -> None:
    print(f"\n[netdelay] {label}: connect median {s['connect_med']:.2f} ms "
          f"(min {s['connect_min']:.2f}, max {s['connect_max']:.2f}, stdev {s['connect_stdev']:.2f}); "
          f"request/response median {s['rr_med']:.2f} ms (min {s['rr_min']:.2f}, max {s['rr_max']:.2f})")


def assert_rtt(s: dict, configured: float) -> None:
    for key in ("connect_med", "rr_med"):
        assert 0.9 * configured <= s[key] <= configured + 15, f"{key}={s[key]:.2f} ms vs RTT {configured} ms: {s}"


FAST_MS = 10.0  # an undelayed connect/round trip on this path takes well under 1 ms; 10 allows a loaded machine


@pytest.fixture(scope="module")
def binary() -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, iptables, NFQUEUE)")
    for tool in ("ip", "iptables", "iptables-save"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    nd.check_support()
    return nd.build_netdelay()


@pytest.fixture(scope="module")
def net(binary, tmp_path_factory, request) -> Net:
    _sweep_stale()
    net = Net(tmp_path_factory.mktemp("netdelay"))
    request.addfinalizer(net.down)  # registered first: cleans up even if up() fails half-way
    net.up()
    return net


@pytest.fixture
def clean(net):
    """Each test starts and ends with no delay installed."""
    nd.remove(net.nodes)
    yield net
    nd.remove(net.nodes)
    for n in net.nodes:
        assert nd.CHAIN not in net.rules(n.index)
        assert nd.find_delayers(n.namespace) == []


def test_no_delay_is_fast(clean):
    s = summary(clean.probe(1, clean.nodes[1].ip))
    show("no delay, node 1 -> node 2", s)
    assert s["connect_med"] < FAST_MS and s["rr_med"] < FAST_MS


def test_configured_rtt_is_measured(clean, binary):
    net = clean
    pids = nd.apply({(1, 2): 40.0, (2, 3): 10.0}, net.nodes, log_dir=net.tmp, binary=binary)
    assert set(pids) == {net.nodes[0].namespace, net.nodes[1].namespace, net.nodes[2].namespace}
    assert "--queue-num 102" in net.rules(1) and "--queue-bypass" not in net.rules(1)  # fail closed

    s = summary(net.probe(1, net.nodes[1].ip))
    show("RTT 40 ms, node 1 -> node 2", s)
    assert_rtt(s, 40.0)

    s = summary(net.probe(2, net.nodes[0].ip))
    show("RTT 40 ms, node 2 -> node 1", s)
    assert_rtt(s, 40.0)

    s = summary(net.probe(1, net.pod_ip(2)))
    show("RTT 40 ms, node 1 -> pod address of node 2", s)
    assert_rtt(s, 40.0)

    s = summary(net.probe(3, net.nodes[1].ip))
    show("RTT 10 ms, node 3 -> node 2", s)
    assert_rtt(s, 10.0)

    s = summary(net.probe(1, net.nodes[2].ip))
    show("no delay configured, node 1 -> node 3", s)
    assert s["connect_med"] < FAST_MS and s["rr_med"] < FAST_MS

    removed = nd.remove(net.nodes, pids.values())
    assert sum("netdelay pid" in r for r in removed) == 3
    assert sum(nd.CHAIN in r for r in removed) == 3
    assert nd.remove(net.nodes, pids.values()) == []  # a second remove finds nothing
    s = summary(net.probe(1, net.nodes[1].ip))
    show("after remove, node 1 -> node 2", s)
    assert s["connect_med"] < FAST_MS


def test_with_bypass_a_killed_delayer_fails_open(clean, binary):
    net = clean
    pids = nd.apply({(1, 2): 40.0}, net.nodes, log_dir=net.tmp, binary=binary, bypass=True)
    assert summary(net.probe(1, net.nodes[1].ip, n=3))["connect_med"] >= 36
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
        nd.stop_delayer(pid)  # reaps it (it is this process's child)
    for n in net.nodes:
        assert nd.find_delayers(n.namespace) == []
    assert "NFQUEUE" in net.rules(1)  # the rules are still there ...
    s = summary(net.probe(1, net.nodes[1].ip))  # ... and traffic flows, undelayed
    show("delayers killed (fail open), node 1 -> node 2", s)
    assert s["connect_med"] < FAST_MS


def test_by_default_a_killed_delayer_fails_closed(clean, binary):
    net = clean
    pids = nd.apply({(1, 2): 40.0}, net.nodes, log_dir=net.tmp, binary=binary)
    assert "--queue-bypass" not in net.rules(1)
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
        nd.stop_delayer(pid)
    res = net.probe(1, net.nodes[1].ip, n=2, timeout=1.0)  # delayed pair: dropped, not fast
    assert res["errors"] and not res["connect_ms"], res
    fast = summary(net.probe(1, net.nodes[2].ip, n=3))  # a pair with no delay is untouched
    assert fast["connect_med"] < FAST_MS


def test_sigterm_exits_cleanly_with_counts(clean, binary):
    net = clean
    rules = nd.plan({(1, 2): 40.0}, net.nodes)
    log = net.tmp / "sigterm.log"
    proc = nd.start_delayer(net.nodes[0], rules[1], log_path=log, binary=binary)
    nd.install_rules(net.nodes[0], rules[1])
    summary(net.probe(1, net.nodes[1].ip, n=3))
    nd.remove_rules(net.nodes[0])
    assert nd.stop_delayer(proc) == 0
    text = log.read_text()
    assert "exit signal=terminated" in text
    m = re.search(r"queue=102 delay=20ms seen=(\d+) released=(\d+) overflow=0", text)
    assert m and int(m.group(1)) == int(m.group(2)) >= 3 * 3, text


def test_bad_rule_is_a_clear_error(clean, binary, tmp_path):
    bad = nd.QueueRule(2, 102, 20_000_000, ("10.219.0.12/32",))  # 20 s: over netdelay's limit
    with pytest.raises(nd.NetDelayError, match=r"exited \(2\) before it was ready.*delay"):
        nd.start_delayer(clean.nodes[0], [bad], log_path=tmp_path / "bad.log", binary=binary)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_throughput_and_per_packet_cost(clean, binary):
    """One TCP stream node 1 -> node 3: no queue, a zero-delay queue on both sides, RTT 10 ms."""
    net = clean
    size = 64 << 20
    base = max(net.bulk(1, 3, size) for _ in range(2))

    rules = {1: [nd.QueueRule(3, 103, 0, net.nodes[2].addresses())],
             3: [nd.QueueRule(1, 101, 0, net.nodes[0].addresses())]}
    procs = {i: nd.start_delayer(net.nodes[i - 1], r, log_path=net.tmp / f"tp{i}.log", binary=binary)
             for i, r in rules.items()}
    for i, r in rules.items():
        nd.install_rules(net.nodes[i - 1], r)
    cpu0 = {i: _cpu_seconds(p.pid) for i, p in procs.items()}
    queued = max(net.bulk(1, 3, size) for _ in range(2))
    cpu = sum(_cpu_seconds(p.pid) - cpu0[i] for i, p in procs.items())
    for i in rules:
        nd.remove_rules(net.nodes[i - 1])
    for p in procs.values():
        assert nd.stop_delayer(p) == 0
    seen = 0
    for i in rules:
        seen += sum(int(x) for x in re.findall(r"seen=(\d+)", (net.tmp / f"tp{i}.log").read_text()))
    print(f"\n[netdelay] one TCP stream, {size >> 20} MiB: {base:.0f} MB/s without NFQUEUE, "
          f"{queued:.0f} MB/s through a zero-delay queue on both sides "
          f"({seen} packets queued incl. warm-up, {cpu:.2f} s netdelay CPU, "
          f"{cpu / max(seen, 1) * 1e6:.1f} us CPU per packet)")

    pids = nd.apply({(1, 3): 10.0}, net.nodes, log_dir=net.tmp, binary=binary)
    delayed = max(net.bulk(1, 3, 32 << 20) for _ in range(2))
    nd.remove(net.nodes, pids.values())
    # The same on the senders' egress: TCP Small Queues counts held packets
    # against the socket, so the stream crawls (why the default is ingress).
    pids = nd.apply({(1, 3): 10.0}, net.nodes, log_dir=net.tmp, binary=binary, direction="egress")
    egress = net.bulk(1, 3, 1 << 20)
    nd.remove(net.nodes, pids.values())
    print(f"[netdelay] one TCP stream, RTT 10 ms: {delayed:.0f} MB/s delayed on ingress (the default), "
          f"{egress:.1f} MB/s delayed on egress")
    assert queued > 5 and delayed > 5 * egress
