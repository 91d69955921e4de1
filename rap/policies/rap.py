"""RAP, the Resource Adaptive Proxy: the reference decision of docs/algorithm.md.

``mode`` (RapConfig) picks the rule for a new connection: ``classic``, the
paper's all-or-nothing rule (classic.py), or ``adaptive``, a per-connection
cost (adaptive.py). Both decide over the usable endpoints (those not ejected
after a failed dial; bookkeeping.py), and both share what base.py keeps:
affinity, endpoint churn, the connection counts.

Each service keeps, besides the common state, a cursor per node (classic), the
adaptive cursor ``rr``, and the cached plan or cost terms; all are dropped
when the endpoint set changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rap.config import RapConfig
from rap.policies import adaptive, classic
from rap.policies.base import Endpoint, Policy, ServiceState
from rap.snapshot import EMPTY, Snapshot

MODE_CLASSIC = "classic"
MODE_ADAPTIVE = "adaptive"


@dataclass
class _RapState:
    cursors: dict[str, int] = field(default_factory=dict)  # classic: one per node
    rr: int = 0  # adaptive: where the position tie-break starts
    plan: classic.Plan | None = None
    terms: adaptive.Terms | None = None


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
        self.eject_s = self.config.eject_s
        self._snapshot = EMPTY
        self._rap: dict[str, _RapState] = {}

    @classmethod
    def create(cls, *, local_node: str = "", config: RapConfig | None = None, shuffle: bool = True,
               seed: int | None = None) -> "Rap":
        return cls(local_node, config, shuffle=shuffle, seed=seed)

    @property
    def mode(self) -> str:
        return self.config.mode

    def update_snapshot(self, snapshot: Snapshot) -> Snapshot:
        """Swap ``snapshot`` in over the current one; returns it as swapped in, with its hot flags."""
        cfg = self.config
        swapped = snapshot.swapped_in_over(self._snapshot, cpu_threshold=cfg.cpu_threshold,
                                           mem_threshold=cfg.mem_threshold, hysteresis=cfg.hysteresis)
        # One reference swap: a decision sees the old or the new snapshot, never a mix.
        self._snapshot = swapped
        return swapped

    def _endpoints_changed(self, service: str, state: ServiceState | None) -> None:
        self._rap.pop(service, None)

    def _choose(self, service: str, state: ServiceState, now: float) -> Endpoint:
        rs = self._rap.setdefault(service, _RapState())
        if self.config.mode == MODE_ADAPTIVE:
            return self._choose_adaptive(state, rs, now)
        return self._choose_classic(state, rs, now)

    def explain(self, service: str, now: float) -> str:
        """Why the next new connection goes where it goes (for logs and reports); changes nothing."""
        state = self._services[service]
        rs = self._rap.setdefault(service, _RapState())
        if self.config.mode == MODE_CLASSIC:
            return self._plan(state, rs, now).reason
        t = self._terms(state, rs, now)
        if t.blind:
            return "blind: no fresh resource data for any usable endpoint; round robin"
        winner = state.endpoints[adaptive.choose(t, len(state.endpoints), state.book.active, rs.rr)]
        return (f"adaptive: {winner.addr} costs least of {len(t.candidates)} candidates "
                f"({winner.node or 'no node'}, {state.book.active.get(winner.addr, 0)} active)")

    # -- classic --

    def _choose_classic(self, state: ServiceState, rs: _RapState, now: float) -> Endpoint:
        plan = self._plan(state, rs, now)
        if plan.group is None:
            return self._round_robin(state, now)
        cursor = rs.cursors.get(plan.group, 0)
        rs.cursors[plan.group] = cursor + 1
        return plan.candidates[cursor % len(plan.candidates)]

    def _plan(self, state: ServiceState, rs: _RapState, now: float) -> classic.Plan:
        book = state.book
        plan = rs.plan
        if plan is None or not plan.holds(state.generation, self._snapshot, book.ejections, now):
            usable, until = book.usable(state.endpoints, now)
            plan = classic.decide(self.local_node, self.config, self._snapshot,
                                  [state.endpoints[i] for i in usable], now, generation=state.generation,
                                  ejections=book.ejections, usable_until=until)
            rs.plan = plan
        return plan

    # -- adaptive --

    def _choose_adaptive(self, state: ServiceState, rs: _RapState, now: float) -> Endpoint:
        t = self._terms(state, rs, now)
        if t.blind:
            return self._round_robin(state, now)
        i = adaptive.choose(t, len(state.endpoints), state.book.active, rs.rr)
        rs.rr = (i + 1) % len(state.endpoints)
        return state.endpoints[i]

    def _terms(self, state: ServiceState, rs: _RapState, now: float) -> adaptive.Terms:
        book = state.book
        t = rs.terms
        if t is None or not t.holds(state.generation, self._snapshot, book.ejections, now,
                                    self.config.stale_after_s):
            usable, until = book.usable(state.endpoints, now)
            t = adaptive.terms(self.local_node, self.config, self._snapshot, state.endpoints, usable, now,
                               generation=state.generation, ejections=book.ejections, usable_until=until)
            rs.terms = t
        return t
