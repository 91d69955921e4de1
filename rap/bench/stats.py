"""Measures of one run, and medians with spread over repetitions, and ratios.

Pure functions on plain data, so they are unit-tested without a cluster.
A *sample* here is a mapping with at least ``latency_ms``, ``status`` and
``node`` (the node that served it) and ``client`` (the node the request came
from); rap.loadgen's Sample plus the client the runner adds.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

MEASURES = ("throughput_rps", "p50_ms", "p95_ms", "p99_ms", "error_rate", "local_share")
# For each measure, whether a higher value is better (for the report's wording).
HIGHER_IS_BETTER = {"throughput_rps": True, "p50_ms": False, "p95_ms": False, "p99_ms": False,
                    "error_rate": False, "local_share": True}


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between ranks; None if empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def run_measures(samples: Iterable[Mapping], duration_s: float) -> dict:
    """Throughput, latency percentiles, error rate and local share of one run.

    Throughput counts successful requests per second of the load's duration.
    Latency percentiles are over successful requests (errors are counted in
    ``error_rate``, not hidden in the latency). Local share: of the successful
    requests, those served on the node they came from.
    """
    if duration_s <= 0:
        raise ValueError("duration must be > 0")
    samples = list(samples)
    ok = [s for s in samples if s["status"] == 200]
    lat = [float(s["latency_ms"]) for s in ok]
    local = sum(1 for s in ok if s.get("node") and s.get("node") == s.get("client"))
    return {
        "requests": len(samples),
        "ok": len(ok),
        "throughput_rps": len(ok) / duration_s,
        "p50_ms": percentile(lat, 50),
        "p95_ms": percentile(lat, 95),
        "p99_ms": percentile(lat, 99),
        "error_rate": (len(samples) - len(ok)) / len(samples) if samples else None,
        "local_share": local / len(ok) if ok else None,
    }


def spread(values: Iterable[float | None]) -> dict:
    """Median, min, max and quartiles of the repetitions' values (None values are left out)."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return {"median": None, "min": None, "max": None, "q1": None, "q3": None, "n": 0}
    return {"median": percentile(xs, 50), "min": min(xs), "max": max(xs),
            "q1": percentile(xs, 25), "q3": percentile(xs, 75), "n": len(xs)}


def summarize(runs: Sequence[Mapping]) -> dict:
    """Per measure, the spread over repetitions of one scenario, policy (and rate)."""
    return {m: spread(r.get(m) for r in runs) for m in MEASURES}


def ratio(num: float | None, den: float | None) -> float | None:
    """num/den, or None when either is missing or den is 0."""
    if num is None or den is None or den == 0:
        return None
    return num / den


def ratios(policy: Mapping, baseline: Mapping) -> dict:
    """Ratio of medians, measure by measure (policy / baseline)."""
    return {m: ratio(policy[m]["median"], baseline[m]["median"]) for m in MEASURES if m != "error_rate"}
