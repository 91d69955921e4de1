"""The balancing-policy interface, and kube-proxy v1.21's per-service state.

Every policy keeps kube-proxy's userspace LoadBalancerRR semantics for what is
not the choice of endpoint itself: one state per service port, endpoint lists
replaced only when their set changes (then shuffled, cursor reset, affinity to
removed endpoints dropped), ClientIP session affinity checked first and
refreshed on use, with kube-proxy's whole-second expiry. Each service port also
keeps the connection bookkeeping of docs/algorithm.md (bookkeeping.py): every
endpoint returned counts as a connection until ``release``, and a retry after a
failed dial (``affinity_reset`` with the same ``src``) takes the failed one back.
Subclasses decide only which endpoint a new (non-sticky) connection gets, in
``_choose``.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

from rap.config import FIELDS
from rap.policies.bookkeeping import ConnectionBook
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

    @cached_property  # read on every decision (the bookkeeping's key)
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
    book: ConnectionBook = field(default_factory=ConnectionBook)


class Policy(ABC):
    """A connection-balancing policy over the endpoints of many services."""

    name: str = "policy"
    # How long an endpoint whose dial failed stays a last resort; only RAP reads ejections.
    eject_s: float = FIELDS["eject_s"].default

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

    def service_nodes(self) -> list[list[str]]:
        """Per service, the nodes of its endpoints (what a monitor's bounded view is drawn from)."""
        # A copy first (one C call): a monitor thread asks while the event loop adds and removes services.
        return [[e.node for e in state.endpoints] for state in list(self._services.values())]

    def delete_service(self, service: str) -> None:
        self._services.pop(service, None)
        self._endpoints_changed(service, None)

    def set_endpoints(self, service: str, endpoints: Sequence[Endpoint]) -> None:
        """kube-proxy's OnEndpointsUpdate: the list is replaced only when its set of addresses changes."""
        state = self._services.get(service)
        if not endpoints:
            if state is not None:
                self._reset(state)
            return
        if state is None:
            self.new_service(service)
            state = self._services[service]
        if sorted(e.addr for e in state.endpoints) == sorted(e.addr for e in endpoints):
            self._refresh_nodes(state, endpoints)
            return
        by_addr = {e.addr: e for e in endpoints}
        # kube-proxy's removeStaleAffinity drops only entries for endpoints of the *old* list
        # that are gone; one that OnEndpointsAdd left pointing at an unlisted endpoint survives.
        removed = {e.addr for e in state.endpoints} - set(by_addr)
        state.sticky = {
            client: _Sticky(by_addr.get(entry.endpoint.addr, entry.endpoint), entry.last_used)
            for client, entry in state.sticky.items()
            if entry.endpoint.addr not in removed
        }
        self._replace(service, state, endpoints)

    def add_endpoints(self, service: str, endpoints: Sequence[Endpoint]) -> None:
        """kube-proxy's OnEndpointsAdd (a Service's first Endpoints, a resync): replace unconditionally.

        As upstream: an empty list leaves an existing service alone, and affinity
        entries are kept even if their endpoint is gone (only the update path drops them).
        """
        state = self._services.get(service)
        if state is None:
            self.new_service(service)
            state = self._services[service]
        elif not endpoints:
            return
        if endpoints:
            self._replace(service, state, endpoints)

    def _refresh_nodes(self, state: ServiceState, endpoints: Sequence[Endpoint]) -> None:
        # Same set: kube-proxy keeps order and cursor; RAP still needs fresh node names.
        by_addr = {e.addr: e for e in endpoints}
        refreshed = [by_addr[e.addr] for e in state.endpoints]
        if refreshed != state.endpoints:
            state.endpoints = refreshed
            for entry in state.sticky.values():
                # an entry kept by OnEndpointsAdd may point at an endpoint no longer listed
                entry.endpoint = by_addr.get(entry.endpoint.addr, entry.endpoint)
            state.generation += 1

    def _replace(self, service: str, state: ServiceState, endpoints: Sequence[Endpoint]) -> None:
        state.endpoints = list(endpoints)
        if self._shuffle:
            self._rng.shuffle(state.endpoints)
        state.index = 0
        state.generation += 1
        state.book.keep_only({e.addr for e in endpoints})
        self._endpoints_changed(service, state)

    def _reset(self, state: ServiceState) -> None:
        state.endpoints = []
        state.index = 0
        state.sticky = {}
        state.generation += 1
        state.book.clear()

    # -- metrics and connection lifecycle; policies that ignore them inherit no-ops --

    def update_snapshot(self, snapshot: Snapshot) -> Snapshot:
        """A new view of the cluster's resources (only RAP uses it); returns it as swapped in."""
        return snapshot

    def release(self, service: str, endpoint: Endpoint) -> None:
        """ConnectionDone: a connection to ``endpoint`` has ended (its count never goes below 0)."""
        state = self._services.get(service)
        if state is not None:
            state.book.done(endpoint.addr)

    def active(self, service: str, endpoint: Endpoint) -> int:
        """Connections handed to ``endpoint`` that have not been released."""
        state = self._services.get(service)
        return state.book.active.get(endpoint.addr, 0) if state else 0

    def is_ejected(self, service: str, endpoint: Endpoint, now: float) -> bool:
        """Whether ``endpoint`` is a last resort at ``now`` after a failed dial."""
        state = self._services.get(service)
        return state is not None and state.book.is_ejected(endpoint.addr, now)

    def _endpoints_changed(self, service: str, state: ServiceState | None) -> None:
        """Hook for policies with state of their own per endpoint list (state None: service deleted)."""

    # -- the decision (kube-proxy's NextEndpoint) --

    def next_endpoint(
        self, service: str, client_ip: str, now: float, affinity_reset: bool = False, *, src: str | None = None
    ) -> Endpoint:
        """The endpoint for a new connection from ``client_ip`` at ``now``.

        ``src`` is the client's full source address, ``ip:port`` (kube-proxy's
        srcAddr); with it, a request with ``affinity_reset`` is recognised as
        the retry of a failed dial. Without it, no retry is detected.
        """
        state = self._services.get(service)
        if state is None:
            raise MissingServiceError(f"no service entry for {service}")
        if not state.endpoints:
            raise NoEndpointsError(f"service {service} has no endpoints")
        if affinity_reset and src is not None:
            state.book.retried(src, now, state.endpoints, self.eject_s)
        endpoint = self._sticky(state, client_ip, now, affinity_reset)
        if endpoint is None:
            endpoint = self._choose(service, state, now)
            if state.affinity == AFFINITY_CLIENT_IP:
                state.sticky[client_ip] = _Sticky(endpoint, now)
        state.book.opened(endpoint.addr, src, now)
        return endpoint

    @staticmethod
    def _sticky(state: ServiceState, client_ip: str, now: float, affinity_reset: bool) -> Endpoint | None:
        """The client's live affinity entry, refreshed; None when there is none or it is skipped."""
        if state.affinity != AFFINITY_CLIENT_IP or affinity_reset:
            return None
        entry = state.sticky.get(client_ip)
        # int() truncation is kube-proxy's: int(time.Since(lastUsed).Seconds()) < ttl.
        if entry is None or int(now - entry.last_used) >= state.ttl_s:
            return None
        entry.last_used = now
        return entry.endpoint

    def _round_robin(self, state: ServiceState, now: float | None = None) -> Endpoint:
        """kube-proxy's round robin; given ``now``, it skips endpoints ejected then, unless all are."""
        eps, n = state.endpoints, len(state.endpoints)
        i = state.index
        if now is not None and state.book.ejected_until:
            for k in range(n):
                if not state.book.is_ejected(eps[(state.index + k) % n].addr, now):
                    i = (state.index + k) % n
                    break
        state.index = (i + 1) % n
        return eps[i]

    @abstractmethod
    def _choose(self, service: str, state: ServiceState, now: float) -> Endpoint:
        """The endpoint for a new connection that no affinity entry decides."""

    def endpoints(self, service: str) -> list[Endpoint]:
        state = self._services.get(service)
        return list(state.endpoints) if state else []
