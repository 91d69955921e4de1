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

# The registry: name -> policy class, in the order reports list them.
POLICIES: dict[str, type[Policy]] = {cls.name: cls for cls in (RoundRobin, Rap, LeastRequest)}
POLICY_NAMES = tuple(POLICIES)


def make_policy(
    name: str,
    *,
    local_node: str = "",
    config: RapConfig | None = None,
    shuffle: bool = True,
    seed: int | None = None,
) -> Policy:
    try:
        cls = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}") from None
    return cls.create(local_node=local_node, config=config, shuffle=shuffle, seed=seed)


__all__ = [
    "AFFINITY_CLIENT_IP",
    "AFFINITY_NONE",
    "BalancerError",
    "Endpoint",
    "LeastRequest",
    "MissingServiceError",
    "NoEndpointsError",
    "POLICIES",
    "POLICY_NAMES",
    "Policy",
    "Rap",
    "RoundRobin",
    "make_policy",
]
