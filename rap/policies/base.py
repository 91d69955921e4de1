"""The balancing-policy interface, and kube-proxy v1.21's per-service state.

Every policy keeps kube-proxy's userspace LoadBalancerRR semantics for what is
not the choice of endpoint itself: one state per service port, endpoint lists
replaced only when their set changes (then shuffled, cursor reset, affinity to
removed endpoints dropped), ClientIP session affinity checked first and
refreshed on use, with kube-proxy's whole-second expiry. Subclasses decide only
which endpoint a new (non-sticky) connection gets, in ``_choose``.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence

from rap.snapshot import Snapshot

AFFINITY_NONE = "None"
AFFINITY_CLIENT_IP = "ClientIP"
# kube-proxy substitutes 3 hours when a Service asks for affinity without a timeout.
DEFAULT_AFFINITY_TIMEOUT_S = 10800


class BalancerError(LookupError):
    """kube-proxy's two refusals: no such service, or a service with no endpoints."""


class MissingServiceError(BalancerError):
    pass


class NoEndpointsError(BalancerError):
    pass


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    node: str = ""

    @property
    def addr(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass
class _Sticky:
    endpoint: Endpoint
    last_used: float


@dataclass
class ServiceState:
    affinity: str = AFFINITY_NONE
    ttl_s: int = DEFAULT_AFFINITY_TIMEOUT_S
    endpoints: list[Endpoint] = field(default_factory=list)
    index: int = 0
    sticky: dict[str, _Sticky] = field(default_factory=dict)
    # Bumped whenever the endpoint list or an endpoint's node changes, so policies drop caches.
    generation: int = 0


class Policy(ABC):
    """A connection-balancing policy over the endpoints of many services."""

    name: str = "policy"

    def __init__(self, *, shuffle: bool = True, seed: int | None = None) -> None:
        self._services: dict[str, ServiceState] = {}
        self._shuffle = shuffle
        self._rng = random.Random(seed)

    @classmethod
    def create(cls, *, local_node: str = "", config=None, shuffle: bool = True,
               seed: int | None = None) -> "Policy":
        """Build from the registry's common options; a policy that needs more overrides this."""
        return cls(shuffle=shuffle, seed=seed)

    # -- service and endpoint events (kube-proxy's OnEndpoints*/NewService) --

    def new_service(self, service: str, affinity: str = AFFINITY_NONE, ttl_s: int = 0) -> None:
        state = self._services.get(service)
        if state is None:
            self._services[service] = ServiceState(affinity, ttl_s or DEFAULT_AFFINITY_TIMEOUT_S)
        elif affinity:
            state.affinity = affinity

    def delete_service(self, service: str) -> None:
        self._services.pop(service, None)
        self._endpoints_changed(service, None)

    def set_endpoints(self, service: str, endpoints: Sequence[Endpoint]) -> None:
        state = self._services.get(service)
        if not endpoints:
            if state is not None:
                self._reset(state)
            return
        if state is None:
            self.new_service(service)
            state = self._services[service]
        new_addrs = [e.addr for e in endpoints]
        if sorted(e.addr for e in state.endpoints) == sorted(new_addrs):
            # Same set: kube-proxy keeps order and cursor; RAP still needs fresh node names.
            by_addr = {e.addr: e for e in endpoints}
            refreshed = [by_addr[e.addr] for e in state.endpoints]
            if refreshed != state.endpoints:
                state.endpoints = refreshed
                for entry in state.sticky.values():
                    entry.endpoint = by_addr[entry.endpoint.addr]
                state.generation += 1
            return
        by_addr = {e.addr: e for e in endpoints}
        state.sticky = {
            client: _Sticky(by_addr[entry.endpoint.addr], entry.last_used)
            for client, entry in state.sticky.items()
            if entry.endpoint.addr in by_addr
        }
        state.endpoints = list(endpoints)
        if self._shuffle:
            self._rng.shuffle(state.endpoints)
        state.index = 0
        state.generation += 1
        self._endpoints_changed(service, state)

    def _reset(self, state: ServiceState) -> None:
        state.endpoints = []
        state.index = 0
        state.sticky = {}
        state.generation += 1

    # -- metrics and connection lifecycle; policies that ignore them inherit no-ops --

    def update_snapshot(self, snapshot: Snapshot) -> None:
        """A new view of the cluster's resources (only RAP uses it)."""

    def release(self, service: str, endpoint: Endpoint) -> None:
        """A connection to ``endpoint`` has ended (only least-request uses it)."""

    def _endpoints_changed(self, service: str, state: ServiceState | None) -> None:
        """Hook for policies that keep per-endpoint bookkeeping (state None: service deleted)."""

    # -- the decision (kube-proxy's NextEndpoint) --

    def next_endpoint(
        self, service: str, client_ip: str, now: float, affinity_reset: bool = False
    ) -> Endpoint:
        state = self._services.get(service)
        if state is None:
            raise MissingServiceError(f"no service entry for {service}")
        if not state.endpoints:
            raise NoEndpointsError(f"service {service} has no endpoints")
        sticky_on = state.affinity == AFFINITY_CLIENT_IP
        if sticky_on and not affinity_reset:
            entry = state.sticky.get(client_ip)
            # int() truncation is kube-proxy's: int(time.Since(lastUsed).Seconds()) < ttl.
            if entry is not None and int(now - entry.last_used) < state.ttl_s:
                entry.last_used = now
                return self._sticky_hit(service, entry.endpoint)
        endpoint = self._choose(service, state, now)
        if sticky_on:
            state.sticky[client_ip] = _Sticky(endpoint, now)
        return endpoint

    def _sticky_hit(self, service: str, endpoint: Endpoint) -> Endpoint:
        return endpoint

    def _round_robin(self, state: ServiceState) -> Endpoint:
        endpoint = state.endpoints[state.index]
        state.index = (state.index + 1) % len(state.endpoints)
        return endpoint

    @abstractmethod
    def _choose(self, service: str, state: ServiceState, now: float) -> Endpoint:
        """The endpoint for a new connection that no affinity entry decides."""

    def endpoints(self, service: str) -> list[Endpoint]:
        state = self._services.get(service)
        return list(state.endpoints) if state else []
