"""Faults injected into a running local cluster, for the fault tests (tests/e2e/test_faults.py).

Each helper makes one fault real, checks that it took (a fault that silently did not happen would
measure nothing), and says when it began and ended on ``time.monotonic()``'s clock, which the load
generator's samples are placed on too:

- ``node_unreachable(i)``: every packet into or out of node i's namespace dropped (not refused, not
  delayed), its Endpoints left as they are; undone on leaving the ``with``.
- ``restart_apiserver(down_s)``: kube-apiserver stopped, ``down_s`` seconds later started again with
  the very argv it ran with, until it is ready.
- ``restart_proxy(i)``: node i's proxy stopped and started again with the same argv and RAP settings,
  as a DaemonSet pod's restart would.
- ``churn(nodes, ticks)``: a rolling replacement, one pod added and the oldest one of its node removed
  every second, through ``cluster.add_pod`` / ``cluster.remove_pod``.

Not here: the load and the counting (the tests), nor the cluster's own lifecycle (``cluster``). The
metrics server's own switches (failing, slow) are ``metrics.control``'s.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from rap.errors import UserError
from rap.localcluster import cluster, procs, state
from rap.localcluster import config as cfg
from rap.localcluster.pki import Pki
from rap.localcluster.sh import run

# The raw table runs before conntrack and before any chain kube-proxy or netdelay writes, so nothing
# they insert can let a packet past the drop.
_DROP_RULES = (("PREROUTING", "-j", "DROP"), ("OUTPUT", "-j", "DROP"))
_COMMENT = ("-m", "comment", "--comment", "rap-fault-unreachable")
APISERVER = "kube-apiserver"


class FaultError(UserError, RuntimeError):
    """A fault could not be injected or undone; the message names what and the fix."""


@dataclass
class Marks:
    """When a fault began (``onset``) and was undone (``end``), monotonic seconds. ``lost`` holds each
    backend the fault took away and the span over which it went (a removed pod: while ``remove_pod``
    ran; a dropped node: the instant of the drop): a connection in flight to it then may fail through
    no fault of any proxy."""

    onset: float = 0.0
    end: float | None = None
    lost: list[tuple[str, float, float]] = field(default_factory=list)  # (what, from, to)


@contextlib.contextmanager
def node_unreachable(i: int, runtime: Path | None = None) -> Iterator[Marks]:
    """Node i drops every IPv4 packet it would receive, forward or send, until the ``with`` ends."""
    runtime = _live(runtime)
    ns, ip = cfg.node_netns(i), cfg.node_ip(i)
    marks = Marks()
    added = []
    try:
        for chain, *rule in _DROP_RULES:
            run(["iptables", "-w", "5", "-t", "raw", "-I", chain, "1", *_COMMENT, *rule], netns=ns)
            added.append((chain, rule))
        marks.onset = time.monotonic()
        marks.lost.append((f"node-{i}", marks.onset, marks.onset))
        if _answers(ip, cluster.RTT_PORT, 1.0) is not False:
            raise FaultError(f"node-{i} ({ip}) still answers with its traffic dropped; "
                             f"see `ip netns exec {ns} iptables -t raw -S`")
        yield marks
    finally:
        for chain, rule in added:
            run(["iptables", "-w", "5", "-t", "raw", "-D", chain, *_COMMENT, *rule], netns=ns)
        marks.end = time.monotonic()
    if added and not _wait(lambda: _answers(ip, cluster.RTT_PORT, 1.0), 10):
        raise FaultError(f"node-{i} ({ip}) does not answer after its drop rules were removed; "
                         "run `invoke local-down` and start again")


def restart_apiserver(down_s: float, runtime: Path | None = None, ready_s: float = 90) -> Marks:
    """Stop kube-apiserver, wait ``down_s``, start it again with its own argv; back once /readyz is 200."""
    runtime = _live(runtime)
    pid = _recorded(runtime, APISERVER)
    argv = _cmdline(pid)
    if not argv or not Path(argv[0]).name.startswith("kube-apiserver"):
        raise FaultError(f"pid {pid} recorded as {APISERVER} runs {argv[:1]}; run `invoke local-down`")
    ready = _readyz(runtime)
    marks = Marks(onset=time.monotonic())
    procs.stop(runtime, APISERVER)
    if ready() is not False:
        raise FaultError(f"{APISERVER} still answers after it was stopped")
    time.sleep(max(0.0, marks.onset + down_s - time.monotonic()))
    procs.start(runtime, APISERVER, argv)
    if not _wait(ready, ready_s):
        raise FaultError(f"{APISERVER} not ready {ready_s:.0f}s after its restart; see "
                         f"{procs.log_path(runtime, APISERVER)}")
    marks.end = time.monotonic()
    return marks


def restart_proxy(i: int, runtime: Path | None = None) -> Marks:
    """Stop node i's proxy and start it again with the same argv and RAP_* environment."""
    runtime = _live(runtime)
    name = f"proxy-{i}"
    pid = _recorded(runtime, name)
    argv, env = _cmdline(pid), _rap_environ(pid)
    marks = Marks(onset=time.monotonic())
    procs.stop(runtime, name)
    if procs.alive(pid):
        raise FaultError(f"{name} (pid {pid}) outlived SIGTERM and SIGKILL")
    new = procs.start(runtime, name, argv, netns=cfg.node_netns(i), env=env)
    cluster.join_node_cgroup(i, new)
    marks.end = time.monotonic()
    return marks


