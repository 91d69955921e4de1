"""RAP's monitors measured on a large simulated cluster: KWOK's nodes and pods on the local kube-apiserver.

``run(opts)`` (``python3 -m rap.scale``, ``invoke scale``) starts a local
cluster with a few real RAP kube-proxies, grows a KWOK-simulated cluster of
100, 300, 1,000 nodes beside them with synthetic metrics, and measures what
each RAP node costs the API server (requests and bytes per period) and what
a RAP process uses (CPU, memory), for the per-node monitor and the
aggregated one, beside stock kube-proxy on the same nodes (the reference). One module per concern:

- ``options``: the options, their help and parser (``parse_options``)
- ``harness``: the run itself, window by window, and its teardown
- ``fakecluster``: the simulated Nodes, Pods, Services and their addresses
- ``synthetic`` / ``synthmetrics``: synthetic usage, served by the local metrics server
- ``apimetrics``: kube-apiserver's /metrics parsed, windows and baselines
- ``audit``: kube-apiserver's audit log of RAP's clients, requests per client
- ``procstat``: a process's CPU and memory from /proc
- ``forwarder``: a TCP forwarder that counts a process's bytes to the API server
- ``report``: the table, the JSON and the checks against the targets
- ``cli``: the command line

Building KWOK is rap.build.kwok's. Not here: the aggregator (rap.aggregator),
rap.go's monitors (rap_patch/).
"""

from __future__ import annotations

from pathlib import Path

from rap.scale.options import ScaleOptions, ScaleOptionError, parse_options
from rap.status import Status


def run(opts: ScaleOptions, status: Status | None = None) -> tuple[dict, Path]:
    """Measure every size and monitor of ``opts``; the result and the folder its report was written to.

    Everything it started is torn down before it returns or raises."""
    from rap.scale import harness, report

    status = status or Status("scale")
    out = opts.out_dir()
    kwok_binary = harness.preflight(opts)
    doc = {"options": {"nodes": list(opts.nodes), "pods_per_node": opts.pods_per_node, "services": opts.services,
                       "monitors": list(opts.monitors), "rap_nodes": opts.rap_nodes, "period_s": opts.period_s,
                       "window_s": opts.window_s, "warmup_s": opts.warmup_s, "seed": opts.seed},
           "kwok": kwok_binary.name, "sizes": []}
    h = harness.Harness(opts, kwok_binary, status)
    try:
        h.start()
        for n in opts.nodes:
            h.grow(n)
            doc["sizes"].append(h.measure(n))
            report.write(out, doc)  # what was measured so far survives a later failure
    finally:
        h.stop()
    report.write(out, doc)
    return doc, out


__all__ = ["ScaleOptionError", "ScaleOptions", "parse_options", "run"]
