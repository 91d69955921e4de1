"""The bar a RAP variant must clear (the adaptive mode's, from the issue that asked for it): MET or MISSED.

The bars themselves are data: scenarios.toml's ``[[bar]]`` tables
(scenarios.Bar, scenarios.Condition), and each scenario names the bar its
steps are judged by. This module judges one step of a summary against its
bar, condition by condition, and counts the verdicts of a whole run.

A condition compares the judged policy's median with a reference median:
the best peer of that metric among the policy's own peers (its
``vs_best_peer`` entry, rap.bench.compare), or round robin's. The verdict
is decided on the medians (value x reference, see Condition.check), so it
holds where a ratio has no value (no failed request on either side); the
ratio and its 95% interval are stated beside it as the rest of the report
states them. Not here: the wording of the report (rap.bench.report).
"""

from __future__ import annotations

from typing import Mapping

from rap.bench import stats
from rap.bench.scenarios import BASELINE, Bar, Condition

MET, MISSED, NOT_MEASURED = "MET", "MISSED", "not measured"


def judge(bar: Bar, step: Mapping) -> dict:
    """The step's ``bar`` entry of summary.json: the bar's name, policy, reference and one check per condition."""
    return {"name": bar.name, "policy": bar.policy, "against": bar.against,
            "checks": [check(bar, c, step) for c in bar.conditions]}


def check(bar: Bar, c: Condition, step: Mapping) -> dict:
    """One condition in one step: the medians compared, the ratio with its interval, MET / MISSED / None."""
    mine = step["policies"].get(bar.policy)
    value = mine[c.metric]["median"] if mine else None
    ref_policy, ref_value, ci = _reference(bar, c.metric, step)
    met = c.check(value, ref_value)
    against = "the best peer" if bar.against == "best-peer" else BASELINE
    return {"metric": c.metric, "op": c.op, "value": c.value, "text": c.text(against),
            "median": value, "reference": {"policy": ref_policy, "median": ref_value},
            "ratio": stats.ratio(value, ref_value), "ci95": ci,
            "met": met, "verdict": None if met is None else (MET if met else MISSED)}


def _reference(bar: Bar, metric: str, step: Mapping) -> tuple[str | None, float | None, list | None]:
    """(policy, median, interval of the ratio) the condition compares with; Nones when it did not run."""
    if bar.against == BASELINE:
        base = step["policies"].get(BASELINE)
        ci = step.get("ratios_ci95", {}).get(f"{bar.policy}/{BASELINE}", {}).get(metric)
        return (BASELINE, base[metric]["median"], ci) if base else (None, None, None)
    peer = step.get("vs_best_peer", {}).get(bar.policy, {}).get(metric)
    return (peer["peer"], peer["peer_value"], peer["ci95"]) if peer else (None, None, None)


def tally(doc: Mapping) -> dict:
    """The policies judged; how many checks were MET, MISSED and not measured; which missed (scenario, step, metric)."""
    out = {"policies": [], "met": 0, "missed": 0, "not_measured": 0, "missed_checks": []}
    for name, sc in doc["scenarios"].items():
        for key, st in sc["steps"].items():
            judged = st.get("bar") or {}
            if judged and judged["policy"] not in out["policies"]:
                out["policies"].append(judged["policy"])
            for c in judged.get("checks", ()):
                if c["met"] is None:
                    out["not_measured"] += 1
                elif c["met"]:
                    out["met"] += 1
                else:
                    out["missed"] += 1
                    out["missed_checks"].append([name, key, c["metric"]])
    return out
