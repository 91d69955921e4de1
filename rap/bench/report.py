"""summary.json, report.md, PNG plots and the one-screen summary of a bench run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

from rap.bench import stats
from rap.bench.scenarios import BASELINE, Scenario

PAPER = ("Nguyen, Phan, Kim, \"Load-Balancing of Kubernetes-Based Edge Computing Infrastructure Using "
         "Resource Adaptive Proxy\", Sensors 22(8):2869, 2022")
POLICY_COLORS = {"round-robin": "#7f7f7f", "rap": "#1f77b4", "least-request": "#ff7f0e"}


# ---- summary.json ----

def summarize(scenarios: list[Scenario], records: Iterable, policies: list[str]) -> dict:
    """Per scenario (and rate), per policy: spread of every measure; RAP/RR ratios; target verdicts."""
    records = list(records)
    out: dict = {}
    for s in scenarios:
        mine = [r for r in records if r.scenario == s.name]
        steps = {}
        for rate in s.steps():
            per_policy = {}
            for p in policies:
                runs = [r.measures for r in mine if r.policy == p and r.rate == rate]
                if runs:
                    per_policy[p] = {"runs": len(runs), **stats.summarize(runs)}
            ratios = {}
            if BASELINE in per_policy:
                for p in policies:
                    if p != BASELINE and p in per_policy:
                        ratios[f"{p}/{BASELINE}"] = stats.ratios(per_policy[p], per_policy[BASELINE])
            steps[_rate_key(rate)] = {"rate_rps": rate, "policies": per_policy, "ratios": ratios}
        entry = {
            "title": s.title, "description": s.description, "mode": s.mode,
            "shape": {"nodes": s.nodes, "pods": {f"node-{i}": s.pods_on(i) for i in range(1, s.nodes + 1)},
                      "pod_cpu": s.pod_cpu, "node_cpu": s.node_cpu, "cpu_ms": s.cpu_ms,
                      "rtt_ms": {f"node-{a}:node-{b}": ms for a, b, ms in s.rtt_ms}},
            "load": {"clients": [f"node-{c}" for c in s.clients], "mode": s.mode,
                     "concurrency_per_client": s.concurrency if s.mode == "closed" else None,
                     "think_ms": s.think_ms if s.mode == "closed" else None,
                     "rates_rps_per_client": list(s.rates) if s.mode == "open" else None,
                     "duration_s": s.duration_s, "warmup_s": s.warmup_s},
            "overload": ({"node": f"node-{s.overload.node}", "threads_per_pod": s.overload.threads_per_pod,
                          "cost_ms": s.overload.cost_ms} if s.overload else None),
            "steps": steps,
            "targets": _verdicts(s, steps),
        }
        out[s.name] = entry
    return out


def _rate_key(rate: float | None) -> str:
    return "closed" if rate is None else f"{rate:g}"


def _verdicts(s: Scenario, steps: dict) -> list[dict]:
    ratios = steps.get("closed", {}).get("ratios", {}).get(f"rap/{BASELINE}", {})
    out = []
    for t in s.targets:
        r = ratios.get(t.metric)
        out.append({"metric": t.metric, "op": t.op, "value": t.value, "ratio": r, "met": t.check(r),
                    "text": t.text()})
    return out


def write_summary(path: Path, meta: dict, scenarios_summary: dict) -> dict:
    doc = {**meta, "scenarios": scenarios_summary}
    path.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
    return doc


def _json_default(o):
    if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
        return None
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


# ---- report.md ----

def _f(x, fmt="{:.1f}") -> str:
    return "–" if x is None else fmt.format(x)


def _cell(sp: dict, fmt="{:.1f}", pct=False) -> str:
    if sp["median"] is None:
        return "–"
    f = (lambda v: f"{v:.1%}") if pct else (lambda v: fmt.format(v))
    if sp["n"] <= 1 or sp["min"] == sp["max"]:
        return f(sp["median"])
    return f"{f(sp['median'])} ({f(sp['min'])}–{f(sp['max'])})"


def _ratio(r) -> str:
    return "–" if r is None else f"{r:.2f}×"


def _step_table(step: dict, policies: list[str]) -> list[str]:
    lines = ["| policy | throughput (req/s) | p50 (ms) | p95 (ms) | p99 (ms) | errors | local share |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for p in policies:
        m = step["policies"].get(p)
        if m is None:
            lines.append(f"| {p} | not run | | | | | |")
            continue
        lines.append(f"| {p} | {_cell(m['throughput_rps'])} | {_cell(m['p50_ms'])} | {_cell(m['p95_ms'])} | "
                     f"{_cell(m['p99_ms'])} | {_cell(m['error_rate'], pct=True)} | "
                     f"{_cell(m['local_share'], pct=True)} |")
    for name, r in step["ratios"].items():
        lines.append("")
        lines.append(f"**{name}** (ratio of medians): throughput {_ratio(r['throughput_rps'])}, "
                     f"p50 {_ratio(r['p50_ms'])}, p95 {_ratio(r['p95_ms'])}, p99 {_ratio(r['p99_ms'])}, "
                     f"local share {_ratio(r['local_share'])}")
    return lines


def _verdict(v: dict) -> str:
    if v["met"] is None:
        return "not measured"
    return "**met**" if v["met"] else "**MISSED**"


def markdown(doc: dict, plots: list[str]) -> str:
    policies = doc["policies"]
    L = [f"# RAP benchmark — {doc['started']}", ""]
    L.append(f"Target: `{doc['target']}`; {doc['reps']} repetition(s) per policy, policies interleaved "
             f"(the order rotates every repetition); {'quick run; ' if doc['quick'] else ''}"
             f"took {doc['seconds']:.0f} s. Machine: {doc['host']['cpus']} CPUs, load average "
             f"{doc['host']['load_before']} before and {doc['host']['load_after']} after (a shared machine: "
             "other work competes for the same cores, so absolute numbers vary between runs; the ratios are "
             "measured side by side in one run).")
    L.append("")
    L.append("Policies: **round-robin** = upstream kube-proxy v1.21 userspace mode (the baseline); **rap** = the "
             "same kube-proxy with `rap_patch/rap.go` in place of its round robin; **least-request** = the "
             "project's Python userspace proxy with least-request (two random choices). Each cell is the "
             "median over repetitions with the range (min–max) in brackets. Latency is per request on a new "
             "TCP connection (proxies balance per connection), over successful requests; errors are counted "
             "separately. Local share = share of requests served on the node the request came from.")
    if doc.get("interrupted"):
        L += ["", "**This run was interrupted; the tables hold what was measured before that.**"]
    if doc.get("failures"):
        L += ["", "Failed runs (left out of the medians):", ""] + [f"- {f}" for f in doc["failures"]]
    L += ["", "## Targets (RAP / round robin, same run)", "",
          "| scenario | target | ratio | verdict |", "| --- | --- | --- | --- |"]
    any_target = False
    for name, sc in doc["scenarios"].items():
        for v in sc["targets"]:
            any_target = True
            L.append(f"| {name} | {v['text']} | {_ratio(v['ratio'])} | {_verdict(v)} |")
    if not any_target:
        L.append("| – | no scenario with targets was run | | |")
    for name, sc in doc["scenarios"].items():
        L += ["", f"## {sc['title']} (`{name}`)", "", sc["description"], ""]
        shape = sc["shape"]
        rtt = ", ".join(f"{k} {v:g} ms" for k, v in shape["rtt_ms"].items()) or "none added"
        load = sc["load"]
        if sc["mode"] == "closed":
            n = load["concurrency_per_client"]
            what = f"closed loop, {n} worker{'s' if n != 1 else ''} per client"
            if load.get("think_ms"):
                what += f" pausing {load['think_ms']:g} ms after each answer"
        else:
            what = f"open loop at {', '.join(f'{r:g}' for r in load['rates_rps_per_client'])} req/s per client"
        L.append(f"Shape: pods {', '.join(f'{k}={v}' for k, v in shape['pods'].items())}, {shape['pod_cpu']:g} "
                 f"CPU and {shape['cpu_ms']:g} ms of CPU per request each; RTT {rtt}. Load from "
                 f"{', '.join(load['clients'])}: {what}, {load['duration_s']:g} s per step after a "
                 f"{load['warmup_s']:g} s warm-up." + (
                     f" Overload: {sc['overload']['threads_per_pod']} threads per pod of "
                     f"{sc['overload']['node']} send direct {sc['overload']['cost_ms']:g} ms requests."
                     if sc["overload"] else ""))
        if sc["mode"] == "open":
            L += ["", "In open loop the throughput equals the offered rate unless requests fail (late answers are "
                  "still counted); the latency carries the difference."]
        for key, step in sc["steps"].items():
            L.append("")
            if key != "closed":
                L.append(f"### {key} req/s per client")
                L.append("")
            L += _step_table(step, policies)
        for v in sc["targets"]:
            L.append(f"- target: {v['text']} → ratio {_ratio(v['ratio'])}: {_verdict(v)}")
    L += ["", "## Compared with the paper", "",
          f"The paper ({PAPER}) reports that RAP \"significantly improves throughput and reduces latency\" "
          "compared with the default kube-proxy, in experiments on a geo-distributed edge cluster and under "
          "overload. Only its abstract and figure captions could be consulted from this workplace; its "
          "numeric results (the figures' values) could not, so this report does not claim to match or miss "
          "particular published numbers. What can be compared is the direction and the rough size:"]
    for name, sc in doc["scenarios"].items():
        r = sc["steps"].get("closed", {}).get("ratios", {}).get(f"rap/{BASELINE}")
        if r:
            L.append(f"- {name}: RAP's throughput is {_ratio(r['throughput_rps'])} round robin's and its p50 "
                     f"latency {_ratio(r['p50_ms'])} ({_direction(r)}).")
        elif sc["mode"] == "open":
            parts = []
            for key, step in sc["steps"].items():
                rr = step["ratios"].get(f"rap/{BASELINE}")
                if rr:
                    parts.append(f"{key} req/s: p50 {_ratio(rr['p50_ms'])}")
            if parts:
                L.append(f"- {name} (RAP/round-robin p50 by rate): " + ", ".join(parts) + ".")
    L += ["", "Differences from the paper's setting that matter when comparing: the cluster is emulated on one "
          "machine (network namespaces, cgroup CPU limits, round-trip times added in user space by "
          "`netdelay`, see docs/netdelay.md), with small pods; RAP's monitor period is 1 s here (5 s by "
          "default on a real cluster); least-request runs in the project's Python proxy, not in kube-proxy, "
          "so its numbers also reflect that implementation."]
    if plots:
        L += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    L += ["", "Raw samples: `samples.jsonl` (one request per line: scenario, policy, rep, rate, client, node, "
          "pod, start, latency_ms, status, error). Machine-readable summary: `summary.json`.", ""]
    return "\n".join(L)


def _direction(r: dict) -> str:
    t, p = r["throughput_rps"], r["p50_ms"]
    if t is None or p is None:
        return "not measured"
    if t > 1.05 and p < 0.95:
        return "same direction as the paper: more throughput, lower latency"
    if t < 0.95 and p > 1.05:
        return "opposite to the paper"
    return "about equal"


# ---- plots ----

def plots(doc: dict, out_dir: Path) -> list[str]:
    """PNG files written into out_dir (names relative to it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    policies = doc["policies"]
    open_scenarios = {n: s for n, s in doc["scenarios"].items() if s["mode"] == "open"}
    for name, sc in open_scenarios.items():
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, measure, label in ((axes[0], "p50_ms", "p50 latency (ms)"), (axes[1], "p95_ms", "p95 latency (ms)")):
            for p in policies:
                xs, ys, lo, hi = [], [], [], []
                for step in sc["steps"].values():
                    m = step["policies"].get(p)
                    if m and m[measure]["median"] is not None:
                        xs.append(step["rate_rps"] * len(sc["load"]["clients"]))
                        ys.append(m[measure]["median"])
                        lo.append(m[measure]["median"] - m[measure]["min"])
                        hi.append(m[measure]["max"] - m[measure]["median"])
                if xs:
                    ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=p, color=POLICY_COLORS.get(p))
            ax.set_xlabel("offered load (req/s)")
            ax.set_ylabel(label)
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        fig.suptitle(f"{sc['title']}: latency against request rate (median, min–max over repetitions)")
        fig.tight_layout()
        fname = f"latency_vs_rate_{name}.png"
        fig.savefig(out_dir / fname, dpi=110)
        plt.close(fig)
        written.append(fname)
    closed = {n: s for n, s in doc["scenarios"].items() if "closed" in s["steps"]}
    for measure, fname, ylabel, title in (
            ("throughput_rps", "throughput.png", "throughput (req/s)", "Throughput by scenario"),
            ("local_share", "local_share.png", "share served on the client's node", "Local share by scenario"),
            ("p50_ms", "latency_p50.png", "p50 latency (ms)", "p50 latency by scenario")):
        if not closed:
            break
        fig, ax = plt.subplots(figsize=(max(5, 2.6 * len(closed)), 4))
        width = 0.8 / max(len(policies), 1)
        for k, p in enumerate(policies):
            xs, ys, lo, hi = [], [], [], []
            for i, sc in enumerate(closed.values()):
                m = sc["steps"]["closed"]["policies"].get(p)
                if m and m[measure]["median"] is not None:
                    xs.append(i + (k - (len(policies) - 1) / 2) * width)
                    ys.append(m[measure]["median"])
                    lo.append(m[measure]["median"] - m[measure]["min"])
                    hi.append(m[measure]["max"] - m[measure]["median"])
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=p, color=POLICY_COLORS.get(p))
        ax.set_xticks(range(len(closed)))
        ax.set_xticklabels(list(closed))
        ax.set_ylabel(ylabel)
        if measure == "local_share":
            ax.set_ylim(0, 1.05)
        ax.set_title(f"{title} (median, min–max over repetitions)")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / fname, dpi=110)
        plt.close(fig)
        written.append(fname)
    return written


