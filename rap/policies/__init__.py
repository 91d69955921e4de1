"""Connection-balancing policies behind one interface (``Policy``).

``make_policy`` builds any of them by name, so benchmarks and tests treat them alike.
"""

from __future__ import annotations

from rap.config import RapConfig
from rap.policies.base import (
    AFFINITY_CLIENT_IP,
    AFFINITY_NONE,
    BalancerError,
    Endpoint,
    MissingServiceError,
    NoEndpointsError,
    Policy,
)
from rap.policies.leastrequest import LeastRequest
from rap.policies.rap import Rap
from rap.policies.roundrobin import RoundRobin

POLICY_NAMES = ("round-robin", "rap", "least-request")


def make_policy(
    name: str,
    *,
    local_node: str = "",
    config: RapConfig | None = None,
    shuffle: bool = True,
    seed: int | None = None,
) -> Policy:
    if name == "round-robin":
        return RoundRobin(shuffle=shuffle, seed=seed)
    if name == "least-request":
        return LeastRequest(shuffle=shuffle, seed=seed)
    if name == "rap":
        return Rap(local_node, config, shuffle=shuffle, seed=seed)
    raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}")


__all__ = [
    "AFFINITY_CLIENT_IP",
    "AFFINITY_NONE",
    "BalancerError",
    "Endpoint",
    "LeastRequest",
    "MissingServiceError",
    "NoEndpointsError",
    "POLICY_NAMES",
    "Policy",
    "Rap",
    "RoundRobin",
    "make_policy",
]
