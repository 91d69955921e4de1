"""Is the asked delay really there? Checked before a benchmark measures anything.

A delay that is silently missing would make a run with RTTs look like one
without; the rules fail closed (no --queue-bypass), and this check catches what
that cannot: a delayer that never started, rules that are gone, or an RTT far
below the one asked for. It looks at every delayed pair: the delayer of both
nodes alive, their rules in place, and the smallest of a few TCP connects from
one node to the other's RTT listener near the asked RTT.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Mapping, Sequence

from rap.localcluster import sh
from rap.localcluster.netdelay.errors import NetDelayError
from rap.localcluster.netdelay.rules import CHAIN, NodeAddr, plan
from rap.localcluster.netdelay.runtime import find_delayers

LOW = 0.7  # connect time under LOW x RTT: the delay is not (all) there
PROBES = 3

_CONNECT = """
import socket, sys, time
best = None
for _ in range({n}):
    t = time.monotonic()
    try:
        socket.create_connection(({ip!r}, {port}), timeout={timeout}).close()
    except OSError as exc:
        print("error", exc); sys.exit(0)
    ms = (time.monotonic() - t) * 1000
    best = ms if best is None else min(best, ms)
print("ms", best)
"""


def connect_ms(namespace: str, ip: str, port: int, timeout: float = 2.0) -> float:
    """The smallest of PROBES TCP connects from ``namespace`` to ip:port; NetDelayError if one fails."""
    code = _CONNECT.format(n=PROBES, ip=ip, port=port, timeout=timeout)
    out = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=PROBES * timeout + 15)
    word, _, value = out.stdout.strip().partition(" ")
    if word != "ms":
        raise NetDelayError(f"a TCP connect from {namespace} to {ip}:{port} failed ({value or out.stderr.strip()})")
    return float(value)


def verify(rtts: Mapping[tuple[int, int], float], nodes: Sequence[NodeAddr], port: int) -> dict[tuple[int, int], float]:
    """Every delayed pair's measured connect time; NetDelayError naming the first pair that is not delayed."""
    wanted = plan(rtts, nodes)
    by_index = {n.index: n for n in nodes}
    fix = "the delayer is dead or its rules are gone; run `invoke local-down` and start again"
    for i in wanted:
        node = by_index[i]
        if not find_delayers(node.namespace):
            raise NetDelayError(f"no netdelay process runs in {node.namespace}: {fix}")
        rules = sh.run(["iptables-save", "-t", "mangle"], netns=node.namespace, check=False)
        if f"-j {CHAIN}" not in rules or "NFQUEUE" not in rules:
            raise NetDelayError(f"the {CHAIN} rules are missing in {node.namespace}: {fix}")
    measured = {}
    for (a, b), ms in sorted(rtts.items()):
        if int(round(ms * 1000 / 2)) == 0:
            continue
        try:
            got = connect_ms(by_index[a].namespace, by_index[b].ip, port)
        except NetDelayError as exc:
            raise NetDelayError(f"RTT node-{a}:node-{b}={ms:g}ms: {exc}: {fix}") from None
        if got < LOW * ms:
            raise NetDelayError(f"RTT node-{a}:node-{b}: asked {ms:g} ms, a TCP connect takes {got:.1f} ms: "
                                f"the delay is not applied; {fix}")
        measured[(a, b)] = got
    return measured