# ---- the one-screen summary ----

def screen(doc: dict, out_dir: Path) -> str:
    L = [f"RAP benchmark: {doc['target']}, {doc['reps']} rep(s), {doc['seconds']:.0f} s"
         + (" (INTERRUPTED)" if doc.get("interrupted") else "")]
    L.append(f"{'scenario':10} {'policy':14} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'err':>6} {'local':>6}")
    for name, sc in doc["scenarios"].items():
        for key, step in sc["steps"].items():
            label = name if key == "closed" else f"{name}@{key}"
            for p, m in step["policies"].items():
                L.append(f"{label:10.10} {p:14} {_f(m['throughput_rps']['median']):>8} "
                         f"{_f(m['p50_ms']['median']):>8} {_f(m['p95_ms']['median']):>8} "
                         f"{_f(m['error_rate']['median'], '{:.0%}'):>6} {_f(m['local_share']['median'], '{:.0%}'):>6}")
    verdicts = [(n, v) for n, sc in doc["scenarios"].items() for v in sc["targets"]]
    if verdicts:
        L.append("targets (RAP / round robin):")
        for n, v in verdicts:
            L.append(f"  {n:10} {v['text']:40} {_ratio(v['ratio']):>7}  "
                     f"{'met' if v['met'] else ('not measured' if v['met'] is None else 'MISSED')}")
    if doc.get("failures"):
        L.append(f"{len(doc['failures'])} run(s) failed; see report.md")
    L.append(f"report: {out_dir / 'report.md'}")
    return "\n".join(L)
