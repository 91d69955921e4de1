"""Each step's comparisons: every policy against round robin, and RAP against the best peer.

The *peers* (scenarios.PEERS) are what a user would run instead of RAP. The
best peer is chosen metric by metric, by the median over repetitions: the
lowest p50, the lowest p95, the highest throughput, the fewest errors (the
share of failed requests), which can be four different peers (in closed loop
a policy can buy a low p50 with a long tail and little throughput). Every
policy that is neither the baseline nor a peer is *a RAP variant* ("rap",
"rap-adaptive", and e.g. a production-cadence "rap-5s") and gets the same
comparisons, against its own peers (scenarios.peers_of: the adaptive mode
also against classic RAP). Each ratio carries its 95% interval
(rap.bench.ci) and a verdict word: WIN when the interval lies entirely on
RAP's good side, LOSS when entirely on the bad side, TIE otherwise; none
where the ratio is undefined (no failed request on either side).

Not here: the per-policy medians (rap.bench.stats) and the wording of the
report (rap.bench.report).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from rap.bench import stats
from rap.bench.ci import Intervals
from rap.bench.scenarios import BASELINE, PEERS, peers_of

COMPARED = ("p50_ms", "p95_ms", "throughput_rps", "error_rate")  # against the best peer
AGAINST_BASELINE = ("throughput_rps", "p50_ms", "p95_ms", "p99_ms", "local_share")  # = stats.ratios' keys
WIN, LOSS, TIE = "WIN", "LOSS", "TIE"


def rap_variants(policies: Sequence[str]) -> list[str]:
    """The policies compared with the best peer: all but the baseline and the peers."""
    return [p for p in policies if p != BASELINE and p not in PEERS]


def verdict(ci: Sequence | None, metric: str) -> str | None:
    """WIN / LOSS / TIE of an interval of ratios (RAP / other) for ``metric``; None without an interval.

    An unbounded end (None) lies on neither side of 1.
    """
    if ci is None:
        return None
    lo, hi = ci
    below, above = hi is not None and hi < 1, lo is not None and lo > 1
    good_below = not stats.HIGHER_IS_BETTER[metric]
    if below:
        return WIN if good_below else LOSS
    if above:
        return LOSS if good_below else WIN
    return TIE


def best_peers(per_policy: Mapping[str, Mapping], peers: Sequence[str] = PEERS) -> dict:
    """Per compared metric, the best of ``peers`` that ran and its median; metrics none measured are left out.

    Ties go to the peer listed first.
    """
    out = {}
    for metric in COMPARED:
        ran = [(per_policy[p][metric]["median"], p) for p in peers
               if p in per_policy and per_policy[p][metric]["median"] is not None]
        if not ran:
            continue
        sign = -1 if stats.HIGHER_IS_BETTER[metric] else 1
        value, peer = min(ran, key=lambda vp: (sign * vp[0], list(peers).index(vp[1])))
        out[metric] = {"policy": peer, "value": value}
    return out


def step(per_policy: Mapping[str, Mapping], runs: Mapping[str, Sequence], policies: Sequence[str],
         intervals: Intervals) -> dict:
    """The comparisons of one step, as summary.json keeps them.

    ``per_policy``: policy -> stats.summarize (with "runs"); ``runs``: policy
    -> its RunRecords of the step. Returns ``ratios`` (every policy / round
    robin, ratio of medians, as before), ``ratios_ci95`` (their intervals),
    ``best_peer`` (among scenarios.PEERS) and ``vs_best_peer`` (per RAP
    variant and metric, against the best of that variant's own peers).
    """
    ratios, ratios_ci = {}, {}
    if BASELINE in per_policy:
        for p in policies:
            if p != BASELINE and p in per_policy:
                name = f"{p}/{BASELINE}"
                ratios[name] = stats.ratios(per_policy[p], per_policy[BASELINE])
                ratios_ci[name] = {m: _ci(intervals, runs[p], runs[BASELINE], m, ratios[name][m])
                                   for m in AGAINST_BASELINE}
    best = best_peers(per_policy)
    against = {}
    for p in rap_variants(policies):
        if p not in per_policy:
            continue
        against[p] = {}
        for metric, peer in best_peers(per_policy, peers_of(p)).items():
            value = per_policy[p][metric]["median"]
            r = stats.ratio(value, peer["value"])
            ci = _ci(intervals, runs[p], runs[peer["policy"]], metric, r)
            against[p][metric] = {"peer": peer["policy"], "peer_value": peer["value"], "value": value,
                                  "ratio": r, "ci95": ci, "verdict": verdict(ci, metric)}
    return {"ratios": ratios, "ratios_ci95": ratios_ci, "best_peer": best, "vs_best_peer": against}


def _ci(intervals: Intervals, num: Sequence, den: Sequence, metric: str, point: float | None) -> list | None:
    ci = intervals.ratio(num, den, metric, point)
    return None if ci is None else list(ci)


def tally(doc: Mapping) -> dict:
    """How many comparisons with the best peer each RAP variant won, lost and tied over the whole run."""
    out: dict = {}
    for sc in doc["scenarios"].values():
        for st in sc["steps"].values():
            for p, metrics in st.get("vs_best_peer", {}).items():
                counts = out.setdefault(p, {WIN: 0, LOSS: 0, TIE: 0})
                for m in metrics.values():
                    if m["verdict"]:
                        counts[m["verdict"]] += 1
    return out
