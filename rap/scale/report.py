"""The scale run's report: the per-RAP-node table (markdown) and the whole result (JSON), and the checks.

The table has one row per (simulated nodes, monitor), per RAP node: API
requests per second (from the audit log, exact per client) and per period,
bytes per period (from kube-apiserver's response and watch-event size
metrics, above the baseline), bytes on the wire per period (the counting
forwarder), and the RAP process's CPU and memory. ``checks`` states the
issue's targets for the aggregated monitor against what was measured.
"""

from __future__ import annotations

import json
from pathlib import Path

LIMITS = {"spread": 0.20, "requests_per_s": 1.0, "cpu_pct": 2.0, "rss_mb": 150.0}
LABELS = {"stock": "stock kube-proxy (no RAP)", "node": "RAP, per-node monitor",
          "aggregator": "RAP, aggregated monitor, bounded view (RAP_VIEW_NODES default)",
          "aggregator-all": "RAP, aggregated monitor, every record (RAP_VIEW_NODES=0)"}


def _kb(b: float) -> str:
    return f"{b / 1000:,.1f} kB" if b < 10**6 else f"{b / 10**6:,.2f} MB"


def table(doc: dict) -> str:
    period = doc["options"]["period_s"]
    head = ("| simulated nodes (pods) | monitor | API requests/s per RAP node | requests/period | "
            f"API bytes/period (period {period:g} s) | wire bytes/period | CPU % of a core (mean, max) | RSS MB (max) |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- |\n")
    rows = []
    for size in doc["sizes"]:
        shown = False  # one aggregator serves every aggregated variant: its row once per size
        for monitor, r in size["monitors"].items():
            m = r["apiserver_metrics"]
            rows.append(f"| {size['simulated_nodes']:,} ({size['simulated_pods']:,}) | {LABELS.get(monitor, monitor)} | "
                        f"{r['requests_per_s']:.3f} | {r['requests_per_period']:.2f} | "
                        f"{_kb(m['bytes_per_period'])} | {_kb(r['wire_bytes_per_period'])} | "
                        f"{r['cpu_pct_mean']:.2f}, {r['cpu_pct_max']:.2f} | {r['rss_mb_max']:.0f} |")
            if "aggregator" in r and not shown:
                shown = True
                a = r["aggregator"]
                rows.append(f"| {size['simulated_nodes']:,} ({size['simulated_pods']:,}) | the aggregator process "
                            f"(once per cluster) | {a['requests_per_s']:.3f} | {a['requests_per_period']:.2f} | "
                            f"{_kb(a['apiserver_metrics']['bytes_per_period'])} | {_kb(a['wire_bytes_per_period'])} | "
                            f"{a['cpu_pct']:.2f} | {a['rss_mb_max']:.0f} |")
    return head + "\n".join(rows) + "\n"


def checks(doc: dict) -> list[dict]:
    """The issue's targets for the aggregated monitor, each with the measured value and whether it holds."""
    sizes = [s for s in doc["sizes"] if "aggregator" in s["monitors"]]
    if len(sizes) < 1:
        return []
    out = []
    small, large = sizes[0], sizes[-1]
    b = large["monitors"]["aggregator"]
    if small is not large:
        for key, what in (("requests_per_s", "API requests/s per RAP node"),
                          ("wire_bytes_per_period", "wire bytes/period per RAP node")):
            # every size counts, not only the ends: the figure must not bulge in between
            values = [s["monitors"]["aggregator"][key] for s in sizes]
            lo, hi = min(values), max(values)
            spread = (hi - lo) / lo if lo else float("inf") if hi else 0.0
            out.append({"check": f"{what} within 20% from {small['simulated_nodes']:,} to "
                                 f"{large['simulated_nodes']:,} nodes",
                        "measured": " -> ".join(f"{v:g}" for v in values) + f" ({100 * spread:.0f}%)",
                        "ok": spread <= LIMITS["spread"]})
    n = large["simulated_nodes"]
    out.append({"check": f"at {n:,} nodes at most 1 API request/s per RAP node",
                "measured": f"{b['requests_per_s']:.3f}/s", "ok": b["requests_per_s"] <= LIMITS["requests_per_s"]})
    out.append({"check": f"at {n:,} nodes a RAP process under 2% of a core",
                "measured": f"{b['cpu_pct_max']:.2f}% (max of the RAP nodes)", "ok": b["cpu_pct_max"] < LIMITS["cpu_pct"]})
    out.append({"check": f"at {n:,} nodes a RAP process under 150 MB",
                "measured": f"{b['rss_mb_max']:.0f} MB (largest RSS)", "ok": b["rss_mb_max"] < LIMITS["rss_mb"]})
    return out


def markdown(doc: dict) -> str:
    o = doc["options"]
    text = (f"# RAP monitor cost on a simulated cluster (KWOK)\n\n"
            f"{o['rap_nodes']} real RAP kube-proxies, {o['pods_per_node']} simulated pods per simulated node over "
            f"{o['services']} Services, period {o['period_s']:g} s, windows of {o['window_s']:g} s after "
            f"{o['warmup_s']:g} s of warm-up, synthetic metrics seed {o['seed']}.\n\n" + table(doc))
    found = checks(doc)
    if found:
        text += "\n| target (aggregated monitor) | measured | holds |\n| --- | --- | --- |\n" + "".join(
            f"| {c['check']} | {c['measured']} | {'yes' if c['ok'] else 'NO'} |\n" for c in found)
    return text


def write(out: Path, doc: dict) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    doc = {**doc, "checks": checks(doc)}
    md, js = out / "scale.md", out / "scale.json"
    md.write_text(markdown(doc))
    js.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return md, js
