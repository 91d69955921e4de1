"""RAP's adaptive decision (docs/algorithm.md, "The adaptive decision"): per connection, by cost.

Every usable endpoint costs ``(active + 1) / headroom + rtt / rtt_per_conn_ms``:
one more connection at a pod with little headroom costs more, and so does a
long round trip. The cheapest endpoint that is not overloaded (hot and fresh)
wins, so a busy local pod spills only its excess, spread over the remote
endpoints by how little they carry.

What does not change from one connection to the next (each candidate's
headroom and RTT term) is computed once into ``Terms`` and reused while the
snapshot, the endpoint list, the usable set and the freshness of every sample
read stay as they were; only the active counts are read per connection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rap.config import RapConfig
from rap.policies.base import Endpoint
from rap.policies.fresh import FreshView
from rap.snapshot import Snapshot, Usage

# Usage at or above the threshold (even above 1) leaves this much headroom, so a cost stays finite.
HEADROOM_FLOOR = 0.05
# Costs closer than this are ties, as scores are in the classic mode.
COST_EPSILON = 1e-9


@dataclass
class Terms:
    """The per-candidate parts of the cost, and when they stop holding."""

    generation: int
    snapshot: Snapshot
    ejections: int
    computed_at: float
    usable_until: float
    oldest_at: float  # of the fresh samples read: all stay fresh while now - oldest_at <= stale_after_s
    blind: bool
    candidates: list[int]  # positions in the endpoint list, in list order
    addrs: list[str]  # of candidates[k]: the keys of the active counts
    headroom: list[float]  # of candidates[k]
    rtt: list[float]
    rtt_cost: list[float]  # rtt / rtt_per_conn_ms

    def holds(self, generation: int, snapshot: Snapshot, ejections: int, now: float,
              stale_after_s: float) -> bool:
        return (self.generation == generation and self.snapshot is snapshot and self.ejections == ejections
                and self.computed_at <= now <= self.usable_until and now - self.oldest_at <= stale_after_s)


def _headroom(config: RapConfig, usage: Usage | None) -> float:
    if usage is None:
        return 1.0
    return min(1 - usage.cpu / config.cpu_threshold, 1 - usage.mem / config.mem_threshold)


def terms(local: str, config: RapConfig, snap: Snapshot, endpoints: list[Endpoint], usable: list[int],
          now: float, *, generation: int, ejections: int, usable_until: float = math.inf) -> Terms:
    """The cost terms of the candidates among ``usable`` (U, positions in ``endpoints``)."""
    view = FreshView(config, snap, now)
    samples = [(view.pod(endpoints[i].ip), view.node(endpoints[i].node)) for i in usable]
    blind = all(pod is None and node is None for pod, node in samples)
    out = Terms(generation, snap, ejections, now, usable_until, math.inf, blind, [], [], [], [], [])
    if blind:
        out.oldest_at = view.oldest_at
        return out
    rtt_max = view.rtt_max(local)
    rows = []
    for i, (pod, node) in zip(usable, samples):
        ep = endpoints[i]
        hot = ((pod is not None and ep.ip in snap.hot_pods) or (node is not None and ep.node in snap.hot_nodes)
               or snap.unwatched(ep.node, local))
        headroom = max(HEADROOM_FLOOR, min(_headroom(config, pod), _headroom(config, node)))
        rows.append((hot, i, headroom, _rtt(view, local, ep, rtt_max)))
    # The overloaded are left out, unless that leaves nothing: never refuse.
    rows = [r for r in rows if not r[0]] or rows
    for _, i, headroom, rtt in rows:
        out.candidates.append(i)
        out.addrs.append(endpoints[i].addr)
        out.headroom.append(headroom)
        out.rtt.append(rtt)
        out.rtt_cost.append(rtt / config.rtt_per_conn_ms)
    out.oldest_at = view.oldest_at
    return out


def _rtt(view: FreshView, local: str, ep: Endpoint, rtt_max: float) -> float:
    if ep.node and ep.node == local:
        return 0.0
    # A selectorless Service's endpoint has no node: never local, no RTT.
    rtt = view.rtt(ep.node) if ep.node else None
    return rtt_max if rtt is None else rtt


def costs(t: Terms, active: dict[str, int]) -> list[float]:
    """Each candidate's cost, evaluated as the spec writes it: one division, the other, one addition."""
    count = active.get
    return [(count(addr, 0) + 1) / h + rc for addr, h, rc in zip(t.addrs, t.headroom, t.rtt_cost)]


def choose(t: Terms, n: int, active: dict[str, int], rr: int) -> int:
    """The winner's position among the ``n`` endpoints: lowest cost, then lowest RTT, then first from ``rr``."""
    cost = costs(t, active)
    lowest = min(cost)
    tied = [k for k, c in enumerate(cost) if c - lowest <= COST_EPSILON]
    nearest = min(t.rtt[k] for k in tied)
    return min((t.candidates[k] for k in tied if t.rtt[k] == nearest), key=lambda i: (i - rr) % n)
