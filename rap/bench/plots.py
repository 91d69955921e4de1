"""The PNG plots of a bench run, drawn from summary.json's document (matplotlib, Agg: no display)."""

from __future__ import annotations

from pathlib import Path

# The policies of scenarios.POLICIES; another label (a RAP variant) takes matplotlib's next colour.
POLICY_COLORS = {"round-robin": "#7f7f7f", "rap": "#1f77b4", "rap-adaptive": "#17becf", "least-request": "#ff7f0e",
                 "iptables": "#2ca02c", "local-only": "#9467bd", "haproxy": "#d62728", "haproxy-leastconn": "#8c564b"}


def plots(doc: dict, out_dir: Path) -> list[str]:
    """PNG files written into out_dir (names relative to it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    policies = doc["policies"]
    # latency against rate needs rates to draw a line through; a one-rate scenario is in the tables
    open_scenarios = {n: s for n, s in doc["scenarios"].items() if s["mode"] == "open" and len(s["steps"]) > 1}
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
