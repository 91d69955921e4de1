"""Fakes shared by the metrics server's unit tests: a clock and cgroup counters moved by hand.

The fixtures ``fake`` and ``api`` are used by importing them into a test module.
"""

from __future__ import annotations

import pytest

from rap.localcluster import metrics as m

REGISTRY = {
    "nodes": {"node-1": "rap/node-1", "node-2": "rap/node-2"},
    "pods": {
        "default/pod-1-1": {"node": "node-1", "cgroup": "rap/node-1/pod-1-1", "container": "web",
                            "labels": {"app": "web", "tier": "a"}},
        "default/pod-2-1": {"node": "node-2", "cgroup": "rap/node-2/pod-2-1", "labels": {"app": "web"}},
        "other/pod-1-2": {"node": "node-1", "cgroup": "rap/node-1/pod-1-2"},
    },
}

ALL = {"rap/node-1": 0.6, "rap/node-2": 0.1, "rap/node-1/pod-1-1": 0.5,
       "rap/node-1/pod-1-2": 0.1, "rap/node-2/pod-2-1": 0.1}


class Fake:
    """A clock and cgroup counters the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.cpu: dict[str, int] = {}
        self.mem: dict[str, int] = {}

    def clock(self):
        return self.t, 1_700_000_000 + self.t

    def read(self, name):
        if name not in self.cpu:
            raise FileNotFoundError(name)
        return self.cpu[name], self.mem.get(name, 4096)


@pytest.fixture
def fake() -> Fake:
    return Fake()


@pytest.fixture
def api(tmp_path, fake: Fake) -> m.MetricsAPI:
    """A MetricsAPI over REGISTRY, sampling ``fake`` with a 5 s window."""
    path = tmp_path / "registry.json"
    m.write_registry(path, REGISTRY["nodes"], REGISTRY["pods"])
    reg = m.RegistryFile(path)
    return m.MetricsAPI(reg, m.Sampler(reg, window=5.0, reader=fake.read, clock=fake.clock))


def run(fake: Fake, sampler: m.Sampler, seconds: int, rates: dict, mem: dict | None = None) -> None:
    """Advance `seconds` one-second ticks, each cgroup using `rates[name]` cores."""
    for _ in range(seconds):
        sampler.tick()
        fake.t += 1.0
        for name, cores in rates.items():
            fake.cpu[name] = fake.cpu.get(name, 0) + int(cores * 1e9)
            fake.mem[name] = (mem or {}).get(name, 8 << 20)
    sampler.tick()
