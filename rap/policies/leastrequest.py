"""Least-request with two random choices, as Envoy and Istio's LEAST_REQUEST.

Two endpoints are drawn at random (possibly the same one, as Envoy does) and
the one with fewer connections in flight wins; the first drawn wins ties.
Connections in flight are the policy's bookkeeping (bookkeeping.py): counted
from ``next_endpoint`` until ``release``.
"""

from __future__ import annotations

from rap.policies.base import Endpoint, Policy, ServiceState


class LeastRequest(Policy):
    name = "least-request"

    def _choose(self, service: str, state: ServiceState, now: float) -> Endpoint:
        eps = state.endpoints
        first = eps[self._rng.randrange(len(eps))]
        second = eps[self._rng.randrange(len(eps))]
        active = state.book.active
        return second if active.get(second.addr, 0) < active.get(first.addr, 0) else first
