"""Synthetic bench samples and runs for the unit tests of rap.bench.stats, ci, compare and report."""

from __future__ import annotations

import numpy as np

from rap.bench import stats
from rap.bench.runner import RunRecord


def samples(rng: np.random.Generator, n: int, median_ms: float, *, duration_s: float = 8.0, sigma: float = 0.5,
            fail_share: float = 0.0, local_share: float = 0.5) -> list[dict]:
    """``n`` requests spread evenly over the step, log-normal latencies around ``median_ms``."""
    lat = median_ms * np.exp(sigma * rng.standard_normal(n))
    start = np.sort(rng.uniform(0, duration_s * 0.9, n))
    failed = rng.permutation(n) < round(fail_share * n)  # exactly that share, anywhere in the step
    local = rng.random(n) < local_share
    return [{"start": float(s), "latency_ms": float(v), "status": 0 if f else 200, "pod": "p",
             "node": "node-1" if loc else "node-2", "error": "TimeoutError" if f else "", "client": "node-1"}
            for s, v, f, loc in zip(start, lat, failed, local)]


def record(scenario: str, policy: str, rep: int, rate, data: list[dict], *, duration_s: float = 8.0,
           timeout_s: float = 10.0, closed: bool = True) -> RunRecord:
    """A RunRecord as the runner makes it: measures and outcomes of ``data``."""
    o = stats.outcomes(data, duration_s, timeout_s, closed)
    return RunRecord(scenario, policy, rep, rate, 0, 0.0, stats.measures(o), o, stats.served(data))


def runs(rng, scenario: str, policy: str, median_ms: float, *, reps: int = 3, n: int = 400, rate=None,
         rep_noise: float = 0.0, **kw) -> list[RunRecord]:
    """``reps`` runs of one policy; ``rep_noise``: sigma of a log-normal factor on each whole run's latency."""
    out = []
    for rep in range(1, reps + 1):
        factor = float(np.exp(rep_noise * rng.standard_normal())) if rep_noise else 1.0
        out.append(record(scenario, policy, rep, rate, samples(rng, n, median_ms * factor, **kw)))
    return out
