"""The simulator's PNG plots (matplotlib, Agg: no display): latency CDFs, forwarded shares, latency over time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rap.bench.plots import POLICY_COLORS


def plots(results, out_dir: Path) -> list[str]:
    """PNG files written into out_dir (names relative to it), three per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rap.sim import report

    written = []
    by_scenario: dict[str, list] = {}
    for r in results:
        by_scenario.setdefault(r.scenario.name, []).append(r)
    for name, runs in by_scenario.items():
        s = runs[0].scenario
        measured = s.windows[-1] if s.step_at_s is not None else None  # "after" the step; else every step
        lo, hi = (measured.from_s, measured.to_s) if measured else (s.windows[0].from_s, s.windows[-1].to_s)
        # latency CDF
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for r in runs:
            m = (r.samples.start >= lo) & (r.samples.start < hi)
            lat = np.sort(r.samples.latency_ms[m])
            if len(lat):
                ax.plot(lat, np.arange(1, len(lat) + 1) / len(lat), label=r.label, color=POLICY_COLORS.get(r.label))
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("share of requests")
        ax.set_title(f"{name}: latency CDF" + (" after the load step" if measured else ""))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        written.append(_save(fig, plt, out_dir, f"latency_cdf_{name}.png"))
        # forwarded shares, as multiples of the fair share
        fig, axes = plt.subplots(1, len(runs), figsize=(3.6 * len(runs), 3.6), squeeze=False, sharey=True)
        for ax, r in zip(axes[0], runs):
            pods_by_service: dict[str, set[int]] = {}
            for p in s.cluster.pods:
                pods_by_service.setdefault(p.service, set()).add(p.node)
            m = (r.samples.start >= lo) & (r.samples.start < hi)
            spread = report.forwarded_spread(r.samples, s.cluster.nodes, pods_by_service,
                                             {c.node: c.service for c in s.clients}, m)
            if spread["shares"]:
                x = np.array(spread["shares"]) * spread["eligible_nodes"]
                ax.hist(x, bins=min(40, max(5, len(x) // 5)), color=POLICY_COLORS.get(r.label))
                ax.axvline(report.HERDING_LIMIT, color="k", ls="--", lw=1)
                ax.set_yscale("log")
            ax.set_title(f"{r.label}\nlargest {spread['max_over_fair'] or 0:.1f}x fair")
            ax.set_xlabel("node's share of forwarded traffic / fair share")
        axes[0][0].set_ylabel("nodes")
        fig.suptitle(f"{name}: how forwarded traffic spreads (dashed: 3x the fair share)")
        fig.tight_layout()
        written.append(_save(fig, plt, out_dir, f"forwarded_share_{name}.png"))
        # p95 per second over time
        fig, ax = plt.subplots(figsize=(8, 4))
        for r in runs:
            edges = np.arange(0, s.end_s + 1, 1.0)
            idx = np.digitize(r.samples.start, edges) - 1
            xs, ys = [], []
            for k in range(len(edges) - 1):
                lat = r.samples.latency_ms[idx == k]
                if len(lat):
                    xs.append(edges[k] + 0.5)
                    ys.append(np.percentile(lat, 95))
            ax.plot(xs, ys, label=r.label, color=POLICY_COLORS.get(r.label))
        if s.step_at_s is not None:
            ax.axvline(s.step_at_s, color="k", ls="--", lw=1, label="load step")
        ax.set_yscale("log")
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("p95 latency per second (ms)")
        ax.set_title(f"{name}: p95 latency over time")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        written.append(_save(fig, plt, out_dir, f"latency_over_time_{name}.png"))
    return written


def _save(fig, plt, out_dir: Path, name: str) -> str:
    fig.savefig(out_dir / name, dpi=100)
    plt.close(fig)
    return name
