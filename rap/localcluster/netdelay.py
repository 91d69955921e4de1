"""Inter-node round-trip time for the local cluster, emulated in user space.

This kernel has no ``netem`` (``tc qdisc ... netem delay`` is unavailable), so
delay is added by a small Go program, ``netdelay`` (source beside this file),
through NFQUEUE: in each node namespace, iptables sends the packets that arrive
on ``eth0`` from another node (from its node IP or its pod CIDR) to one NFQUEUE
queue per peer node, and ``netdelay`` holds each packet for the configured
one-way delay before it accepts it. Every packet is delayed, TCP SYN and
SYN-ACK included, so a TCP connect between nodes takes the configured RTT.

An RTT ``R`` between nodes ``a`` and ``b`` becomes ``R/2`` on ``a``'s ingress
from ``b`` and ``R/2`` on ``b``'s ingress from ``a``. Ingress rather than
egress: a packet held on its sender's egress still counts against the sending
socket's TCP Small Queues budget, which throttles a delayed stream to a few
packets per RTT; ``direction="egress"`` exists to show it (docs/netdelay.md).

Failure mode: fail open. The rules carry ``--queue-bypass``, so while no
``netdelay`` is bound to a queue (not started yet, crashed, killed) packets pass
undelayed; only packets held at the instant it dies are lost (TCP resends them).

The API the cluster uses::

    rtts  = parse_rtt(["node-2=40ms", "node-1:node-3=80ms"], nodes=3)  # {(1, 2): 40.0, (1, 3): 80.0}
    nodes = [NodeAddr(i, f"rap-node-{i}", f"10.213.0.{10 + i}", f"10.214.{i}.0/24") for i in (1, 2, 3)]
    pids  = apply(rtts, nodes, log_dir=runtime / "logs", env={...})     # {"rap-node-1": 1234, ...}
    ...
    remove(nodes, pids.values())                                       # rules and processes gone

or, step by step: ``build_netdelay``, ``plan``, ``start_delayer`` / ``delayer_argv``,
``install_rules``, ``stop_delayer``, ``remove_rules``, ``find_delayers``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from rap.localcluster import procs
from rap.paths import cache_dir
from rap.build import BuildError
from rap.build.toolchain import find_go
from rap.build.toolchain import go_env as build_go_env

SOURCE_DIR = Path(__file__).resolve().parent / "netdelay"
BINARY_NAME = "netdelay"
CHAIN = "RAP-NETDELAY"
QUEUE_BASE = 100  # the queue for peer node j is QUEUE_BASE + j (queues are per namespace)
MAX_RTT_MS = 10_000.0
DEFAULT_MAX_QUEUE = 4096
RTT_FORMAT = ("NODE=RTT (RTT between node-1 and NODE), NODE:NODE=RTT, or *=RTT (every other pair); "
              "NODE is node-N or N, RTT a number with unit ms, us or s, e.g. node-2=40ms or node-1:node-3=0.08s")


class RttOptionError(ValueError):
    """A bad --rtt value; the message names the option, the value and the format."""


class NetDelayError(RuntimeError):
    """Building, starting or installing the delayer failed; the message says what to do."""


# --------------------------------------------------------------------- options

_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(ms|us|µs|s)\s*")
_NODE = re.compile(r"\s*(?:node-)?([0-9]+)\s*")


def parse_duration_ms(text: str, option: str = "--rtt") -> float:
    """``"40ms"``, ``"0.04s"``, ``"500us"`` -> milliseconds. A unit is required."""
    m = _DURATION.fullmatch(text)
    if not m:
        raise RttOptionError(f"{option}: {text!r} is not a duration with a unit (e.g. 40ms, 0.04s, 500us)")
    value = float(m.group(1))
    unit = m.group(2)
    return value * {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3}[unit]


def _parse_node(text: str, item: str, option: str, nodes: int | None) -> int:
    m = _NODE.fullmatch(text)
    if not m or int(m.group(1)) < 1:
        raise RttOptionError(f"{option}: {item!r}: {text!r} is not a node; want {RTT_FORMAT}")
    i = int(m.group(1))
    if nodes is not None and i > nodes:
        raise RttOptionError(f"{option}: {item!r}: node-{i} does not exist in a {nodes}-node cluster")
    return i


def parse_rtt(values: str | Iterable[str] | None, nodes: int | None = None,
              option: str = "--rtt") -> dict[tuple[int, int], float]:
    """Parse ``--rtt`` values into ``{(a, b): rtt_ms}`` with ``a < b``.

    Each value may hold several comma-separated items:

    - ``node-2=40ms``: node-1 <-> node-2 (node-1 is where clients usually are);
    - ``node-1:node-3=80ms``: that pair;
    - ``*=10ms``: every pair not named otherwise (needs ``nodes``).

    A pair given twice with different values, a node paired with itself, a node
    beyond ``nodes`` and an RTT outside 0..10 s are errors. Zero RTT means "no
    delay" and is kept, so it can override ``*``.
    """
    if values is None:
        return {}
    if isinstance(values, str):
        values = [values]
    out: dict[tuple[int, int], float] = {}
    default: float | None = None
    for value in values:
        for item in value.split(","):
            if not item.strip():
                continue
            if "=" not in item:
                raise RttOptionError(f"{option}: {item.strip()!r} has no '='; want {RTT_FORMAT}")
            lhs, rhs = item.split("=", 1)
            ms = parse_duration_ms(rhs, option=f"{option} {item.strip()!r}")
            if not 0 <= ms <= MAX_RTT_MS:
                raise RttOptionError(f"{option}: {item.strip()!r}: RTT must be between 0 and {MAX_RTT_MS:g} ms")
            if lhs.strip() == "*":
                if default is not None and default != ms:
                    raise RttOptionError(f"{option}: '*' given twice ({default:g}ms and {ms:g}ms)")
                default = ms
                continue
            parts = lhs.split(":")
            if len(parts) == 1:
                a, b = 1, _parse_node(parts[0], item.strip(), option, nodes)
            elif len(parts) == 2:
                a = _parse_node(parts[0], item.strip(), option, nodes)
                b = _parse_node(parts[1], item.strip(), option, nodes)
            else:
                raise RttOptionError(f"{option}: {item.strip()!r} names more than two nodes; want {RTT_FORMAT}")
            if a == b:
                raise RttOptionError(f"{option}: {item.strip()!r} pairs node-{a} with itself"
                                     + ("; NODE=RTT alone means node-1:NODE" if len(parts) == 1 else ""))
            key = (min(a, b), max(a, b))
            if key in out and out[key] != ms:
                raise RttOptionError(f"{option}: node-{key[0]}:node-{key[1]} given twice "
                                     f"({out[key]:g}ms and {ms:g}ms)")
            out[key] = ms
    if default is not None:
        if nodes is None:
            raise RttOptionError(f"{option}: '*' needs the number of nodes")
        for a in range(1, nodes + 1):
            for b in range(a + 1, nodes + 1):
                out.setdefault((a, b), default)
    return out


def format_rtt(rtts: Mapping[tuple[int, int], float]) -> str:
    """``{(1, 2): 40.0}`` -> ``"node-1:node-2=40ms"`` (the inverse of parse_rtt, for status lines)."""
    return ",".join(f"node-{a}:node-{b}={ms:g}ms" for (a, b), ms in sorted(rtts.items()))


# ------------------------------------------------------------------------ plan

@dataclass(frozen=True)
class NodeAddr:
    """One node as the delayer sees it: its namespace, address, pod range, uplink."""
    index: int
    namespace: str
    ip: str
    pod_cidr: str | None = None
    dev: str = "eth0"

    def addresses(self) -> tuple[str, ...]:
        """The addresses this node's traffic to other nodes comes from (and goes to)."""
        return (f"{self.ip}/32",) + ((self.pod_cidr,) if self.pod_cidr else ())


