"""kube-proxy v1.21's userspace round robin (LoadBalancerRR)."""

from __future__ import annotations

from rap.policies.base import Endpoint, Policy, ServiceState


class RoundRobin(Policy):
    name = "round-robin"

    def _choose(self, service: str, state: ServiceState, now: float) -> Endpoint:
        return self._round_robin(state)
