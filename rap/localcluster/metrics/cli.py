"""The metrics server's command line (``python3 -m rap.localcluster.metrics``)::

    python3 -m rap.localcluster.metrics --registry RUNTIME/metrics-registry.json \\
        --listen 10.213.0.1:4443 [--cert C --key K] [--interval 1] [--window 5] [--fail] [--slow S]

Parses the options, starts ``server.start`` and runs until SIGTERM or SIGINT;
SIGUSR1 toggles the fault injection (503 from the metric endpoints); ``--slow``
starts with the metric endpoints answering late. Not the
server itself: tests start that in-process with ``start``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from rap.localcluster.metrics.api import check_slow
from rap.localcluster.metrics.server import start
from rap.localcluster.metrics.wire import PREFIX

DESCRIPTION = "The local cluster's metrics server: metrics.k8s.io/v1beta1 measured from its cgroups."


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python3 -m rap.localcluster.metrics", description=DESCRIPTION)
    p.add_argument("--registry", required=True, help="JSON file the cluster code writes (see write_registry)")
    p.add_argument("--listen", default="127.0.0.1:4443", help="host:port to serve HTTPS on")
    p.add_argument("--cert", help="PEM serving certificate (default: one from a CA of its own)")
    p.add_argument("--key", help="PEM key for --cert")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between cgroup samples")
    p.add_argument("--window", type=float, default=5.0, help="longest span a CPU rate is taken over (s)")
    p.add_argument("--fail", action="store_true", help="start failing (503); SIGUSR1 toggles")
    p.add_argument("--slow", default="0", metavar="SECONDS",
                   help="start answering the metric endpoints this late (0, the default: at once)")
    p.add_argument("--control-file", help="write where the fault switches are taken here (JSON host, port)")
    args = p.parse_args(argv)
    try:
        args.slow = check_slow(args.slow)
    except ValueError as e:
        p.error(f"--slow: {e}")
    if bool(args.cert) != bool(args.key):
        p.error("--cert and --key go together")
    if not 0 < args.interval <= args.window:
        p.error("need 0 < --interval <= --window")
    host, sep, port = args.listen.rpartition(":")
    if not sep or not port.isdigit():
        p.error(f"--listen {args.listen!r}: want host:port, e.g. 10.213.0.1:4443")
    args.host, args.port = host.strip("[]"), int(port)
    return args


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    try:
        server = start(args.registry, args.host, args.port, interval=args.interval, window=args.window,
                       cert=args.cert, key=args.key, failing=args.fail, slow_s=args.slow,
                       control_file=args.control_file)
    except OSError as e:
        print(f"metrics: cannot listen on {args.listen}: {e.strerror or e}", file=sys.stderr)
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGUSR1, lambda *_: setattr(server.api, "failing", not server.api.failing))
    # The bound port, so a caller that passed port 0 learns it from this line.
    print(f"metrics: serving {PREFIX} on https://{args.host}:{server.port} from {args.registry}", flush=True)
    while not done.wait(0.5):
        pass
    server.stop()
    return 0
