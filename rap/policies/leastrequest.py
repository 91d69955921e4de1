"""Least-request with two random choices, as Envoy and Istio's LEAST_REQUEST.

Two endpoints are drawn at random (possibly the same one, as Envoy does) and
the one with fewer connections in flight wins; the first drawn wins ties.
Connections are counted from ``next_endpoint`` until ``release``.
"""

from __future__ import annotations

from collections import defaultdict

from rap.policies.base import Endpoint, Policy, ServiceState


class LeastRequest(Policy):
    name = "least-request"

    def __init__(self, *, shuffle: bool = True, seed: int | None = None) -> None:
        super().__init__(shuffle=shuffle, seed=seed)
        self._active: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def _choose(self, service: str, state: ServiceState, now: float) -> Endpoint:
        eps = state.endpoints
        first = eps[self._rng.randrange(len(eps))]
        second = eps[self._rng.randrange(len(eps))]
        active = self._active[service]
        chosen = second if active[second.addr] < active[first.addr] else first
        active[chosen.addr] += 1
        return chosen

    def _sticky_hit(self, service: str, endpoint: Endpoint) -> Endpoint:
        # A sticky connection is still a connection in flight; count it too.
        self._active[service][endpoint.addr] += 1
        return endpoint

    def release(self, service: str, endpoint: Endpoint) -> None:
        active = self._active[service]
        if active.get(endpoint.addr, 0) > 0:
            active[endpoint.addr] -= 1

    def active(self, service: str, endpoint: Endpoint) -> int:
        return self._active[service].get(endpoint.addr, 0)

    def _endpoints_changed(self, service: str, state: ServiceState | None) -> None:
        if state is None:
            self._active.pop(service, None)
            return
        live = {e.addr for e in state.endpoints}
        active = self._active[service]
        for addr in [a for a in active if a not in live]:
            del active[addr]
