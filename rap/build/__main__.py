"""``python -m rap.build [--stock] [--stock-only] [--apiserver] [--node-binaries] [--test] [--k8s-src PATH]``: the build without invoke.

The same sequence as ``invoke build-proxy`` (rap.build.workflow), with the
userspace tests off unless ``--test`` and no image step.
"""

from __future__ import annotations

import argparse
import sys

import rap.build
from rap.errors import UserError


def main(argv: list[str] | None = None) -> int:
    from rap.build import workflow
    from rap.build.options import option_help

    shared = option_help()  # the same words as invoke build-proxy --help
    ap = argparse.ArgumentParser(prog="python -m rap.build", description=rap.build.__doc__.splitlines()[0])
    ap.add_argument("--k8s-src", help=shared["k8s_src"])
    ap.add_argument("--stock", action="store_true", help=shared["stock"])
    ap.add_argument("--stock-only", action="store_true", help="build only kube-proxy-stock")
    ap.add_argument("--apiserver", action="store_true", help=shared["apiserver"])
    ap.add_argument("--node-binaries", action="store_true", help=shared["node_binaries"])
    ap.add_argument("--test", action="store_true", help="run the userspace tests too")
    ns = ap.parse_args(argv)
    try:
        opts = workflow.parse_options(ns.k8s_src, rap=not ns.stock_only, stock=ns.stock or ns.stock_only,
                                      test=ns.test, apiserver=ns.apiserver, node_binaries=ns.node_binaries)
        print(workflow.summary(workflow.build_proxy(opts)))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
