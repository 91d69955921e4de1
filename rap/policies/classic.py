"""RAP's classic decision, steps 1-6 of docs/algorithm.md (the paper's rule, all or nothing per plan).

Serve locally while the local node and its pods have capacity; otherwise send
the connection to the best-scoring other node; round robin when blind or when
everything is overloaded, so RAP never refuses what kube-proxy would serve.

The choice of *group* (local node, a remote node, or "all endpoints") depends
only on the snapshot, the usable endpoints and which inputs are still fresh,
so it is computed once into a ``Plan`` and reused (rap.py) until an input goes
stale, an ejection changes the usable set, or the endpoints or snapshot change.
That keeps a decision O(1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rap.config import RapConfig
from rap.policies.base import Endpoint
from rap.policies.fresh import FreshView
from rap.snapshot import Snapshot, Usage

# Scores closer than this are ties; Go and Python then agree on the tie-break
# even if the last bit of a float differs.
SCORE_EPSILON = 1e-9


@dataclass
class Plan:
    generation: int
    snapshot: Snapshot
    ejections: int
    computed_at: float
    valid_until: float
    group: str | None  # node name; None means kube-proxy round robin (over the usable set)
    candidates: list[Endpoint]
    reason: str

    def holds(self, generation: int, snapshot: Snapshot, ejections: int, now: float) -> bool:
        return (self.generation == generation and self.snapshot is snapshot and self.ejections == ejections
                and self.computed_at <= now <= self.valid_until)


def overloaded(config: RapConfig, usage: Usage | None) -> bool:
    # Unknown is not overloaded: RAP only steers away from load it can see.
    return usage is not None and (usage.cpu >= config.cpu_threshold or usage.mem >= config.mem_threshold)


def decide(local: str, config: RapConfig, snap: Snapshot, usable: list[Endpoint], now: float,
           *, generation: int, ejections: int, usable_until: float = math.inf) -> Plan:
    """The plan for new connections over ``usable`` (U), which stays so until ``usable_until``."""
    view = FreshView(config, snap, now)
    by_node: dict[str, list[Endpoint]] = {}
    any_data = False
    for ep in usable:
        pod, node = view.pod(ep.ip), view.node(ep.node)
        any_data = any_data or pod is not None or node is not None
        if not overloaded(config, pod) and not snap.unwatched(ep.node, local):
            by_node.setdefault(ep.node, []).append(ep)

    def plan(group, candidates, reason):
        return Plan(generation, snap, ejections, now, min(view.valid_until, usable_until), group, candidates,
                    reason)

    if not any_data:
        return plan(None, [], "blind: no fresh resource data for any endpoint; round robin")
    local_free = by_node.get(local, [])
    if local_free and not overloaded(config, view.node(local)):
        return plan(local, local_free, f"local: {local} has capacity")
    best = _best_remote(local, view, by_node)
    if best is not None:
        return plan(best, by_node[best], f"forward: {best} scores best from {local}")
    if local_free:
        return plan(local, local_free, f"local: {local} overloaded but no other node has capacity")
    return plan(None, [], "all endpoints overloaded; round robin over all")


def _best_remote(local: str, view: FreshView, by_node: dict[str, list[Endpoint]]) -> str | None:
    cfg = view.config
    remotes = [n for n in by_node if n != local and not overloaded(cfg, view.node(n))]
    if not remotes:
        return None
    rtt_max = view.rtt_max(local)
    ranked = []
    for name in remotes:
        rtt = view.rtt(name)
        effective_rtt = rtt_max if rtt is None else rtt
        ranked.append((_score(view, name, rtt, rtt_max), effective_rtt, name))
    top_score = max(r[0] for r in ranked)
    ties = [r for r in ranked if top_score - r[0] <= SCORE_EPSILON]
    return min(ties, key=lambda r: (r[1], r[2]))[2]


def _score(view: FreshView, name: str, rtt: float | None, rtt_max: float) -> float:
    cfg = view.config
    usage = view.node(name)
    # An unmeasured node scores as fully used, like an unmeasured RTT scores as rtt_max.
    cpu_free = 0.0 if usage is None else 1.0 - usage.cpu
    mem_free = 0.0 if usage is None else 1.0 - usage.mem
    if rtt is None:
        net_free = 0.0
    elif rtt_max > 0:
        net_free = 1.0 - rtt / rtt_max
    else:
        net_free = 1.0  # every measured RTT is 0
    return cfg.w_cpu * cpu_free + cfg.w_mem * mem_free + cfg.w_net * net_free
