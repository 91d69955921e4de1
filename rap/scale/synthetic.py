"""Synthetic CPU and memory for KWOK's simulated nodes and pods: steady values with small noise, fixed by a seed.

The local cluster's metrics server (rap.localcluster.metrics) measures
cgroups through a *reader*, ``name -> (cumulative CPU ns, memory bytes)``.
Simulated pods have no cgroup, so the scale run registers each under a name
``synthetic/pod/<namespace>/<name>`` or ``synthetic/node/<name>`` and serves
them with ``SyntheticReader``: every name gets a base CPU and memory fraction
of its capacity from a hash of (seed, name), and its use drifts around that
by a slow sine of ±``NOISE`` (relative), with a phase from the same hash.
CPU is the integral of that rate, so the metrics server's own rate over its
window gives the same steady value as on a real cluster. Any other name is a
real cgroup (the local cluster's real nodes) and goes to ``fallback``.

Same seed, same name, same time: same numbers (tests check it).
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Callable

PREFIX = "synthetic/"
# The shapes of the simulated objects (rap.scale.fakecluster writes them into Nodes and Pods).
POD_CPU = 0.25  # cores: each simulated pod's limit (and request)
POD_MEM = 256 * 2**20
NODE_CPU = 4.0  # cores allocatable on a simulated node
NODE_MEM = 16 * 2**30
NOISE = 0.05  # relative amplitude of the drift around the base value
DRIFT_PERIOD_S = 60.0
CPU_RANGE = (0.10, 0.60)  # base fraction of capacity: below RAP's thresholds (0.8 CPU, 0.9 memory)
MEM_RANGE = (0.20, 0.70)


def pod_name(namespace: str, name: str) -> str:
    return f"{PREFIX}pod/{namespace}/{name}"


def node_name(name: str) -> str:
    return f"{PREFIX}node/{name}"


def _uniforms(seed: int, name: str) -> tuple[float, float, float, float]:
    digest = hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=16).digest()
    return tuple(int.from_bytes(digest[i:i + 4], "big") / 2**32 for i in range(0, 16, 4))  # type: ignore[return-value]


def capacity(name: str) -> tuple[float, int]:
    """(cores, bytes) that a synthetic name's use is a fraction of."""
    return (NODE_CPU, NODE_MEM) if name.startswith(PREFIX + "node/") else (POD_CPU, POD_MEM)


def base(seed: int, name: str) -> tuple[float, float, float, float]:
    """(cpu fraction, memory fraction, cpu phase, memory phase) of ``name`` under ``seed``."""
    a, b, c, d = _uniforms(seed, name)
    lo, hi = CPU_RANGE
    mlo, mhi = MEM_RANGE
    return lo + (hi - lo) * a, mlo + (mhi - mlo) * b, 2 * math.pi * c, 2 * math.pi * d


def usage(seed: int, name: str, t: float) -> tuple[float, float]:
    """(cpu fraction, memory fraction) of ``name`` at ``t`` seconds after the reader started."""
    cpu, mem, pc, pm = base(seed, name)
    w = 2 * math.pi / DRIFT_PERIOD_S
    return cpu * (1 + NOISE * math.cos(w * t + pc)), mem * (1 + NOISE * math.sin(w * t + pm))


def counters(seed: int, name: str, t: float) -> tuple[int, int]:
    """(cumulative CPU nanoseconds since the start, memory bytes) at ``t``: the integral of ``usage``'s CPU."""
    cpu, _, pc, _ = base(seed, name)
    cores, mem_cap = capacity(name)
    w = 2 * math.pi / DRIFT_PERIOD_S
    integral = cpu * (t + NOISE / w * (math.sin(w * t + pc) - math.sin(pc)))
    return int(1e9 * cores * integral), int(mem_cap * usage(seed, name, t)[1])


class SyntheticReader:
    """A metrics-server reader: synthetic names from ``counters``, every other name from ``fallback``."""

    def __init__(self, seed: int, fallback: Callable[[str], tuple[int, int]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seed, self.fallback, self.clock = seed, fallback, clock
        self.t0 = clock()

    def __call__(self, name: str) -> tuple[int, int]:
        if name.startswith(PREFIX):
            return counters(self.seed, name, self.clock() - self.t0)
        if self.fallback is None:
            raise KeyError(name)
        return self.fallback(name)
