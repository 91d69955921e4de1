"""Running the delay: NFQUEUE rules in each node's namespace and one delayer process per node.

``apply`` starts the delayers and adds their rules, ``remove`` takes both away
again (also after an interrupted start). Commands go through the local
cluster's shell helpers (rap.localcluster.sh) and stopping goes through its
process helpers (rap.localcluster.procs). Not here: what the rules are
(rap.localcluster.netdelay.rules) or building the binary (.build).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from rap.localcluster import procs, sh
from rap.localcluster.netdelay.build import BINARY_NAME, build_netdelay
from rap.localcluster.netdelay.errors import NetDelayError
from rap.localcluster.netdelay.rules import (CHAIN, DEFAULT_MAX_QUEUE, NodeAddr, QueueRule, delayer_argv,
                                             iptables_install_cmds, iptables_remove_cmds, plan)

STOP_TIMEOUT = 5.0  # seconds per signal: SIGTERM, then SIGKILL

def check_support() -> None:
    """Raise NetDelayError naming what is missing: root, iptables, or the kernel's nfnetlink_queue."""
    if os.geteuid() != 0:
        raise NetDelayError("netdelay needs root (network namespaces, iptables, NFQUEUE)")
    try:
        for tool, pkg in (("ip", "iproute2"), ("iptables", "iptables")):
            sh.require_tool(tool, pkg)
    except sh.ToolError as exc:
        raise NetDelayError(str(exc)) from None
    if not (Path("/sys/module/nfnetlink_queue").exists() or Path("/proc/net/netfilter/nfnetlink_queue").exists()):
        sh.quiet(["modprobe", "nfnetlink_queue"])
        if not Path("/sys/module/nfnetlink_queue").exists():
            raise NetDelayError("the kernel lacks nfnetlink_queue (CONFIG_NETFILTER_NETLINK_QUEUE), "
                                "which the user-space delay needs; `modprobe nfnetlink_queue` failed")


def install_rules(node: NodeAddr, rules: Sequence[QueueRule], bypass: bool = False,
                  direction: str = "ingress") -> None:
    """Add the NFQUEUE rules in the node's namespace (replacing any left from before)."""
    remove_rules(node)
    try:
        for cmd in iptables_install_cmds(node, rules, bypass=bypass, direction=direction):
            sh.run(cmd, netns=node.namespace)
    except sh.ToolError as exc:
        remove_rules(node)
        if "NFQUEUE" in str(exc):
            raise NetDelayError(f"{exc}\n(the iptables NFQUEUE target is missing from this kernel?)") from None
        raise NetDelayError(str(exc)) from None


def remove_rules(node: NodeAddr) -> bool:
    """Remove the chain and its jumps; True if something was removed. Quiet if the namespace is gone."""
    removed = False
    jumps, chain = iptables_remove_cmds(node)[:2], iptables_remove_cmds(node)[2:]
    for cmd in jumps:
        for _ in range(16):  # every copy of the jump, bounded
            if not sh.quiet(cmd, netns=node.namespace):
                break
            removed = True
    for cmd in chain:
        removed = sh.quiet(cmd, netns=node.namespace) or removed
    return removed