def churn(nodes: tuple[int, ...], ticks: int, every_s: float = 1.0, runtime: Path | None = None) -> Marks:
    """Every ``every_s``, on the next of ``nodes`` in turn: add a pod, then remove that node's oldest.

    Each removal is kept in ``lost``: connections in flight to that pod while ``remove_pod`` ran
    (it updates the Endpoints, then stops the pod) may fail through no fault of the proxy.
    """
    runtime = _live(runtime)
    marks = Marks(onset=time.monotonic())
    for tick in range(ticks):
        time.sleep(max(0.0, marks.onset + tick * every_s - time.monotonic()))
        node = nodes[tick % len(nodes)]
        cluster.add_pod(node, runtime)
        oldest = next(p for p in cluster.current(runtime).pods if p["node"] == cfg.node_name(node))
        began = time.monotonic()
        cluster.remove_pod(oldest["name"], runtime)
        marks.lost.append((oldest["name"], began, time.monotonic()))
    marks.end = time.monotonic()
    return marks


def _live(runtime: Path | None) -> Path:
    runtime = runtime or state.runtime_dir()
    st = state.load(runtime)
    if st is None or st.phase != "up":
        raise FaultError(f"no local cluster is up in {runtime}: start one with `invoke local-up`")
    return runtime


def _recorded(runtime: Path, name: str) -> int:
    pid = procs.recorded(runtime).get(name)
    if pid is None or not procs.alive(pid):
        raise FaultError(f"{name} is not running (pid {pid}); see {procs.log_path(runtime, name)}")
    return pid


def _cmdline(pid: int) -> list[str]:
    # `ip netns exec` execs the command, so a node's proxy pid holds the proxy's own argv.
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [a.decode() for a in raw.split(b"\0") if a]


def _rap_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (entry.decode().partition("=") for entry in raw.split(b"\0") if entry)
    return {k: v for k, _, v in pairs if k.startswith("RAP_")}


def _answers(ip: str, port: int, timeout: float) -> bool | None:
    """True: connected or refused (a round trip happened); False: timed out; None: another error."""
    try:
        socket.create_connection((ip, port), timeout).close()
        return True
    except ConnectionRefusedError:
        return True
    except (socket.timeout, TimeoutError):
        return False
    except OSError:
        return None


def _readyz(runtime: Path):
    """A check of kube-apiserver's /readyz: True ready, False unreachable, None answering but not ready."""
    st = state.load(runtime)
    keys = Pki(runtime / "pki")
    ctx = ssl.create_default_context(cafile=str(keys.path("ca.crt")))
    ctx.load_cert_chain(str(keys.path("admin.crt")), str(keys.path("admin.key")))
    url = f"{st.api_url}/readyz"

    def ready() -> bool | None:
        try:
            with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
                return resp.status == 200 or None
        except urllib.error.HTTPError:
            return None
        except (urllib.error.URLError, OSError):
            return False

    return ready


def _wait(predicate, timeout: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False
