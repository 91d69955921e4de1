"""What a proxy knows of its own connections to one service port (docs/algorithm.md,
"Connection bookkeeping (both modes)").

No metric is needed for it, and it is current to the connection: how many
connections this proxy handed to each endpoint and has not seen end
(``active``), the endpoint it last gave each client address (``last``, so that
kube-proxy's retry after a failed dial can be recognised), and until when an
endpoint that failed a dial is a last resort (``ejected_until``).

Not here: what a policy makes of it (rap.py, adaptive.py), and when a
connection ends (the proxy calls ``Policy.release``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from rap.policies.base import Endpoint

# kube-proxy's dial timeouts (EndpointDialTimeouts) add up to 15 s: a retry
# comes within this of the try it repeats.
RETRY_WINDOW_S = 20.0


class ConnectionBook:
    """The bookkeeping of one service port; addresses are ``ip:port``."""

    def __init__(self) -> None:
        self.active: dict[str, int] = {}
        self.ejected_until: dict[str, float] = {}
        # src -> (addr, at), oldest first: requests come in time order, so pruning pops from the front.
        self._last: dict[str, tuple[str, float]] = {}
        # Bumped by every ejection, so a plan made over the usable set knows it may be stale.
        self.ejections = 0

    def opened(self, addr: str, src: str | None, now: float) -> None:
        """NextEndpoint returned ``addr`` to ``src`` (None: the caller gave no source address)."""
        self.active[addr] = self.active.get(addr, 0) + 1
        if src is not None:
            self._last.pop(src, None)
            self._last[src] = (addr, now)
            self._prune_last(now)

    def done(self, addr: str) -> None:
        """ConnectionDone: one connection to ``addr`` ended (never below 0)."""
        n = self.active.get(addr, 0)
        if n > 1:
            self.active[addr] = n - 1
        else:
            self.active.pop(addr, None)

    def retried(self, src: str, now: float, endpoints: Sequence[Endpoint], eject_s: float) -> str | None:
        """A request with affinity_reset from ``src``: the dial of the endpoint it last got failed.

        That endpoint, if still listed and handed out at most RETRY_WINDOW_S ago,
        loses the connection it never made and is ejected for ``eject_s``;
        returns its address (None when there was nothing to report).
        """
        entry = self._last.pop(src, None)
        if entry is None:
            return None
        addr, at = entry
        if now - at > RETRY_WINDOW_S or not any(e.addr == addr for e in endpoints):
            return None
        self.done(addr)
        self.ejected_until[addr] = now + eject_s
        self.ejections += 1
        return addr

    def last(self, src: str) -> tuple[str, float] | None:
        """The endpoint last returned to ``src`` and when (entries past the window may be gone)."""
        return self._last.get(src)

    def is_ejected(self, addr: str, now: float) -> bool:
        until = self.ejected_until.get(addr)
        return until is not None and now <= until

    def usable(self, endpoints: list[Endpoint], now: float) -> tuple[list[int], float]:
        """U as positions in ``endpoints``: those not ejected at ``now``, in list order (all of
        them when every one is), and the time up to which U stays so at the least: the
        earliest ``ejected_until`` of those ejected (inf when none is)."""
        if not self.ejected_until:
            return list(range(len(endpoints))), math.inf
        usable: list[int] = []
        holds_until = math.inf
        for i, e in enumerate(endpoints):
            until = self.ejected_until.get(e.addr)
            if until is not None and now <= until:
                holds_until = min(holds_until, until)
            else:
                usable.append(i)
        return (usable or list(range(len(endpoints)))), holds_until

    def keep_only(self, addrs: set[str]) -> None:
        """Churn: drop what is about addresses no longer listed; the rest stays (still open)."""
        for table in (self.active, self.ejected_until):
            for addr in [a for a in table if a not in addrs]:
                del table[addr]
        self._last = {src: entry for src, entry in self._last.items() if entry[0] in addrs}

    def clear(self) -> None:
        self.active.clear()
        self.ejected_until.clear()
        self._last.clear()

    def _prune_last(self, now: float) -> None:
        # Every connection has its own source port, so without this the table grows forever.
        while self._last:
            src, (_, at) = next(iter(self._last.items()))
            if now - at <= RETRY_WINDOW_S:
                return
            del self._last[src]
