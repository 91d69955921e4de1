"""The monitor's view of the cluster: resource use of pods and nodes, and RTTs.

A snapshot is immutable; the monitor builds a new one and swaps it in, so the
decision path never waits on the monitor's I/O. Swapping in (``swapped_in_over``)
also sets each pod's and node's ``hot`` flag from the previous snapshot's, so
an item that was hot stays hot until it is clearly below its threshold
(docs/algorithm.md, "Hysteresis").
"""

from __future__ import annotations

import dataclasses
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
    # Set by swapped_in_over; a snapshot nobody swapped in has nothing hot.
    hot_pods: frozenset[str] = frozenset()  # pod IPs
    hot_nodes: frozenset[str] = frozenset()  # node names
    # The nodes whose samples the monitor reads (a bounded view: docs/algorithm.md "Watched nodes");
    # None: every node's. The local node is always watched.
    watched: frozenset[str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "pods", _frozen(self.pods))
        object.__setattr__(self, "nodes", _frozen(self.nodes))
        object.__setattr__(self, "rtt", _frozen(self.rtt))
        object.__setattr__(self, "hot_pods", frozenset(self.hot_pods))
        object.__setattr__(self, "hot_nodes", frozenset(self.hot_nodes))
        if self.watched is not None:
            object.__setattr__(self, "watched", frozenset(self.watched))

    def unwatched(self, node: str, local: str) -> bool:
        """Whether an endpoint on ``node`` lies outside the monitor's view: its lack of samples says
        nothing about its load, so the decision treats it as overloaded (a last resort)."""
        return self.watched is not None and not (node and (node == local or node in self.watched))

    def swapped_in_over(
        self, previous: "Snapshot", *, cpu_threshold: float, mem_threshold: float, hysteresis: float
    ) -> "Snapshot":
        """This snapshot's samples with the hot flags of being swapped in after ``previous``.

        An item is hot when ``cpu >= cpu_threshold - d or mem >= mem_threshold - d``,
        with ``d = hysteresis`` if it was hot in ``previous``, else 0; an item
        without a sample here is not hot.
        """
        def hot(samples: Mapping[str, Usage], was_hot: frozenset[str]) -> frozenset[str]:
            out = set()
            for key, u in samples.items():
                d = hysteresis if key in was_hot else 0.0
                if u.cpu >= cpu_threshold - d or u.mem >= mem_threshold - d:
                    out.add(key)
            return frozenset(out)

        return dataclasses.replace(self, hot_pods=hot(self.pods, previous.hot_pods),
                                   hot_nodes=hot(self.nodes, previous.hot_nodes))

    @classmethod
    def from_json(cls, data: Mapping | None) -> "Snapshot":
        """From the vectors' ``metrics`` object (see tests/vectors/README.md)."""
        data = data or {}
        return cls(
            pods={ip: Usage(**u) for ip, u in data.get("pods", {}).items()},
            nodes={n: Usage(**u) for n, u in data.get("nodes", {}).items()},
            rtt={n: Rtt(**r) for n, r in data.get("rtt_ms", {}).items()},
            watched=data.get("watched"),
        )


EMPTY = Snapshot()
