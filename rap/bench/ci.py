"""95% confidence intervals for the report's ratios (one policy's median over repetitions / another's).

The ratio itself is the one the tables and targets state: the median over
repetitions of each policy's per-run measure, one over the other. A bench
has few repetitions (3, or 1 with --quick), so a bootstrap over repetitions
alone is degenerate (3 reps have 10 distinct resamples, and their range
covers the true centre only 75% of the time). The interval is therefore the
hull of two intervals, each honest about one source of noise:

- **Within the runs**: a block bootstrap stratified by repetition. Each
  run's step is cut into ``stats.BLOCKS`` equal time blocks; a replicate
  draws that many blocks with replacement in every run of both policies,
  recomputes every run's measure from the drawn requests, takes the median
  over repetitions per policy and their ratio. Blocks, not single requests,
  because requests close in time are not independent: RAP decides once per
  monitor period, and a backlog or a scheduler hiccup lasts a while.
  Resampling time also gives closed-loop throughput (a count) its noise,
  which a fixed-size resample of requests would not. The 2.5th and 97.5th
  percentiles of ``RESAMPLES`` replicates. This is the only part a single
  repetition has.
- **Between the runs**: with two or more repetitions, a paired t interval
  on the per-repetition log ratios (rep r of one policy against rep r of
  the other: they ran back to back, so the machine's state was alike), with
  k-1 degrees of freedom. It carries the run-to-run noise of a shared
  machine (±10-20% on short requests here), which the bootstrap cannot see
  and which usually dominates; with 3 reps its t quantile of 4.3 makes it
  wide, as 3 reps deserve.

Taking the hull covers at least as often as the better of the two, and the
bootstrap's width is a floor when a few reps agree by chance. The random
numbers are seeded per run (scenario, policy, rep, rate), so a report is
reproducible and does not depend on the order it is computed in.
"""

from __future__ import annotations

import math
import warnings
import zlib
from typing import Sequence

import numpy as np

from rap.bench import stats

LEVEL = 0.95
RESAMPLES = 2000
SEED = 2869  # the paper's article number
# Two-sided 95% quantiles of Student's t by degrees of freedom (reps - 1; MAX_REPS is 20).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
        10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110,
        18: 2.101, 19: 2.093, 20: 2.086}
BOOTSTRAPPED = ("throughput_rps", "p50_ms", "p95_ms", "p99_ms", "local_share", "error_rate")
CELLS_PER_CHUNK = 2_000_000  # replicates x requests held at once while computing percentiles


def describe() -> dict:
    """The method, for summary.json."""
    return {"level": LEVEL, "ratio": "median over repetitions / median over repetitions",
            "method": "hull of a block bootstrap stratified by repetition (within runs) and a paired t "
                      "interval on per-repetition log ratios (between runs, 2+ repetitions)",
            "resamples": RESAMPLES, "blocks_per_step": stats.BLOCKS, "seed": SEED}


def t_quantile(df: int) -> float:
    if df < 1:
        raise ValueError("t quantile needs >= 1 degree of freedom")
    # Beyond the table, the first terms of the Cornish-Fisher expansion around the normal's 1.96.
    return T975.get(df) or 1.96 + (1.96 ** 3 + 1.96) / (4 * df)


def block_replicates(o: stats.Outcomes, rng: np.random.Generator, resamples: int = RESAMPLES) -> dict:
    """Per bootstrapped measure, ``resamples`` values of the run's measure over resampled time blocks."""
    weights = rng.multinomial(stats.BLOCKS, [1 / stats.BLOCKS] * stats.BLOCKS, size=resamples)
    per_block = lambda flags: np.bincount(o.block, weights=flags, minlength=stats.BLOCKS)  # noqa: E731
    ok, local = weights @ per_block(o.ok), weights @ per_block(o.local)
    n = weights @ per_block(np.ones(len(o)))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {"throughput_rps": weights @ per_block(o.counted) / o.duration_s,
               "local_share": np.where(ok > 0, local / ok, np.nan),
               "error_rate": np.where(n > 0, (n - ok) / n, np.nan)}
    out.update(_percentiles(o, weights))
    return out


