"""The simulator's figures: latency percentiles, where forwarded traffic went, settle time; summary.json, report.md.

Definitions (docs/scale.md, "The simulator", states them for readers):

- Latency: per request, from its scheduled start to the end of its answer; a
  request past the client's timeout counts at the timeout and as failed, as
  in `invoke bench` (rap.bench.stats). Percentiles interpolate linearly
  between ranks, as rap.bench.stats.percentile does.
- Forwarded: a successful request served on another node than its client's.
  A node's *share of forwarded traffic* is the forwarded requests it served
  over all forwarded requests. The *fair share* is 1/K, K the number of nodes
  that could have received forwarded traffic: the nodes hosting an endpoint of
  the Service of some client node C that forwarded, C itself not counted for
  its own requests. ``max_over_fair`` is the largest share over the fair
  share: 1 is a perfectly even spread; herding shows as many times more.
- Settle time after a load step at ``t_s``: the requests that start after it are
  cut into 1-second windows; the reference is the p95 of those that start in the
  last quarter of the time after the step; a window is settled when its p95 is
  within 25% of the reference. The settle time is the start of the first window
  from which every later window is settled, minus ``t_s``; None (did not settle)
  when the last window is not.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from rap.sim.model import Samples

SETTLE_WINDOW_S = 1.0
SETTLE_BAND = 0.25
SETTLE_REFERENCE = 0.25  # the last quarter of the time after the step
HERDING_LIMIT = 3.0  # the "no herding": no node above 3x its fair share of forwarded traffic


def percentile(values: np.ndarray, q: float) -> float | None:
    return None if len(values) == 0 else float(np.percentile(values, q))


def forwarded_spread(samples: Samples, node_names, pods_by_service: dict[str, set[int]],
                     service_of_client: dict[int, str], mask: np.ndarray | None = None) -> dict:
    """How the forwarded requests (within ``mask``) spread over nodes (see the module's definitions)."""
    ok = samples.ok if mask is None else samples.ok & mask
    fwd = ok & (samples.server != samples.client)
    n_fwd = int(fwd.sum())
    counts = np.bincount(samples.server[fwd], minlength=len(node_names)) if n_fwd else np.zeros(len(node_names))
    sources = sorted({int(c) for c in np.unique(samples.client[fwd])})
    eligible = set()
    for c in sources:
        eligible |= pods_by_service[service_of_client[c]] - {c}
    k = len(eligible)
    out = {"forwarded": n_fwd, "forwarded_share": n_fwd / int(ok.sum()) if ok.any() else None,
           "eligible_nodes": k, "fair_share": 1 / k if k else None, "receivers": int((counts > 0).sum()),
           "max_node": None, "max_share": None, "max_over_fair": None, "shares": []}
    if n_fwd and k:
        shares = counts / n_fwd
        top = int(np.argmax(shares))
        out.update(max_node=node_names[top], max_share=float(shares[top]),
                   max_over_fair=float(shares[top] * k),
                   shares=[float(shares[i]) for i in sorted(eligible)])
    return out


def window_measures(samples: Samples, mask: np.ndarray, seconds: float) -> dict:
    lat = samples.latency_ms[mask]
    ok = samples.ok[mask]
    local = ok & (samples.server[mask] == samples.client[mask])
    n = int(mask.sum())
    return {"requests": n, "rate_rps": n / seconds if seconds > 0 else None,
            "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95), "p99_ms": percentile(lat, 99),
            "failed": int(n - ok.sum()), "failed_share": (n - int(ok.sum())) / n if n else None,
            "local_share": int(local.sum()) / int(ok.sum()) if ok.any() else None}


def settle(samples: Samples, step_at: float, end: float, window_s: float = SETTLE_WINDOW_S,
           band: float = SETTLE_BAND, reference: float = SETTLE_REFERENCE) -> dict:
    """The settle time after a load step at ``step_at`` (see the module's definitions), with its windows."""
    after = end - step_at
    ref_mask = samples.start >= end - reference * after
    ref = percentile(samples.latency_ms[ref_mask & (samples.start < end)], 95)
    windows = []
    t = step_at
    while t < end - 1e-9:
        m = (samples.start >= t) & (samples.start < min(t + window_s, end))
        p95 = percentile(samples.latency_ms[m], 95)
        windows.append((t - step_at, p95))
        t += window_s
    settled_from = None
    if ref is not None:
        for offset, p95 in reversed(windows):
            if p95 is None or abs(p95 - ref) <= band * ref:
                settled_from = offset
            else:
                break
    return {"settle_s": settled_from, "reference_p95_ms": ref, "window_s": window_s, "band": band,
            "windows": [{"from_s": o, "p95_ms": p} for o, p in windows]}


def summarize(results, opts) -> dict:
    """summary.json's document."""
    doc = {"started": opts.started, "seed": opts.seed, "quick": opts.quick, "policies": list(opts.policies),
           "model": {"http_cpu_ms": opts.workload.http_cpu_ms, "overhead_ms": opts.workload.overhead_ms},
           "definitions": __doc__.split("Definitions", 1)[1].split("\n\n", 1)[1].strip(),
           "herding_limit": HERDING_LIMIT, "scenarios": {}}
    for r in results:
        s = r.scenario
        pods_by_service: dict[str, set[int]] = {}
        for p in s.cluster.pods:
            pods_by_service.setdefault(p.service, set()).add(p.node)
        service_of_client = {c.node: c.service for c in s.clients}
        entry = doc["scenarios"].setdefault(s.name, {
            "title": s.title, "description": s.description, "bench": s.bench,
            "nodes": len(s.cluster.nodes), "pods": len(s.cluster.pods),
            "stepped_clients": sum(c.stepped for c in s.clients), "end_s": s.end_s, "step_at_s": s.step_at_s,
            "cadence": vars(s.cadence), "workload": {k: (sorted(v) if isinstance(v, frozenset) else v)
                                                     for k, v in vars(s.workload).items()},
            "policies": {}})
        smp = r.samples
        windows = {}
        for w in s.windows:
            mask = (smp.start >= w.from_s) & (smp.start < w.to_s)
            m = window_measures(smp, mask, w.to_s - w.from_s)
            spread = forwarded_spread(smp, s.cluster.nodes, pods_by_service, service_of_client, mask)
            m["spread"] = {k: v for k, v in spread.items() if k != "shares"}
            windows[w.label] = m
        p = {"requests": len(smp), "wall_s": r.seconds, "snapshots": r.snapshots, "scrapes": r.scrapes,
             "windows": windows}
        if s.step_at_s is not None:
            p["settle"] = settle(smp, s.step_at_s, s.end_s)
            p["herding"] = _herding(windows)
        entry["policies"][r.label] = p
    return doc


def _herding(windows: dict) -> dict:
    after = windows.get("after", {}).get("spread", {})
    x = after.get("max_over_fair")
    return {"max_over_fair": x, "limit": HERDING_LIMIT, "herding": None if x is None else x > HERDING_LIMIT}


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not math.isfinite(o) else float(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _f(x, fmt="{:.1f}") -> str:
    return "–" if x is None else fmt.format(x)


def _pct(x) -> str:
    return "–" if x is None else f"{x:.1%}"


def large_table(sc: dict) -> list[str]:
    """The many-node table: per policy, after the step."""
    L = ["| policy | largest share of forwarded traffic (node) | × fair share | herding (> 3×) | p50 (ms) | "
         "p95 (ms) | p99 (ms) | failed | local share | settle time (s) |",
         "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, p in sc["policies"].items():
        w = p["windows"]["after"]
        sp = w["spread"]
        herd = p.get("herding", {}).get("herding")
        settle_s = p.get("settle", {}).get("settle_s")
        L.append(f"| {label} | {_pct(sp['max_share'])} ({sp['max_node'] or '–'}) | {_f(sp['max_over_fair'])}× "
                 f"| {'–' if herd is None else ('**yes**' if herd else 'no')} | {_f(w['p50_ms'])} | "
                 f"{_f(w['p95_ms'])} | {_f(w['p99_ms'])} | {_pct(w['failed_share'])} | {_pct(w['local_share'])} "
                 f"| {'did not settle' if settle_s is None else f'{settle_s:.0f}'} |")
    return L


def steps_table(sc: dict) -> list[str]:
    """A stepped scenario's table (the bench's rates): per policy and step."""
    L = ["| policy | step (req/s) | p50 (ms) | p95 (ms) | p99 (ms) | failed | local share | "
         "largest forwarded share (× fair) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, p in sc["policies"].items():
        for key, w in p["windows"].items():
            sp = w["spread"]
            L.append(f"| {label} | {key} | {_f(w['p50_ms'])} | {_f(w['p95_ms'])} | {_f(w['p99_ms'])} | "
                     f"{_pct(w['failed_share'])} | {_pct(w['local_share'])} | {_pct(sp['max_share'])} "
                     f"({_f(sp['max_over_fair'])}×) |")
    return L


def _table(sc: dict) -> list[str]:
    return large_table(sc) if sc["step_at_s"] is not None else steps_table(sc)


def markdown(doc: dict, pngs: list[str]) -> str:
    L = [f"# RAP simulator — {doc['started']}", "",
         f"Seed {doc['seed']}{', quick run' if doc['quick'] else ''}; model: backend HTTP CPU "
         f"{doc['model']['http_cpu_ms']:g} ms per request, local path {doc['model']['overhead_ms']:g} ms. "
         "The policies are the project's own code (rap.policies), one instance per simulated node.", "",
         "## Definitions", "", doc["definitions"]]
    for name, sc in doc["scenarios"].items():
        L += ["", f"## {sc['title']} (`{name}`)", "", sc["description"], ""] + _table(sc)
    if "validation" in doc:
        L += ["", "## Validation against the local cluster", ""] + validation_lines(doc["validation"])
    if pngs:
        L += ["", "## Plots", ""] + [f"![{p}]({p})" for p in pngs]
    return "\n".join(L) + "\n"


def validation_lines(v: dict) -> list[str]:
    L = [f"Measured: `{v['results']}` (`invoke bench`, scenario {v['scenario']}); simulated: the same shape "
         f"and load. A p50 within {v['tolerance']:.0%} of the measured one is MET.", "",
         "| policy | step (req/s) | measured p50 (ms) | simulated p50 (ms) | simulated / measured | verdict |",
         "| --- | --- | --- | --- | --- | --- |"]
    for row in v["rows"]:
        L.append(f"| {row['policy']} | {row['step']} | {_f(row['measured_p50_ms'])} | "
                 f"{_f(row['simulated_p50_ms'])} | {_f(row['ratio'], '{:.2f}')} | "
                 f"{'MET' if row['within'] else '**MISSED**'} |")
    L += ["", f"**{v['met']} MET, {v['missed']} MISSED.**"]
    return L


def write(doc: dict, pngs: list[str], out: Path) -> None:
    (out / "summary.json").write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
    (out / "report.md").write_text(markdown(doc, pngs))


def screen(doc: dict, out: Path) -> str:
    L = []
    for name, sc in doc["scenarios"].items():
        L += ["", f"{sc['title']} ({name})"] + _table(sc)
    if "validation" in doc:
        L += ["", "validation against the local cluster:"] + validation_lines(doc["validation"])
    L += ["", f"report: {out / 'report.md'}"]
    return "\n".join(L)
