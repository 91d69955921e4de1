"""The monitor's view of the cluster: resource use of pods and nodes, and RTTs.

A snapshot is immutable; the monitor builds a new one and swaps it in, so the
decision path never waits on the monitor's I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping


@dataclass(frozen=True)
class Usage:
    """CPU and memory use as fractions (of a pod's limit, or a node's allocatable)."""

    cpu: float
    mem: float
    at: float  # when it was measured, seconds on the balancer's clock


@dataclass(frozen=True)
class Rtt:
    """Round-trip time from the local node to another node."""

    ms: float
    at: float


def _frozen(mapping: Mapping | None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Snapshot:
    pods: Mapping[str, Usage] = field(default_factory=dict)  # by pod IP
    nodes: Mapping[str, Usage] = field(default_factory=dict)  # by node name
    rtt: Mapping[str, Rtt] = field(default_factory=dict)  # by destination node

    def __post_init__(self) -> None:
        object.__setattr__(self, "pods", _frozen(self.pods))
        object.__setattr__(self, "nodes", _frozen(self.nodes))
        object.__setattr__(self, "rtt", _frozen(self.rtt))

    @classmethod
    def from_json(cls, data: Mapping | None) -> "Snapshot":
        """From the vectors' ``metrics`` object (see tests/vectors/README.md)."""
        data = data or {}
        return cls(
            pods={ip: Usage(**u) for ip, u in data.get("pods", {}).items()},
            nodes={n: Usage(**u) for n, u in data.get("nodes", {}).items()},
            rtt={n: Rtt(**r) for n, r in data.get("rtt_ms", {}).items()},
        )


EMPTY = Snapshot()
