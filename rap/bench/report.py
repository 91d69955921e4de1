"""summary.json, report.md and the one-screen summary of a bench run (the plots: rap.bench.plots).

What is compared with what, and the verdict words, are rap.bench.compare's;
the bar and its MET / MISSED rap.bench.bar's; the intervals rap.bench.ci's;
this module lays them out.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

from rap.bench import bar, ci, compare, stats
from rap.bench.plots import plots  # noqa: F401 - rap.bench draws them through this module
from rap.bench.scenarios import BARS, BASELINE, PEERS, POLICIES, Scenario, peers_of

PAPER = ("Nguyen, Phan, Kim, \"Load-Balancing of Kubernetes-Based Edge Computing Infrastructure Using "
         "Resource Adaptive Proxy\", Sensors 22(8):2869, 2022")
METRIC_WORDS = {"p50_ms": "p50", "p95_ms": "p95", "p99_ms": "p99", "throughput_rps": "throughput",
                "local_share": "local share", "error_rate": "errors"}


# ---- summary.json ----

def summarize(scenarios: list[Scenario], records: Iterable, policies: list[str],
              intervals: ci.Intervals | None = None) -> dict:
    """Per scenario (and rate), per policy: spread of every measure, failed requests and where each client's
    requests were served; ratios to round robin and RAP against the best peer, each with its 95% interval;
    target verdicts; the scenario's bar, MET or MISSED."""
    records = list(records)
    intervals = intervals or ci.Intervals()
    out: dict = {}
    for s in scenarios:
        mine = [r for r in records if r.scenario == s.name]
        steps = {}
        for rate in s.steps():
            runs = {p: [r for r in mine if r.policy == p and r.rate == rate] for p in policies}
            runs = {p: rs for p, rs in runs.items() if rs}
            per_policy = {p: {"runs": len(rs), **stats.summarize([r.measures for r in rs]),
                              "failed_requests": stats.failures([r.measures for r in rs]),
                              "served_by": stats.served_by([r.served for r in rs])}
                          for p, rs in runs.items()}
            step = {"rate_rps": rate, "policies": per_policy, **compare.step(per_policy, runs, policies, intervals)}
            if s.bar and BARS[s.bar].policy in policies:
                step["bar"] = bar.judge(BARS[s.bar], step)
            steps[_rate_key(rate)] = step
        entry = {
            "title": s.title, "description": s.description, "mode": s.mode,
            "shape": {"nodes": s.nodes, "pods": {f"node-{i}": s.pods_on(i) for i in range(1, s.nodes + 1)},
                      "pod_cpu": s.pod_cpu, "node_cpu": s.node_cpu, "cpu_ms": s.cpu_ms,
                      "rtt_ms": {f"node-{a}:node-{b}": ms for a, b, ms in s.rtt_ms}},
            "load": {"clients": [f"node-{c}" for c in s.clients], "mode": s.mode,
                     "concurrency_per_client": s.concurrency if s.mode == "closed" else None,
                     "think_ms": s.think_ms if s.mode == "closed" else None,
                     "rates_rps_per_client": list(s.rates) if s.mode == "open" else None,
                     "duration_s": s.duration_s, "warmup_s": s.warmup_s, "timeout_s": s.timeout_s},
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
    """Each target as before (RAP / round robin, met or not), with its interval and RAP against the best peer."""
    closed = steps.get("closed", {})
    name = f"rap/{BASELINE}"
    ratios, cis = closed.get("ratios", {}).get(name, {}), closed.get("ratios_ci95", {}).get(name, {})
    peer = closed.get("vs_best_peer", {}).get("rap", {})
    out = []
    for t in s.targets:
        r = ratios.get(t.metric)
        out.append({"metric": t.metric, "op": t.op, "value": t.value, "ratio": r, "met": t.check(r),
                    "text": t.text(), "ci95": cis.get(t.metric), "best_peer": peer.get(t.metric)})
    return out


def write_summary(path: Path, meta: dict, scenarios_summary: dict) -> dict:
    variants = compare.rap_variants(meta.get("policies", []))
    statistics = {**ci.describe(), "baseline": BASELINE, "peers": list(PEERS),
                  "rap_variants": variants, "peers_of": {v: list(peers_of(v)) for v in variants},
                  "bars": {b.name: {"policy": b.policy, "against": b.against, "description": b.description,
                                    "conditions": [{"metric": c.metric, "op": c.op, "value": c.value}
                                                   for c in b.conditions]} for b in BARS.values()},
                  "failed_requests": "counted in the latency percentiles at the client's timeout, and apart",
                  "closed_loop_throughput": "successful requests completed inside the step, per second"}
    doc = {**meta, "statistics": statistics, "scenarios": scenarios_summary}
    doc["bar_tally"] = bar.tally(doc)
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


def _ci(ci) -> str:
    if ci is None:
        return ""
    lo, hi = ci
    return f" [{_f(lo, '{:.2f}')}–{'∞' if hi is None else f'{hi:.2f}'}]"


def _with_ci(r, ci) -> str:
    return _ratio(r) + ("" if r is None else _ci(ci))


def _value(metric: str, v) -> str:
    """A median as the tables write it: errors as a share of the requests, the rest in ms or req/s."""
    if metric == "error_rate" and v is not None:
        return f"{v:.1%}"
    return _f(v)


def _vs_peer(c: dict | None, words: bool = True, metric: str = "") -> str:
    """``1.41× [1.20–1.65] LOSS against least-request (22.0)``; the two medians where there is no ratio."""
    if c is None:
        return "no peer ran"
    if c["ratio"] is None and c["value"] is not None:  # e.g. no failed request on either side
        text = f"{_value(metric, c['value'])} vs {_value(metric, c['peer_value'])}"
        return f"{text} ({c['peer']})" if words else text
    text = f"{_with_ci(c['ratio'], c['ci95'])} {c['verdict'] or ''}".rstrip()
    return f"{text} against {c['peer']} ({_value(metric, c['peer_value'])})" if words else text


def _failed(f: dict) -> str:
    return "–" if f["share"] is None else f"{f['count']} ({f['share']:.1%})"


def _step_table(step: dict, policies: list[str]) -> list[str]:
    lines = ["| policy | throughput (req/s) | p50 (ms) | p95 (ms) | p99 (ms) | failed requests | local share |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for p in policies:
        m = step["policies"].get(p)
        if m is None:
            lines.append(f"| {p} | not run | | | | | |")
            continue
        lines.append(f"| {p} | {_cell(m['throughput_rps'])} | {_cell(m['p50_ms'])} | {_cell(m['p95_ms'])} | "
                     f"{_cell(m['p99_ms'])} | {_failed(m['failed_requests'])} | "
                     f"{_cell(m['local_share'], pct=True)} |")
    for name, r in step["ratios"].items():
        cis = step.get("ratios_ci95", {}).get(name, {})
        lines += ["", f"**{name}** (ratio of medians, 95% interval): " + ", ".join(
            f"{METRIC_WORDS[m]} {_with_ci(r[m], cis.get(m))}" for m in compare.AGAINST_BASELINE)]
    for p, metrics in step.get("vs_best_peer", {}).items():
        lines += ["", f"**{p} / best peer**: " + ("; ".join(
            f"{METRIC_WORDS[m]} {_vs_peer(c, metric=m)}" for m, c in metrics.items()) or _vs_peer(None))]
    if step.get("bar"):
        b = step["bar"]
        lines += ["", f"**bar for {b['policy']}**: " + "; ".join(_check_text(c) for c in b["checks"])]
    return lines


def _bar_word(c: dict) -> str:
    return bar.NOT_MEASURED if c["verdict"] is None else f"**{c['verdict']}**"


def _check_text(c: dict) -> str:
    """``p50_ms <= 1x the best peer: 0.92× [0.85–1.01] (15.4 against haproxy-leastconn 16.8) **MET**``."""
    ref = c["reference"]
    medians = f"{_value(c['metric'], c['median'])} against {ref['policy'] or 'no reference'} " \
              f"{_value(c['metric'], ref['median'])}"
    return f"{c['text']}: {_with_ci(c['ratio'], c['ci95'])} ({medians}) {_bar_word(c)}"


def _verdict(v: dict) -> str:
    if v["met"] is None:
        return "not measured"
    return "**met**" if v["met"] else "**MISSED**"


def _policy_help(label: str) -> str:
    from rap.localcluster.proxykinds import KINDS

    if label not in POLICIES:
        return "a RAP variant (kube-proxy with rap.go, other settings)"
    kind, python_policy = POLICIES[label]
    return KINDS[kind].help.replace("--policy", python_policy) if kind in KINDS else kind


def _best_peer_table(doc: dict) -> list[str]:
    L = ["| scenario | step | policy | " + " | ".join(METRIC_WORDS[m] for m in compare.COMPARED) + " |",
         "| --- | --- | --- | " + " | ".join("---" for _ in compare.COMPARED) + " |"]
    for name, sc in doc["scenarios"].items():
        for key, step in sc["steps"].items():
            for p, metrics in step.get("vs_best_peer", {}).items():
                L.append(f"| {name} | {key} | {p} | " + " | ".join(
                    _vs_peer(metrics.get(m), metric=m) for m in compare.COMPARED) + " |")
    return L if len(L) > 2 else L + ["| – | | no RAP variant and peer ran side by side | | | | |"]


def _bar_section(doc: dict) -> list[str]:
    """Every check of every step's bar, then the count of MET and MISSED; nothing when no bar was judged."""
    rows = [(name, key, c) for name, sc in doc["scenarios"].items() for key, st in sc["steps"].items()
            for c in (st.get("bar") or {}).get("checks", ())]
    if not rows:
        return []
    policies = sorted({st["bar"]["policy"] for sc in doc["scenarios"].values() for st in sc["steps"].values()
                       if st.get("bar")})
    L = ["", f"## The bar for {', '.join(policies)}", ""]
    for b in BARS.values():
        used = [n for n, sc in doc["scenarios"].items()
                if any((st.get("bar") or {}).get("name") == b.name for st in sc["steps"].values())]
        if used:
            peers = f"; per metric, the best of {', '.join(peers_of(b.policy))}" if b.against == "best-peer" else ""
            L.append(f"- `{b.name}` (every step of {', '.join(used)}): {b.description}{peers}: "
                     + "; ".join(c.text("the best peer" if b.against == "best-peer" else BASELINE)
                                 for c in b.conditions) + ".")
    L += ["", "Each check compares the medians over repetitions (value × the reference's median, inclusive); the "
          "ratio of medians with its 95% interval beside it.", "",
          "| scenario | step | check | ratio [95% interval] | median | reference | verdict |",
          "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, key, c in rows:
        ref = c["reference"]
        L.append(f"| {name} | {key} | {c['text']} | {_with_ci(c['ratio'], c['ci95'])} | "
                 f"{_value(c['metric'], c['median'])} | {ref['policy'] or '–'} "
                 f"{_value(c['metric'], ref['median'])} | {_bar_word(c)} |")
    L += ["", _tally_line(doc["bar_tally"])]
    return L


def _tally_line(t: dict) -> str:
    rest = f", {t['not_measured']} not measured" if t["not_measured"] else ""
    return f"**Bar: {t['met']} MET, {t['missed']} MISSED**{rest}."


def _served_section(doc: dict) -> list[str]:
    """Per policy, one table: for every step and client node, each node's share of the client's served requests."""
    L = ["", "## Where each client's requests were served", "",
         "Per policy, for every step and client node: the share of that client's successful requests each node "
         "served (all repetitions together; the client's own column is its local share, the others what was "
         "forwarded). \"served\" counts the successful requests of all requests sent."]
    rows = {p: [(f"{name}" if key == "closed" else f"{name} @{key}", client, sb)
                for name, sc in doc["scenarios"].items() for key, st in sc["steps"].items()
                for client, sb in st["policies"].get(p, {}).get("served_by", {}).items()]
            for p in doc["policies"]}
    # the same columns in every policy's table, so that they read side by side
    nodes = sorted({n for rs in rows.values() for _, client, sb in rs for n in (client, *sb["share"])},
                   key=stats.node_order)
    for p, rs in rows.items():
        if not rs:
            continue
        L += ["", f"### {p}", "", "| scenario, step | from | " + " | ".join(nodes) + " | served |",
              "| --- | --- | " + " | ".join("---" for _ in nodes) + " | --- |"]
        for label, client, sb in rs:
            cells = [f"{sb['share'][n]:.0%}" if n in sb["share"] else "–" for n in nodes]
            L.append(f"| {label} | {client} | " + " | ".join(cells) + f" | {sb['served']} of {sb['requests']} |")
    return L


def markdown(doc: dict, plots: list[str]) -> str:
    policies = doc["policies"]
    L = [f"# RAP benchmark — {doc['started']}", ""]
    L.append(f"Target: `{doc['target']}`; {doc['reps']} repetition(s) per policy, policies interleaved "
             f"(the order rotates every repetition); {'quick run; ' if doc['quick'] else ''}"
             f"took {doc['seconds']:.0f} s. Machine: {doc['host']['cpus']} CPUs, load average "
             f"{doc['host']['load_before']} before and {doc['host']['load_after']} after (a shared machine: "
             "other work competes for the same cores, so absolute numbers vary between runs; the ratios are "
             "measured side by side in one run).")
    extra = "".join(f"; {v} is also compared with {', '.join(p for p in peers_of(v) if p not in PEERS)}"
                    for v in compare.rap_variants(policies) if peers_of(v) != PEERS)
    L += ["", "Policies (the baseline is round robin; the peers, what a user would run instead of RAP, are "
          f"{', '.join(PEERS)}{extra}):", ""]
    L += [f"- **{p}**: {_policy_help(p)}" for p in policies]
    L += ["", "Each cell is the median over repetitions with the range (min–max) in brackets. Latency is per "
          "request on a new TCP connection (proxies balance per connection), over all requests: a failed one "
          "(an error or a non-2xx answer) counts as the client's timeout, so dropping requests cannot look fast; "
          "failed requests are also counted apart (all repetitions together). Closed-loop throughput counts the "
          "requests answered inside the step. Local share = share of successful requests served on the node "
          "the request came from.", "",
          "Every ratio has a 95% interval in brackets: the hull of a block bootstrap of the requests, stratified "
          "by repetition, and (with 2+ repetitions) a paired t interval over the repetitions' ratios "
          "(`rap/bench/ci.py` says why). Against the best peer (per metric the best median among the peers "
          "that ran): **WIN** where the interval lies entirely on RAP's good side, **LOSS** where entirely on "
          "the bad side, **TIE** otherwise."]
    if doc.get("interrupted"):
        L += ["", "**This run was interrupted; the tables hold what was measured before that.**"]
    if doc.get("failures"):
        L += ["", "Failed runs (left out of the medians):", ""] + [f"- {f}" for f in doc["failures"]]
    L += ["", "## Targets (RAP / round robin, same run)", "",
          "| scenario | target | ratio | verdict | against the best peer |", "| --- | --- | --- | --- | --- |"]
    any_target = False
    for name, sc in doc["scenarios"].items():
        for v in sc["targets"]:
            any_target = True
            L.append(f"| {name} | {v['text']} | {_with_ci(v['ratio'], v.get('ci95'))} | {_verdict(v)} | "
                     f"{_vs_peer(v.get('best_peer'))} |")
    if not any_target:
        L.append("| – | no scenario with targets was run | | | |")
    L += ["", "## RAP against the best peer", "", "Ratio RAP / best peer [95% interval], verdict, the peer and "
          "its median (ms or req/s); lower p50 and p95, higher throughput and fewer errors (the median share of "
          "failed requests; where the best peer failed none there is no ratio, and both shares are shown) are "
          "better.", ""]
    L += _best_peer_table(doc)
    L += _bar_section(doc)
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
        timeout = f", timeout {load['timeout_s']:g} s" if load.get("timeout_s") else ""
        L.append(f"Shape: pods {', '.join(f'{k}={v}' for k, v in shape['pods'].items())}, {shape['pod_cpu']:g} "
                 f"CPU and {shape['cpu_ms']:g} ms of CPU per request each; RTT {rtt}. Load from "
                 f"{', '.join(load['clients'])}: {what}, {load['duration_s']:g} s per step after a "
                 f"{load['warmup_s']:g} s warm-up{timeout}." + (
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
            L.append(f"- target: {v['text']} → ratio {_with_ci(v['ratio'], v.get('ci95'))}: {_verdict(v)}")
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
          "default on a real cluster); least-request runs in the project's Python proxy and the HAProxy peers "
          "in HAProxy, not in kube-proxy, so their numbers also reflect those implementations."]
    L += _served_section(doc)
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


# ---- the one-screen summary ----

SCREEN_METRICS = ("p50_ms", "p95_ms", "throughput_rps")  # errors: the failed-requests line


def screen(doc: dict, out_dir: Path) -> str:
    """Per step, RAP against the best peer on p50, p95 and throughput; the tally; the targets; the bar; failures."""
    L = [f"RAP benchmark: {doc['target']}, {doc['reps']} rep(s), {doc['seconds']:.0f} s"
         + (" (INTERRUPTED)" if doc.get("interrupted") else "")]
    steps = [(name if key == "closed" else f"{name}@{key}", step)
             for name, sc in doc["scenarios"].items() for key, step in sc["steps"].items()]
    width = max([len(label) for label, _ in steps] + [5])
    pw = max([len(p) for _, st in steps for p in st.get("vs_best_peer", {})] + [5])
    short = {"throughput_rps": "req/s", "p50_ms": "p50", "p95_ms": "p95"}
    unit = {"throughput_rps": "", "p50_ms": " ms", "p95_ms": " ms"}
    if any(st.get("vs_best_peer") for _, st in steps):
        L.append("RAP / best peer [95% interval] (lower p50 and p95, higher req/s are better):")
    failed: dict[str, list] = {}
    for label, step in steps:
        for p, metrics in step.get("vs_best_peer", {}).items():
            L.append(f"  {label:{width}} {p:{pw}} " + "  ".join(
                f"{short[m]} {_vs_peer(metrics.get(m), False):26}" for m in SCREEN_METRICS).rstrip())
        if step.get("vs_best_peer") and step.get("best_peer"):
            L.append(f"  {'':{width}} {'peers':{pw}} " + ", ".join(
                f"{short[m]} {b['policy']} {_f(b['value'])}{unit[m]}" for m, b in step["best_peer"].items()
                if m in SCREEN_METRICS))
        for p, m in step["policies"].items():
            failed.setdefault(p, []).append((m["failed_requests"], label))
    for p, n in compare.tally(doc).items():
        L.append(f"{p} against the best peer: {n['WIN']} WIN, {n['LOSS']} LOSS, {n['TIE']} TIE")
    verdicts = [(n, v) for n, sc in doc["scenarios"].items() for v in sc["targets"]]
    if verdicts:
        L.append("targets (RAP / round robin):")
        for n, v in verdicts:
            L.append(f"  {n:10} {v['text']:40} {_with_ci(v['ratio'], v.get('ci95')):>20}  "
                     f"{'met' if v['met'] else ('not measured' if v['met'] is None else 'MISSED')}")
    L += _bar_lines(doc)
    L += _failed_lines(failed)
    if doc.get("failures"):
        L.append(f"{len(doc['failures'])} run(s) failed; see report.md")
    L.append(f"report: {out_dir / 'report.md'}")
    return "\n".join(L)


def _bar_lines(doc: dict) -> list[str]:
    """The bar's count, and which checks missed, wrapped to the screen; nothing when no bar was judged."""
    t = doc.get("bar_tally") or {}
    if not t.get("met") and not t.get("missed") and not t.get("not_measured"):
        return []
    import textwrap

    short = {"throughput_rps": "req/s", "p50_ms": "p50", "p95_ms": "p95", "error_rate": "errors"}
    by_step: dict[str, list[str]] = {}
    for n, k, m in t["missed_checks"]:
        by_step.setdefault(n if k == "closed" else f"{n}@{k}", []).append(short.get(m, m))
    missed = ", ".join(f"{step} {'+'.join(ms)}" for step, ms in by_step.items())
    text = f"bar for {', '.join(t['policies'])}: " + _tally_line(t).replace("*", "").removeprefix("Bar: ") + (
        f" MISSED: {missed}" if missed else "")
    return textwrap.wrap(text, 110, subsequent_indent="  ", break_on_hyphens=False)


def _failed_lines(failed: dict[str, list]) -> list[str]:
    """Per policy with failed requests: all steps together and its worst step, wrapped to the screen."""
    parts = []
    for p, steps in failed.items():
        count, requests = sum(f["count"] for f, _ in steps), sum(f["requests"] for f, _ in steps)
        if count:
            worst, label = max(steps, key=lambda fl: fl[0]["share"] or 0)
            parts.append(f"{p} {count} ({count / requests:.1%}; worst {label} {worst['share']:.1%})")
    if not parts:
        return []
    import textwrap

    return textwrap.wrap("failed requests (in the percentiles at the timeout): " + ", ".join(parts), 110,
                         subsequent_indent="  ", break_on_hyphens=False)
