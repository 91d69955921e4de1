"""Inter-node round-trip time for the local cluster, emulated in user space.

This kernel has no ``netem`` (``tc qdisc ... netem delay`` is unavailable), so
delay is added by a small Go program, ``netdelay`` (main.go in this folder),
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

Failure mode: fail closed. The rules carry no ``--queue-bypass``, so while no
``netdelay`` is bound to a queue (crashed, killed) the kernel drops the packets
between the delayed nodes: a benchmark can never measure an undelayed run as a
delayed one. Each delayer is bound before its rules exist and its rules are
removed before it is stopped, so a healthy start or stop drops nothing.
``bypass=True`` restores fail-open (packets pass undelayed).

The API the cluster uses::

    rtts  = parse_rtt(["node-2=40ms", "node-1:node-3=80ms"], nodes=3)  # {(1, 2): 40.0, (1, 3): 80.0}
    nodes = [NodeAddr(i, f"rap-node-{i}", f"10.213.0.{10 + i}", f"10.214.{i}.0/24") for i in (1, 2, 3)]
    pids  = apply(rtts, nodes, log_dir=runtime / "logs", env={...})     # {"rap-node-1": 1234, ...}
    ...
    remove(nodes, pids.values())                                       # rules and processes gone

or, step by step: ``build_netdelay``, ``plan``, ``start_delayer`` / ``delayer_argv``,
``install_rules``, ``stop_delayer``, ``remove_rules``, ``find_delayers``.

The modules: ``rtt`` parses --rtt, ``rules`` turns RTTs into each node's
queues, iptables rules and delayer argv (pure), ``build`` builds the delayer
with the project's Go toolchain, ``runtime`` installs the rules and runs the
delayers; ``errors`` holds RttOptionError and NetDelayError. Everything is
importable from here, as ``netdelay.parse_rtt`` and so on. Apart, run as
``python3 -m rap.localcluster.netdelay.cost``: ``cost`` measures what the
delayers of a running cluster cost in CPU, builds side by side, and
``costfigures`` pools and prints its figures.
"""

from __future__ import annotations

from rap.localcluster.netdelay.errors import NetDelayError, RttOptionError
from rap.localcluster.netdelay.rtt import MAX_RTT_MS, RTT_FORMAT, format_rtt, parse_duration_ms, parse_rtt
from rap.localcluster.netdelay.build import BINARY_NAME, SOURCE_DIR, binary_path, build_netdelay, go_env, source_digest
from rap.localcluster.netdelay.rules import (CHAIN, DEFAULT_MAX_QUEUE, DIRECTIONS, QUEUE_BASE, NodeAddr, QueueRule,
                                             delayer_argv, iptables_install_cmds, iptables_remove_cmds, plan,
                                             queue_num)
from rap.localcluster.netdelay.runtime import (apply, check_support, find_delayers, install_rules, remove,
                                               remove_rules, start_delayer, stop_delayer)

__all__ = [
    "NetDelayError", "RttOptionError",
    "MAX_RTT_MS", "RTT_FORMAT", "format_rtt", "parse_duration_ms", "parse_rtt",
    "BINARY_NAME", "SOURCE_DIR", "binary_path", "build_netdelay", "go_env", "source_digest",
    "CHAIN", "DEFAULT_MAX_QUEUE", "DIRECTIONS", "QUEUE_BASE", "NodeAddr", "QueueRule",
    "delayer_argv", "iptables_install_cmds", "iptables_remove_cmds", "plan", "queue_num",
    "apply", "check_support", "find_delayers", "install_rules", "remove", "remove_rules",
    "start_delayer", "stop_delayer",
]