def _percentiles(o: stats.Outcomes, weights: np.ndarray) -> dict:
    """stats.percentile of every replicate's requests (each request repeated by its block's weight)."""
    order = np.argsort(o.latency_ms, kind="stable")
    lat, blocks = o.latency_ms[order], o.block[order]
    out = {name: np.full(len(weights), np.nan) for name in stats.PERCENTILES}
    if not len(lat):
        return out
    step = max(1, CELLS_PER_CHUNK // len(lat))
    for first in range(0, len(weights), step):
        cum = np.cumsum(weights[first:first + step][:, blocks], axis=1)
        n = cum[:, -1]
        for name, q in stats.PERCENTILES.items():
            pos = (n - 1) * q / 100.0
            lo, hi = np.floor(pos), np.ceil(pos)
            # Index of the request that holds rank j of the repeated list: how many cumulative counts are <= j.
            at = lambda j: lat[np.minimum((cum <= j[:, None]).sum(axis=1), len(lat) - 1)]  # noqa: E731
            value = at(lo) + (at(hi) - at(lo)) * (pos - lo)
            out[name][first:first + step] = np.where(n > 0, value, np.nan)
    return out


class Intervals:
    """Confidence intervals of ratios between policies; each run's replicates are computed once."""

    def __init__(self, resamples: int = RESAMPLES, seed: int = SEED) -> None:
        self.resamples, self.seed = resamples, seed
        self._runs: dict[tuple, dict] = {}

    def _replicates(self, run) -> dict:
        key = (run.scenario, run.policy, run.rep, run.rate)
        if key not in self._runs:
            rng = np.random.default_rng([self.seed, zlib.crc32(repr(key).encode())])
            self._runs[key] = block_replicates(run.outcomes, rng, self.resamples)
        return self._runs[key]

    def policy_replicates(self, runs: Sequence, metric: str) -> np.ndarray | None:
        """Replicates of the median over repetitions; None if a run has no outcomes (or none has the measure)."""
        runs = [r for r in runs if r.measures.get(metric) is not None]
        if not runs or any(getattr(r, "outcomes", None) is None for r in runs):
            return None
        stack = np.vstack([self._replicates(r)[metric] for r in runs])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a replicate whose every rep drew no request
            return np.nanmedian(stack, axis=0)

    def ratio(self, num: Sequence, den: Sequence, metric: str, point: float | None) -> tuple | None:
        """(lo, hi) around ``point`` for num's median / den's; hi None when unbounded; None if nothing to go on."""
        if point is None:
            return None
        parts = [p for p in (self._bootstrap(num, den, metric), paired_t(num, den, metric)) if p is not None]
        if not parts:
            return None
        lo = min([point] + [p[0] for p in parts])
        hi = max([point] + [p[1] for p in parts])
        return (_finite(lo), _finite(hi))

    def _bootstrap(self, num: Sequence, den: Sequence, metric: str) -> tuple | None:
        a, b = self.policy_replicates(num, metric), self.policy_replicates(den, metric)
        if a is None or b is None:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            r = a / b
        r = r[~np.isnan(r)]
        if len(r) < 0.9 * len(a):  # too many replicates without a value: no interval to trust
            return None
        tail = (1 - LEVEL) / 2
        lo, hi = np.quantile(r, [tail, 1 - tail], method="inverted_cdf")
        return float(lo), float(hi)


def paired_t(num: Sequence, den: Sequence, metric: str) -> tuple | None:
    """exp(mean ± t·s/√k) of the log ratios of the repetitions both policies ran; None under 2 pairs."""
    by_rep = {r.rep: r.measures.get(metric) for r in den}
    logs = [math.log(r.measures[metric] / by_rep[r.rep]) for r in num
            if r.measures.get(metric) and by_rep.get(r.rep) and r.measures[metric] > 0 and by_rep[r.rep] > 0]
    k = len(logs)
    if k < 2:
        return None
    mean = sum(logs) / k
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (k - 1))
    half = t_quantile(k - 1) * sd / math.sqrt(k)
    return math.exp(mean - half), math.exp(mean + half)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
