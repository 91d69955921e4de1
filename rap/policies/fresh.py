"""The inputs of one RAP decision: the snapshot's samples still fresh at ``now``.

A sample is fresh when ``now - at <= stale_after_s`` (docs/algorithm.md,
"Inputs"); an older one is treated as absent. The view also remembers, over
the fresh samples it handed out, how long what it said stays true, so a
decision can be reused:

- ``valid_until``: the earliest ``at + stale_after_s`` (the classic plan's bound,
  as the spec writes it);
- ``oldest_at``: the earliest ``at``. ``now - oldest_at <= stale_after_s`` is
  exactly "every sample read is still fresh", because a float subtraction
  never decreases as ``now`` grows or ``at`` shrinks; a stale sample stays stale.
"""

from __future__ import annotations

import math

from rap.config import RapConfig
from rap.snapshot import Snapshot, Usage


class FreshView:
    def __init__(self, config: RapConfig, snap: Snapshot, now: float) -> None:
        self.config = config
        self.snap = snap
        self.now = now
        self.valid_until = math.inf
        self.oldest_at = math.inf

    def _fresh(self, sample):
        if sample is None or self.now - sample.at > self.config.stale_after_s:
            return None
        self.valid_until = min(self.valid_until, sample.at + self.config.stale_after_s)
        self.oldest_at = min(self.oldest_at, sample.at)
        return sample

    def pod(self, ip: str) -> Usage | None:
        return self._fresh(self.snap.pods.get(ip))

    def node(self, name: str) -> Usage | None:
        return self._fresh(self.snap.nodes.get(name))

    def rtt(self, name: str) -> float | None:
        sample = self._fresh(self.snap.rtt.get(name))
        return None if sample is None else sample.ms

    def rtt_max(self, local: str) -> float:
        """The largest fresh RTT from ``local`` to any other node (not only candidates); 0 when none."""
        measured = [ms for n in self.snap.rtt if n != local and (ms := self.rtt(n)) is not None]
        return max(measured, default=0.0)
