"""``python3 -m rap.scale``: the scale measurement's command line.

Parses the options (rap.scale.options), runs ``rap.scale.run`` and prints
the table; an expected failure is one line on stderr and its exit code
(rap.errors). Run it as root, under the machine's cluster lock:

    flock /tmp/rap-cluster.lock python3 -m rap.scale --nodes 100,300,1000
"""

from __future__ import annotations

import argparse
import sys

from rap.errors import UserError
from rap.scale.options import option_help, parse_options

DESCRIPTION = ("Measure RAP's monitors on a KWOK-simulated cluster: a local cluster with a few real RAP "
               "kube-proxies, N simulated nodes with synthetic metrics; per RAP node, API requests and bytes per "
               "period, and a RAP process's CPU and memory (docs/scale.md).")


def _parser() -> argparse.ArgumentParser:
    h = option_help()
    p = argparse.ArgumentParser(prog="python3 -m rap.scale", description=DESCRIPTION)
    p.add_argument("--nodes", help=h["nodes"])
    p.add_argument("--pods-per-node", help=h["pods_per_node"])
    p.add_argument("--services", help=h["services"])
    p.add_argument("--monitor", help=h["monitor"])
    p.add_argument("--rap-nodes", help=h["rap_nodes"])
    p.add_argument("--period", help=h["period"])
    p.add_argument("--window", help=h["window"])
    p.add_argument("--warmup", help=h["warmup"])
    p.add_argument("--seed", help=h["seed"])
    p.add_argument("--out", help=h["out"])
    p.add_argument("--quick", action="store_true", help=h["quick"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from rap.scale import report, run

    try:
        opts = parse_options(nodes=args.nodes, pods_per_node=args.pods_per_node, services=args.services,
                             monitor=args.monitor, rap_nodes=args.rap_nodes, period=args.period, window=args.window,
                             warmup=args.warmup, seed=args.seed, out=args.out, quick=args.quick)
        doc, out = run(opts)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(report.markdown({**doc, "checks": report.checks(doc)}))
    print(f"written to {out}/scale.md and {out}/scale.json")
    return 0
