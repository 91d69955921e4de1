"""The aggregator's period loop: one round per period, the Lease renewed only after a good one.

A round reads the reflectors' Nodes and Pods and both metrics lists, works
out every node's record (``usage``), writes what changed (``publish``) and
renews the Lease with the newest metrics timestamp it read. A round that fails
anywhere (reflectors not synced, metrics unreadable, a write refused) does not
renew the Lease: the kube-proxies then see the published samples go stale
and balance as round robin. A failed round never ends the loop; its cause is
logged once per change of state (working, or failing for one reason), not
once per period. ``stop`` (set by SIGTERM in ``__main__``) ends the loop
between rounds. Not here: the options (``options``), the API (``kube``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from rap.aggregator import publish, usage
from rap.aggregator.kube import API_ERRORS, Kube, describe
from rap.aggregator.publish import Rule
from rap.aggregator.usage import NodeRecord

log = logging.getLogger("rap.aggregator")

# ConfigMap writes in flight at once. One at a time (~35 ms each here) a round of the ~700
# changes of 1,000 KWOK nodes took six 5 s periods (rap.scale), so the Lease went stale.
WRITERS = 8
RESYNC_S = 600.0  # how often what is published is listed again (someone may have edited or deleted it)


class RoundError(RuntimeError):
    """A round that must not renew the Lease; the message says why."""


@dataclass(frozen=True)
class Settings:
    period_s: float
    rule: Rule
    lease_s: int  # the Lease's leaseDurationSeconds: how long its heartbeat vouches for the data

    @classmethod
    def of(cls, config, publish_step: float = publish.DEFAULT_STEP) -> "Settings":
        """From a RapConfig: its period, its thresholds and hysteresis, the Lease lasting stale_after_s."""
        return cls(config.period_s, Rule.of(config, publish_step), max(1, math.ceil(config.stale_after_s)))


@dataclass(frozen=True)
class Result:
    """A good round: how many nodes are published, and what it wrote besides the Lease."""

    nodes: int
    created: int
    replaced: int
    deleted: int

    @property
    def writes(self) -> int:
        return self.created + self.replaced + self.deleted


class Aggregator:
    """Rounds over one ``Kube``; ``published`` is what the namespace holds, by node name."""

    def __init__(self, kube: Kube, settings: Settings, wall: Callable[[], datetime] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kube, self.settings = kube, settings
        self.wall = wall or (lambda: datetime.now(timezone.utc))
        self.clock = clock
        self.published: dict[str, NodeRecord | None] | None = None  # None: list it first
        self._listed_at = 0.0
        self._state: tuple[bool, str] | None = None  # what was last logged

    def round(self) -> Result:
        """One round; RoundError (or the API's exception) when the Lease must not be renewed."""
        if self.published is None or self.clock() - self._listed_at > RESYNC_S:
            self.published, self._listed_at = self.kube.published(), self.clock()
        nodes, pods = self.kube.cluster()
        current = usage.records(nodes, pods, self.kube.metrics("pods"), self.kube.metrics("nodes"))
        plan = publish.plan(self.published, current.records, self.settings.rule)
        failed = self._write(plan)
        if failed:
            raise RoundError(f"{len(failed)} of {len(plan)} ConfigMap writes failed, first {failed[0]}")
        self.kube.renew(current.newest or self.wall(), self.settings.lease_s, self.wall())
        return Result(len(current.records), len(plan.create), len(plan.replace), len(plan.delete))

    def _write(self, plan: publish.Plan) -> list[str]:
        """Every write of ``plan``, WRITERS at a time; what failed (the others are still written)."""
        jobs = ([(self.kube.create, r, r.name, r) for r in plan.create]
                + [(self.kube.replace, r, r.name, r) for r in plan.replace]
                + [(self.kube.delete, node, node, None) for node in plan.delete])
        failed: list[str] = []
        with ThreadPoolExecutor(max_workers=WRITERS) as pool:
            futures = [(pool.submit(write, arg), name, record) for write, arg, name, record in jobs]
            for future, name, record in futures:  # the bookkeeping stays on this thread
                try:
                    future.result()
                except Exception as exc:  # noqa: BLE001 - the round fails, and says which write
                    failed.append(f"{'' if record else 'delete '}{publish.configmap_name(name)}: {describe(exc)}")
                    continue
                if record is None:
                    del self.published[name]
                else:
                    self.published[name] = record
        return failed

    def step(self) -> Result | None:
        """A round whose failure is logged (once per change of state), never raised."""
        try:
            result = self.round()
        except Exception as exc:  # noqa: BLE001 - an API error, or a bug: log it (a bug with its traceback), go on
            self._note(False, str(exc) if isinstance(exc, RoundError) else describe(exc),
                       exc_info=None if isinstance(exc, (RoundError, *API_ERRORS)) else exc)
            return None
        self._note(True, f"publishing {result.nodes} nodes in {self.kube.namespace}, renewing "
                         f"Lease {publish.LEASE} every {self.settings.period_s:g}s")
        log.debug("round: %d created, %d replaced, %d deleted", result.created, result.replaced, result.deleted)
        return result

    def _note(self, ok: bool, reason: str, exc_info: BaseException | None = None) -> None:
        key = (ok, reason if not ok else "")
        if key == self._state:
            return
        self._state = key
        if ok:
            log.info("aggregator working: %s", reason)
        else:
            log.error("aggregator round failed (%s); Lease %s not renewed until a round succeeds", reason,
                      publish.LEASE, exc_info=exc_info)

    def run(self, stop: threading.Event) -> None:
        """Rounds every period until ``stop``; a round that takes longer than the period is followed at once."""
        while not stop.is_set():
            started = self.clock()
            self.step()
            stop.wait(max(0.0, self.settings.period_s - (self.clock() - started)))
