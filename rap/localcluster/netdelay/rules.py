"""What the delay is on each node: the queues it needs, their iptables rules, the delayer's argv.

An RTT ``R`` between nodes ``a`` and ``b`` becomes ``R/2`` on ``a``'s ingress
from ``b`` and ``R/2`` on ``b``'s ingress from ``a``. Pure functions of the
RTTs and the nodes: nothing here runs a command (rap.localcluster.netdelay.runtime does).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from rap.localcluster.netdelay.build import binary_path
from rap.localcluster.netdelay.errors import NetDelayError
from rap.localcluster.netdelay.rtt import MAX_RTT_MS

CHAIN = "RAP-NETDELAY"
QUEUE_BASE = 100  # the queue for peer node j is QUEUE_BASE + j (queues are per namespace)
DEFAULT_MAX_QUEUE = 4096


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


def iptables_install_cmds(node: NodeAddr, rules: Sequence[QueueRule], bypass: bool = False,
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
    before the jump to it is added. Without ``bypass`` (the default) the kernel
    drops a queued packet while no delayer is bound to its queue: fail closed, so
    a dead delayer shows as failed connections, never as a fast, undelayed run.
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