@dataclass(frozen=True)
class QueueRule:
    """On one node: packets between it and node ``peer`` (``addresses``) go to ``queue``, held ``delay_us``."""
    peer: int
    queue: int
    delay_us: int
    addresses: tuple[str, ...]


def queue_num(peer: int) -> int:
    return QUEUE_BASE + peer


def plan(rtts: Mapping[tuple[int, int], float], nodes: Sequence[NodeAddr]) -> dict[int, list[QueueRule]]:
    """Per node index, the queues it needs: RTT/2 on each side. Zero-RTT pairs get none."""
    by_index = {n.index: n for n in nodes}
    if len(by_index) != len(nodes):
        raise NetDelayError("two nodes share an index")
    out: dict[int, list[QueueRule]] = {}
    for (a, b), ms in sorted(rtts.items()):
        for i in (a, b):
            if i not in by_index:
                raise NetDelayError(f"RTT node-{a}:node-{b}: node-{i} is not one of the nodes given")
        if a == b:
            raise NetDelayError(f"RTT node-{a}:node-{b}: a node paired with itself")
        if ms < 0 or ms > MAX_RTT_MS:
            raise NetDelayError(f"RTT node-{a}:node-{b}={ms}ms outside 0..{MAX_RTT_MS:g} ms")
        one_way_us = int(round(ms * 1000 / 2))
        if one_way_us == 0:
            continue
        for here, peer in ((a, b), (b, a)):
            out.setdefault(here, []).append(
                QueueRule(peer, queue_num(peer), one_way_us, by_index[peer].addresses()))
    for rules in out.values():
        rules.sort(key=lambda r: r.peer)
    return out


