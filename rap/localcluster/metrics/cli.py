"""The metrics server's command line (``python3 -m rap.localcluster.metrics``)::

    python3 -m rap.localcluster.metrics --registry RUNTIME/metrics-registry.json \\
        --listen 10.213.0.1:4443 [--cert C --key K] [--interval 1] [--window 5] [--fail] [--slow S] \\
        [--client-ca FRONT_PROXY_CA --client-names front-proxy-client] \\
        [--control-listen 127.0.0.1:0 --control-ca CA --control-names rap-metrics-control] [--control-file F]

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
from rap.localcluster.metrics.sampler import Reader, read_cgroup
from rap.localcluster.metrics.server import ClientAuth, start
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
    p.add_argument("--client-ca", help="take only clients with a certificate from this CA (PEM file)")
    p.add_argument("--client-names", default="", help="comma-separated CNs --client-ca's clients must have")
    p.add_argument("--control-listen", help="host:port serving the fault switches alone (then not on --listen)")
    p.add_argument("--control-ca", help="take only fault-switch clients with a certificate from this CA")
    p.add_argument("--control-names", default="", help="comma-separated CNs --control-ca's clients must have")
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
    args.host, args.port = _host_port(p, "--listen", args.listen)
    args.control = _host_port(p, "--control-listen", args.control_listen) if args.control_listen else None
    args.client = _client(p, "--client", args.client_ca, args.client_names)
    args.control_client = _client(p, "--control", args.control_ca, args.control_names)
    if args.control_client and not args.control:
        p.error("--control-ca needs --control-listen (the switches' own port)")
    return args


def _host_port(p: argparse.ArgumentParser, option: str, value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        p.error(f"{option} {value!r}: want host:port, e.g. 10.213.0.1:4443")
    return host.strip("[]"), int(port)


def _client(p: argparse.ArgumentParser, prefix: str, ca: str | None, names: str) -> ClientAuth | None:
    names_t = tuple(n.strip() for n in names.split(",") if n.strip())
    if names_t and not ca:
        p.error(f"{prefix}-names needs {prefix}-ca (the CA that signs those clients)")
    return ClientAuth(ca, names_t) if ca else None


def main(argv: list[str] | None = None, reader: Reader = read_cgroup) -> int:
    """Serve until SIGTERM; ``reader`` measures each registered name (default: its cgroup; rap.scale's
    synthetic metrics server passes its own)."""
    args = _args(argv)
    try:
        server = start(args.registry, args.host, args.port, interval=args.interval, window=args.window,
                       cert=args.cert, key=args.key, failing=args.fail, slow_s=args.slow,
                       client=args.client, control=args.control, control_client=args.control_client,
                       control_file=args.control_file, reader=reader)
    except OSError as e:  # a busy port, or an unreadable certificate or CA file
        where = " and ".join(filter(None, (args.listen, args.control_listen)))
        print(f"metrics: cannot serve on {where}: {e.strerror or e}", file=sys.stderr)
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGUSR1, lambda *_: setattr(server.api, "failing", not server.api.failing))
    # The bound port, so a caller that passed port 0 learns it from this line.
    switches = f"; switches on https://{args.control[0]}:{server.control_port}" if args.control else ""
    print(f"metrics: serving {PREFIX} on https://{args.host}:{server.port} from {args.registry}{switches}",
          flush=True)
    while not done.wait(0.5):
        pass
    server.stop()
    return 0
