"""Decisions per second of each balancing policy, measured side by side.

Runs tests/unit/test_bench_policies.py under pytest-benchmark in one process
(so all policies share the same machine state), then prints decisions per
second and RAP's cost relative to round robin at each size.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rap.paths import REPO

BENCH_FILE = REPO / "tests" / "unit" / "test_bench_policies.py"
RAP_MIN_DECISIONS_PER_S = 100_000  # at 30 endpoints, issue 2's target
RAP_MAX_COST_RATIO = 3.0  # RAP's time per decision over round robin's, at 30 endpoints


@dataclass(frozen=True)
class Result:
    policy: str
    endpoints: int
    decisions_per_s: float


DEFAULT_ROUNDS = 20


def run(min_rounds: int | str | None = None) -> list[Result]:
    """Decisions per second of each policy; ``min_rounds`` as --rounds gives it (text or a number)."""
    from rap.options import count

    min_rounds = count("--rounds", min_rounds, DEFAULT_ROUNDS)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        cmd = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(BENCH_FILE),
            "--benchmark-enable", f"--benchmark-min-rounds={min_rounds}",
            f"--benchmark-json={out}", "--benchmark-disable-gc",
        ]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark run failed:\n{proc.stdout}\n{proc.stderr}")
        data = json.loads(out.read_text())
    results = []
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        # Each round decides a batch; the median is robust to a noisy neighbour.
        per_s = info["batch"] / bench["stats"]["median"]
        results.append(Result(info["policy"], info["endpoints"], per_s))
    return sorted(results, key=lambda r: (r.endpoints, r.policy))


def ratios(results: list[Result]) -> dict[int, float]:
    """RAP's time per decision divided by round robin's, by endpoint count."""
    by = {(r.policy, r.endpoints): r.decisions_per_s for r in results}
    return {n: by[("round-robin", n)] / by[("rap", n)] for (p, n) in by if p == "rap"}


def report(results: list[Result]) -> tuple[str, bool]:
    lines = [f"{'policy':<15}{'endpoints':>10}{'decisions/s':>16}"]
    lines += [f"{r.policy:<15}{r.endpoints:>10}{r.decisions_per_s:>16,.0f}" for r in results]
    cost = ratios(results)
    lines.append("")
    for n, ratio in sorted(cost.items()):
        lines.append(f"RAP cost / round-robin cost at {n:>3} endpoints: {ratio:.2f}x")
    rap30 = next(r.decisions_per_s for r in results if r.policy == "rap" and r.endpoints == 30)
    ok = cost[30] <= RAP_MAX_COST_RATIO and rap30 >= RAP_MIN_DECISIONS_PER_S
    lines.append(
        f"targets at 30 endpoints: RAP cost <= {RAP_MAX_COST_RATIO:.0f}x round robin "
        f"({cost[30]:.2f}x), RAP >= {RAP_MIN_DECISIONS_PER_S:,} decisions/s ({rap30:,.0f}): "
        + ("met" if ok else "NOT met")
    )
    return "\n".join(lines), ok
