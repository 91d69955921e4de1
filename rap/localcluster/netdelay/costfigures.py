"""The figures of a delayer-cost run (rap.localcluster.netdelay.cost): one round's readings, pooled per variant.

Pure: the readings come in as a ``Round`` per variant and round, and go out
as per-variant figures (delayer CPU per second per node and per 1000 queued
packets, the cluster's CPU, connect times, the delayers' own lateness) and
the text table ``python3 -m rap.localcluster.netdelay.cost`` prints, with each
variant's ratio to the first one and its difference from ``none``.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field

NONE = "none"  # the variant with no delay at all


@dataclass
class Round:
    """One variant's readings over one round of load (CPU in seconds, per node namespace where keyed)."""
    label: str
    round: int
    seconds: float
    requests: int
    ok: int
    cross_node: int  # requests answered by a pod on another node than the client's
    latency_ms_p50: float
    connect_ms: list[float]
    errors: dict[str, int]  # failed requests by error
    delayer_user_s: dict[str, float] = field(default_factory=dict)  # per namespace
    delayer_sys_s: dict[str, float] = field(default_factory=dict)
    packets: dict[str, int] = field(default_factory=dict)  # queued by each node's rules
    system_busy_s: float = 0.0  # whole machine, all CPUs
    cluster_cpu_s: float = 0.0  # the cluster's namespaces' processes, the load generator and ksoftirqd
    summaries: list[str] = field(default_factory=list)  # the delayers' exit lines


GO_UNITS_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def go_duration_ms(text: str) -> float:
    """Milliseconds of a Go duration as netdelay prints it ("-38µs", "1.2ms", "0s", "1m2s")."""
    parts = re.findall(r"([\d.]+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text.lstrip("-+"):
        raise ValueError(f"not a Go duration: {text!r}")
    ms = sum(float(n) * GO_UNITS_MS[u] for n, u in parts)
    return -ms if text.startswith("-") else ms


def per_variant(rounds: list[Round]) -> dict[str, dict]:
    """Each variant's figures, pooled over its rounds: CPU per second per node and per 1000 packets."""
    out: dict[str, dict] = {}
    for label in dict.fromkeys(r.label for r in rounds):
        rs = [r for r in rounds if r.label == label]
        secs = sum(r.seconds for r in rs)
        user = sum(sum(r.delayer_user_s.values()) for r in rs)
        syst = sum(sum(r.delayer_sys_s.values()) for r in rs)
        packets = sum(sum(r.packets.values()) for r in rs)
        nodes = max((len(r.delayer_user_s) for r in rs), default=0)
        connects = [c for r in rs for c in r.connect_ms]
        late = {key: [go_duration_ms(m.group(1)) for r in rs for line in r.summaries
                      for m in [re.search(rf"{key}=(\S+)", line)] if m] for key in ("late_avg", "late_max")}
        per_node = {ns: sum(r.delayer_user_s.get(ns, 0) + r.delayer_sys_s.get(ns, 0) for r in rs) / secs
                    for ns in dict.fromkeys(ns for r in rs for ns in r.delayer_user_s)}
        out[label] = {
            "rounds": len(rs), "seconds": secs, "requests_ok": sum(r.ok for r in rs),
            "requests": sum(r.requests for r in rs),
            "cross_node_share": sum(r.cross_node for r in rs) / max(sum(r.ok for r in rs), 1),
            "latency_ms_p50": statistics.median(r.latency_ms_p50 for r in rs),
            "packets_per_s_per_node": packets / secs / max(nodes, 1) if nodes else 0.0,
            "delayer_cpu_per_s_per_node": (user + syst) / secs / nodes if nodes else 0.0,
            "delayer_user_per_s_per_node": user / secs / nodes if nodes else 0.0,
            "delayer_sys_per_s_per_node": syst / secs / nodes if nodes else 0.0,
            "delayer_cpu_s_per_1000_packets": (user + syst) / packets * 1000 if packets else 0.0,
            "system_busy_cores": sum(r.system_busy_s for r in rs) / secs,
            "cluster_cores": sum(r.cluster_cpu_s for r in rs) / secs,
            "connect_ms_median": statistics.median(connects),
            "connect_ms_min": min(connects), "connect_ms_max": max(connects),
            "delayer_cpu_per_s_by_node": per_node,
            "late_avg_ms_mean": statistics.fmean(late["late_avg"]) if late["late_avg"] else None,
            "late_max_ms": max(late["late_max"], default=None),
        }
    return out


def report(summary: dict[str, dict], ref: str | None) -> str:
    """The table of per_variant's figures, then each variant against ``ref`` and against ``none``."""
    cols = [("cpu/s/node", "delayer_cpu_per_s_per_node", "{:.4f}"),
            ("user", "delayer_user_per_s_per_node", "{:.4f}"), ("sys", "delayer_sys_per_s_per_node", "{:.4f}"),
            ("cpu-s/1k pkt", "delayer_cpu_s_per_1000_packets", "{:.4f}"),
            ("pkt/s/node", "packets_per_s_per_node", "{:.0f}"), ("busy cores", "system_busy_cores", "{:.3f}"),
            ("cluster cores", "cluster_cores", "{:.3f}"),
            ("connect ms", "connect_ms_median", "{:.2f}"), ("req p50 ms", "latency_ms_p50", "{:.1f}"),
            ("ok/req", None, None), ("cross", "cross_node_share", "{:.2f}")]
    lines = ["variant    " + " ".join(f"{c:>12}" for c, _, _ in cols)]
    for label, s in summary.items():
        cells = []
        for _, key, fmt in cols:
            cells.append(f"{s['requests_ok']}/{s['requests']}" if key is None else fmt.format(s[key]))
        lines.append(f"{label:<10} " + " ".join(f"{c:>12}" for c in cells))
    if ref and summary.get(ref, {}).get("delayer_cpu_per_s_per_node"):
        base = summary[ref]
        for label, s in summary.items():
            if label != ref and s["delayer_cpu_per_s_per_node"]:
                lines.append(f"{label} / {ref}: delayer CPU x{s['delayer_cpu_per_s_per_node'] / base['delayer_cpu_per_s_per_node']:.3f}"
                             f", per packet x{s['delayer_cpu_s_per_1000_packets'] / base['delayer_cpu_s_per_1000_packets']:.3f}")
    if NONE in summary:
        for label, s in summary.items():
            if label != NONE:
                lines.append(f"{label} - {NONE}: cluster +{s['cluster_cores'] - summary[NONE]['cluster_cores']:.3f} cores, "
                             f"whole machine +{s['system_busy_cores'] - summary[NONE]['system_busy_cores']:.3f} cores busy")
    return "\n".join(lines)
