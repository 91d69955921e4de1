"""``python3 -m rap.scale``: the scale measurement's command line.

Parses the options (rap.scale.options), runs ``rap.scale.run`` and prints
the table; an expected failure is one line on stderr and its exit code
(rap.errors). Run it as root, under the machine's cluster lock:

    flock /tmp/rap-cluster.lock python3 -m rap.scale --nodes 100,300,1000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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


def run_and_print(**raw) -> tuple[dict, Path]:
    """What ``invoke scale`` calls: raw option text (the keywords of ``parse_options``) -> the run, its table
    printed; a bad option or a failed run raises a UserError (one line, its exit code)."""
    return run_options(parse_options(**raw))


def run_options(opts) -> tuple[dict, Path]:
    """The run of parsed options (a ScaleOptions), its table printed."""
    from rap.scale import report, run

    doc, out = run(opts)
    print(report.markdown({**doc, "checks": report.checks(doc)}))
    print(f"written to {out}/scale.md and {out}/scale.json")
    return doc, out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        run_and_print(nodes=args.nodes, pods_per_node=args.pods_per_node, services=args.services,
                      monitor=args.monitor, rap_nodes=args.rap_nodes, period=args.period, window=args.window,
                      warmup=args.warmup, seed=args.seed, out=args.out, quick=args.quick)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0