def start_delayer(node: NodeAddr, rules: Sequence[QueueRule], *, log_path: Path | str,
                  binary: Path | str | None = None, env: Mapping[str, str] | None = None,
                  ready_timeout: float = 10.0, max_queue: int = DEFAULT_MAX_QUEUE) -> subprocess.Popen:
    """Start netdelay in the node's namespace, detached (own session), output to log_path.

    Returns once it has bound every queue (its "ready" line); raises
    NetDelayError with its output if it exits or is not ready in time. The
    Popen's pid is netdelay's own (``ip netns exec`` execs it).
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = ["ip", "netns", "exec", node.namespace, *delayer_argv(rules, binary, max_queue)]
    with open(log_path, "ab") as log:
        start_at = log.tell()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, start_new_session=True)
    deadline = time.monotonic() + ready_timeout
    while True:
        with open(log_path, "rb") as f:
            f.seek(start_at)
            text = f.read().decode(errors="replace")
        if f"ready pid={proc.pid} " in text:
            return proc
        if proc.poll() is not None:
            raise NetDelayError(f"netdelay in {node.namespace} exited ({proc.returncode}) before it was ready: "
                                f"{text.strip() or '(no output)'}")
        if time.monotonic() > deadline:
            stop_delayer(proc)
            raise NetDelayError(f"netdelay in {node.namespace} not ready within {ready_timeout:g}s: "
                                f"{text.strip() or '(no output)'}")
        time.sleep(0.02)


def _is_delayer(pid: int) -> bool:
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    return Path(argv0.decode(errors="replace")).name == BINARY_NAME


def stop_delayer(proc: subprocess.Popen | int, timeout: float = STOP_TIMEOUT) -> int | None:
    """SIGTERM (held packets are accepted at once), SIGKILL after ``timeout``.

    Takes the Popen or a recorded pid; a pid that is no longer a netdelay
    process (exited, reused) is left alone. Returns the Popen's exit code;
    a pid is stopped (and reaped, if it is this process's child) by
    ``procs.terminate``, which keeps no exit code, so that returns None.
    """
    if isinstance(proc, subprocess.Popen):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait(timeout)
        return proc.returncode
    if _is_delayer(int(proc)):
        procs.terminate([int(proc)], timeout)
    return None


def find_delayers(namespace: str) -> list[int]:
    """netdelay processes running in a namespace (for clean-up after an interrupted start)."""
    out = sh.run(["ip", "netns", "pids", namespace], check=False)
    return [int(p) for p in out.split() if p.isdigit() and _is_delayer(int(p))]


def apply(rtts: Mapping[tuple[int, int], float], nodes: Sequence[NodeAddr], *, log_dir: Path | str,
          binary: Path | str | None = None, env: Mapping[str, str] | None = None,
          bypass: bool = False, direction: str = "ingress") -> dict[str, int]:
    """Delay every pair in ``rtts``: build, start one delayer per node that needs one, add the rules.

    Returns ``{namespace: pid}`` for the cluster's state file. Each delayer is
    bound before its rules exist, so no packet waits on an unbound queue. On
    any failure everything this call added is removed again.
    """
    wanted = plan(rtts, nodes)
    if not wanted:
        return {}
    check_support()
    binary = binary or build_netdelay()
    by_index = {n.index: n for n in nodes}
    started: dict[str, subprocess.Popen] = {}
    try:
        for i, rules in sorted(wanted.items()):
            node = by_index[i]
            started[node.namespace] = start_delayer(node, rules, binary=binary, env=env,
                                                    log_path=Path(log_dir) / f"netdelay-{node.namespace}.log")
            install_rules(node, rules, bypass=bypass, direction=direction)
    except BaseException:
        remove([by_index[i] for i in wanted], [p.pid for p in started.values()])
        for p in started.values():
            stop_delayer(p)
        raise
    return {ns: p.pid for ns, p in started.items()}


def remove(nodes: Sequence[NodeAddr], pids: Iterable[int] = ()) -> list[str]:
    """Remove the rules from every node, then stop the delayers (recorded pids and any found running).

    Safe to call twice, after a failed ``apply`` and when namespaces are
    already gone. Returns what it removed, for local-down's report.
    """
    removed: list[str] = []
    pids = set(pids)
    for node in nodes:
        if remove_rules(node):
            removed.append(f"iptables mangle {CHAIN} in {node.namespace}")
        pids.update(find_delayers(node.namespace))
    delayers = sorted(pid for pid in pids if _is_delayer(pid))
    procs.terminate(delayers, STOP_TIMEOUT)  # side by side: SIGTERM to all, SIGKILL to what is left
    removed += [f"netdelay pid {pid}" for pid in delayers]
    return removed