DIRECTIONS = ("ingress", "egress")


def iptables_install_cmds(node: NodeAddr, rules: Sequence[QueueRule], bypass: bool = True,
                          direction: str = "ingress") -> list[list[str]]:
    """iptables argv lists (run inside the node's namespace) that send inter-node packets to the queues.

    ``ingress`` (the default) queues packets arriving on the node's uplink from
    a peer (mangle PREROUTING, matched by source); ``egress`` queues packets
    leaving towards a peer (mangle POSTROUTING, matched by destination).
    Ingress is what works for traffic the node itself sends: held on the
    sender's egress, an skb still counts against its socket's TCP Small Queues
    budget, which caps a delayed TCP stream at a few packets per RTT (about
    1 MB/s at 10 ms); once it has crossed the veth pair it no longer does.

    Everything lives in the mangle chain RAP-NETDELAY; the chain is filled
    before the jump to it is added.
    """
    if direction not in DIRECTIONS:
        raise NetDelayError(f"direction {direction!r}: want one of {', '.join(DIRECTIONS)}")
    ipt = ["iptables", "-w", "-t", "mangle"]
    match = "-s" if direction == "ingress" else "-d"
    cmds = [[*ipt, "-N", CHAIN]]
    for r in rules:
        for cidr in r.addresses:
            cmds.append([*ipt, "-A", CHAIN, match, cidr, "-j", "NFQUEUE", "--queue-num", str(r.queue),
                         *(["--queue-bypass"] if bypass else [])])
    if direction == "ingress":
        cmds.append([*ipt, "-A", "PREROUTING", "-i", node.dev, "-j", CHAIN])
    else:
        cmds.append([*ipt, "-A", "POSTROUTING", "-o", node.dev, "-j", CHAIN])
    return cmds


def iptables_remove_cmds(node: NodeAddr) -> list[list[str]]:
    """The jumps (either direction), then the chain. Each may fail harmlessly if absent."""
    ipt = ["iptables", "-w", "-t", "mangle"]
    return [[*ipt, "-D", "PREROUTING", "-i", node.dev, "-j", CHAIN],
            [*ipt, "-D", "POSTROUTING", "-o", node.dev, "-j", CHAIN],
            [*ipt, "-F", CHAIN],
            [*ipt, "-X", CHAIN]]


def delayer_argv(rules: Sequence[QueueRule], binary: Path | str | None = None,
                 max_queue: int = DEFAULT_MAX_QUEUE) -> list[str]:
    """The netdelay command line for one node's queues."""
    argv = [str(binary or binary_path()), "--max-queue", str(max_queue)]
    for r in rules:
        argv += ["--rule", f"queue={r.queue},delay={r.delay_us}us"]
    return argv


# ----------------------------------------------------------------------- build

def binary_path() -> Path:
    return cache_dir() / "bin" / BINARY_NAME


def _find_go() -> str:
    try:
        return find_go()
    except BuildError as exc:
        raise NetDelayError(f"netdelay: {exc}") from None


def go_env() -> dict[str, str]:
    """The kube-proxy build's Go environment (same caches), but never touching go.mod."""
    return {**build_go_env(cache_dir()), "GOFLAGS": "-mod=readonly"}


