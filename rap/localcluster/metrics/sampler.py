"""Usage of the registered cgroups, measured as metrics-server measures a kubelet's.

CPU is a rate between two samples of the cumulative counter, in nanocores:
the newest sample against the latest one taken at least ``window`` seconds
before it (shorter just after start), reported as the window; memory is the
working set of the newest sample. Not where usage is rendered (``wire``) or
served (``server``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from rap.localcluster import cgroups
from rap.localcluster.metrics.registry import RegistryFile

Reader = Callable[[str], tuple[int, int]]  # cgroup name -> (cpu ns, memory bytes)


def read_cgroup(name: str) -> tuple[int, int]:
    g = cgroups.group(name)
    return g.cpu_usage_ns(), g.memory_bytes()


@dataclass(frozen=True)
class Sample:
    mono: float  # for rates: immune to clock steps
    wall: float  # for the reported timestamp
    cpu_ns: int
    mem: int


@dataclass(frozen=True)
class Usage:
    timestamp: float
    window_ns: int
    nanocores: int
    memory: int


class Sampler:
    """Samples every registered cgroup; usage = rate over the newest window."""

    def __init__(self, registry: RegistryFile, window: float, reader: Reader = read_cgroup,
                 clock: Callable[[], tuple[float, float]] = lambda: (time.monotonic(), time.time())):
        self.registry, self.window, self.reader, self.clock = registry, window, reader, clock
        self.samples: dict[str, deque[Sample]] = {}
        self.lock = threading.Lock()

    def tick(self) -> None:
        names = self.registry.get().cgroups()
        fresh = {}
        for name in names:
            try:
                cpu, mem = self.reader(name)
            except (OSError, ValueError, KeyError):
                continue  # group gone or not yet made: no metrics, like a pod not yet scraped
            mono, wall = self.clock()
            fresh[name] = Sample(mono, wall, cpu, mem)
        with self.lock:
            self.samples = {n: self._append(n, s) for n, s in fresh.items()}

    def _append(self, name: str, s: Sample) -> deque[Sample]:
        q = self.samples.get(name, deque())
        if q and s.cpu_ns < q[-1].cpu_ns:
            q = deque()  # counter went back: the group was recreated
        q.append(s)
        while len(q) > 2 and s.mono - q[1].mono >= self.window:
            q.popleft()  # q[0] stays the latest sample at least `window` old
        return q

    def usage(self, name: str) -> Usage | None:
        with self.lock:
            q = self.samples.get(name)
            if not q or len(q) < 2:
                return None
            first, last = q[0], q[-1]
        dt = last.mono - first.mono
        if dt <= 0:
            return None
        rate = (last.cpu_ns - first.cpu_ns) / dt
        return Usage(last.wall, int(dt * 1e9), int(rate), last.mem)

    def run(self, interval: float, stop: threading.Event) -> None:
        while not stop.is_set():
            self.tick()
            stop.wait(interval)
