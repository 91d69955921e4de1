"""RAP, the Resource Adaptive Proxy: the reference decision of docs/algorithm.md.

Serve locally while the local node and its pods have capacity; otherwise send
the connection to the best-scoring other node; round robin when blind or when
everything is overloaded, so RAP never refuses what kube-proxy would serve.

The choice of *group* (local node, a remote node, or "all endpoints") depends
only on the snapshot, the endpoint list and which inputs are still fresh, so it
is computed once into a ``_Plan`` and reused until an input goes stale or the
endpoints or snapshot change. That keeps a decision O(1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rap.config import RapConfig
from rap.policies.base import Endpoint, Policy, ServiceState
from rap.snapshot import EMPTY, Snapshot, Usage

# Scores closer than this are ties; Go and Python then agree on the tie-break
# even if the last bit of a float differs.
SCORE_EPSILON = 1e-9


@dataclass
class _Plan:
    generation: int
    snapshot: Snapshot
    computed_at: float
    valid_until: float
    group: str | None  # node name; None means kube-proxy round robin over all
    candidates: list[Endpoint]
    reason: str


class Rap(Policy):
    name = "rap"

    def __init__(
        self,
        local_node: str,
        config: RapConfig | None = None,
        *,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__(shuffle=shuffle, seed=seed)
        self.local_node = local_node
        self.config = config or RapConfig()
        self._snapshot = EMPTY
        self._plans: dict[str, _Plan] = {}
        self._cursors: dict[str, dict[str, int]] = {}

    @classmethod
    def create(cls, *, local_node: str = "", config: RapConfig | None = None, shuffle: bool = True,
               seed: int | None = None) -> "Rap":
        return cls(local_node, config, shuffle=shuffle, seed=seed)

    def update_snapshot(self, snapshot: Snapshot) -> None:
        # One reference swap: a decision sees the old or the new snapshot, never a mix.
        self._snapshot = snapshot

    def _endpoints_changed(self, service: str, state: ServiceState | None) -> None:
        self._cursors.pop(service, None)
        self._plans.pop(service, None)

    def _choose(self, service: str, state: ServiceState, now: float) -> Endpoint:
        plan = self._plan(service, state, now)
        if plan.group is None:
            return self._round_robin(state)
        cursors = self._cursors.setdefault(service, {})
        cursor = cursors.get(plan.group, 0)
        cursors[plan.group] = cursor + 1
        return plan.candidates[cursor % len(plan.candidates)]

    def explain(self, service: str, now: float) -> str:
        """Why the next new connection goes where it goes (for logs and reports)."""
        state = self._services[service]
        return self._plan(service, state, now).reason

    def _plan(self, service: str, state: ServiceState, now: float) -> _Plan:
        plan = self._plans.get(service)
        snap = self._snapshot
        if (
            plan is None
            or plan.generation != state.generation
            or plan.snapshot is not snap
            or not plan.computed_at <= now <= plan.valid_until
        ):
            plan = _decide(self.local_node, self.config, snap, state, now)
            self._plans[service] = plan
        return plan


class _View:
    """The inputs of one decision: only those still fresh at ``now``."""

    def __init__(self, config: RapConfig, snap: Snapshot, now: float) -> None:
        self.config = config
        self.snap = snap
        self.now = now
        self.valid_until = math.inf

    def _fresh(self, sample):
        if sample is None or self.now - sample.at > self.config.stale_after_s:
            return None
        self.valid_until = min(self.valid_until, sample.at + self.config.stale_after_s)
        return sample

    def pod(self, ip: str) -> Usage | None:
        return self._fresh(self.snap.pods.get(ip))

    def node(self, name: str) -> Usage | None:
        return self._fresh(self.snap.nodes.get(name))

    def rtt(self, name: str) -> float | None:
        sample = self._fresh(self.snap.rtt.get(name))
        return None if sample is None else sample.ms

    def overloaded(self, usage: Usage | None) -> bool:
        # Unknown is not overloaded: RAP only steers away from load it can see.
        return usage is not None and (
            usage.cpu >= self.config.cpu_threshold or usage.mem >= self.config.mem_threshold
        )


def _decide(local: str, config: RapConfig, snap: Snapshot, state: ServiceState, now: float) -> _Plan:
    view = _View(config, snap, now)
    by_node: dict[str, list[Endpoint]] = {}
    any_data = False
    for ep in state.endpoints:
        pod, node = view.pod(ep.ip), view.node(ep.node)
        any_data = any_data or pod is not None or node is not None
        if not view.overloaded(pod):
            by_node.setdefault(ep.node, []).append(ep)

    def plan(group, candidates, reason):
        return _Plan(state.generation, snap, now, view.valid_until, group, candidates, reason)

    if not any_data:
        return plan(None, [], "blind: no fresh resource data for any endpoint; round robin")
    local_free = by_node.get(local, [])
    local_overloaded = view.overloaded(view.node(local))
    if local_free and not local_overloaded:
        return plan(local, local_free, f"local: {local} has capacity")
    best = _best_remote(local, view, by_node)
    if best is not None:
        return plan(best, by_node[best], f"forward: {best} scores best from {local}")
    if local_free:
        return plan(local, local_free, f"local: {local} overloaded but no other node has capacity")
    return plan(None, [], "all endpoints overloaded; round robin over all")


def _best_remote(local: str, view: _View, by_node: dict[str, list[Endpoint]]) -> str | None:
    remotes = [n for n in by_node if n != local and not view.overloaded(view.node(n))]
    if not remotes:
        return None
    # rtt_max spans every node measured from the local node, not only candidates.
    rtts = {n: view.rtt(n) for n in view.snap.rtt if n != local}
    measured = [ms for ms in rtts.values() if ms is not None]
    rtt_max = max(measured, default=0.0)
    ranked = []
    for name in remotes:
        rtt = rtts.get(name)
        effective_rtt = rtt_max if rtt is None else rtt
        ranked.append((_score(view, name, rtt, rtt_max), effective_rtt, name))
    top_score = max(r[0] for r in ranked)
    ties = [r for r in ranked if top_score - r[0] <= SCORE_EPSILON]
    return min(ties, key=lambda r: (r[1], r[2]))[2]


def _score(view: _View, name: str, rtt: float | None, rtt_max: float) -> float:
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