def source_digest(source_dir: Path = SOURCE_DIR) -> str:
    """Hash of what the binary is built from (go.mod, go.sum, non-test .go files)."""
    h = hashlib.sha256()
    files = sorted(p for p in source_dir.iterdir()
                   if p.name in ("go.mod", "go.sum") or (p.suffix == ".go" and not p.name.endswith("_test.go")))
    for p in files:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def build_netdelay(force: bool = False, source_dir: Path = SOURCE_DIR) -> Path:
    """Build netdelay into <cache>/bin/netdelay unless it is already built from these sources."""
    out = binary_path()
    stamp = out.with_name(BINARY_NAME + ".stamp")
    env = go_env()
    go = _find_go()
    version = subprocess.run([go, "env", "GOVERSION"], env=env, capture_output=True, text=True).stdout.strip()
    want = f"{source_digest(source_dir)} {version}"
    if not force and out.is_file() and stamp.is_file() and stamp.read_text().strip() == want:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{BINARY_NAME}.{os.getpid()}.tmp")
    proc = subprocess.run([go, "build", "-trimpath", "-o", str(tmp), "."], cwd=source_dir, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise NetDelayError(f"building netdelay failed (go build in {source_dir}):\n"
                            f"{(proc.stderr or proc.stdout).strip()}")
    os.replace(tmp, out)
    stamp.write_text(want + "\n")
    return out


# --------------------------------------------------------------------- runtime

def _run(cmd: Sequence[str], netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    proc = subprocess.run(argv, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NetDelayError(f"`{' '.join(argv)}` failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def check_support() -> None:
    """Raise NetDelayError naming what is missing: root, iptables, or the kernel's nfnetlink_queue."""
    if os.geteuid() != 0:
        raise NetDelayError("netdelay needs root (network namespaces, iptables, NFQUEUE)")
    for tool, pkg in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            raise NetDelayError(f"{tool} not found: install Debian's {pkg} (./scripts/install.sh does)")
    if not (Path("/sys/module/nfnetlink_queue").exists() or Path("/proc/net/netfilter/nfnetlink_queue").exists()):
        subprocess.run(["modprobe", "nfnetlink_queue"], capture_output=True)
        if not Path("/sys/module/nfnetlink_queue").exists():
            raise NetDelayError("the kernel lacks nfnetlink_queue (CONFIG_NETFILTER_NETLINK_QUEUE), "
                                "which the user-space delay needs; `modprobe nfnetlink_queue` failed")


def install_rules(node: NodeAddr, rules: Sequence[QueueRule], bypass: bool = True,
                  direction: str = "ingress") -> None:
    """Add the NFQUEUE rules in the node's namespace (replacing any left from before)."""
    remove_rules(node)
    try:
        for cmd in iptables_install_cmds(node, rules, bypass=bypass, direction=direction):
            _run(cmd, netns=node.namespace)
    except NetDelayError as exc:
        remove_rules(node)
        if "NFQUEUE" in str(exc):
            raise NetDelayError(f"{exc}\n(the iptables NFQUEUE target is missing from this kernel?)") from None
        raise


def remove_rules(node: NodeAddr) -> bool:
    """Remove the chain and its jumps; True if something was removed. Quiet if the namespace is gone."""
    removed = False
    jumps, chain = iptables_remove_cmds(node)[:2], iptables_remove_cmds(node)[2:]
    for cmd in jumps:
        for _ in range(16):  # every copy of the jump, bounded
            if _run(cmd, netns=node.namespace, check=False).returncode != 0:
                break
            removed = True
    for cmd in chain:
        removed = (_run(cmd, netns=node.namespace, check=False).returncode == 0) or removed
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


def stop_delayer(proc: subprocess.Popen | int, timeout: float = 5.0) -> int | None:
    """SIGTERM (held packets are accepted at once), SIGKILL after ``timeout``.

    Takes the Popen or a recorded pid; a pid that is no longer a netdelay
    process (exited, reused) is left alone. Returns the exit code if known.
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
    pid = int(proc)
    if not _is_delayer(pid):
        return None
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:  # our own child: reap it; someone else's: watch /proc
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    return os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                if not procs.alive(pid):
                    return None
            time.sleep(0.02)
    return None


def find_delayers(namespace: str) -> list[int]:
    """netdelay processes running in a namespace (for clean-up after an interrupted start)."""
    proc = _run(["ip", "netns", "pids", namespace], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit() and _is_delayer(int(p))]


def apply(rtts: Mapping[tuple[int, int], float], nodes: Sequence[NodeAddr], *, log_dir: Path | str,
          binary: Path | str | None = None, env: Mapping[str, str] | None = None,
          bypass: bool = True, direction: str = "ingress") -> dict[str, int]:
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
    for pid in sorted(pids):
        if _is_delayer(pid):
            stop_delayer(pid)
            removed.append(f"netdelay pid {pid}")
    return removed
