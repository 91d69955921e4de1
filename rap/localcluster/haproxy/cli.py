"""``python3 -m rap.localcluster.haproxy``: options, logging, exit codes.

Exit 0 after SIGTERM/SIGINT (rule removed, haproxy stopped), 1 when haproxy,
its socket or its rule fails (haproxy exiting included: the cluster then sees
its proxy exit), 2 for a bad option.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
import time
from pathlib import Path

from rap.errors import OptionError
from rap.localcluster.haproxy.agent import Agent, Options
from rap.localcluster.haproxy.config import BALANCE_HELP, check_balance
from rap.localcluster.haproxy.errors import HaproxyError

log = logging.getLogger("rap.haproxy")

LISTEN_PORT = 10280  # on 127.0.0.1 in the node namespace; clear of kube-proxy's 10249/10256 and RTT's 10250
MAX_SLOTS = 4096


def _default_slots() -> int:
    from rap.localcluster.config import MAX_NODES, MAX_PODS_PER_NODE

    return MAX_NODES * MAX_PODS_PER_NODE  # every pod the local cluster can hold has a slot


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 -m rap.localcluster.haproxy",
        description="HAProxy (TCP mode) as the Service proxy of one local-cluster node: keeps its servers "
                    "equal to the Service's endpoints and redirects ClusterIP:PORT to it (run inside the "
                    "node's network namespace, as root).")
    p.add_argument("--kubeconfig", required=True, metavar="PATH", help="kubeconfig of the API server to watch")
    p.add_argument("--node", required=True, metavar="NAME", help="this node's name (for the log)")
    p.add_argument("--cluster-ip", required=True, metavar="IP", help="the Service's ClusterIP")
    p.add_argument("--port", required=True, type=int, metavar="PORT", help="the Service port to serve")
    p.add_argument("--balance", required=True, metavar="ALG", help=f"HAProxy's balance: {BALANCE_HELP}")
    p.add_argument("--workdir", required=True, metavar="DIR",
                   help="where haproxy.cfg and the admin socket go (made if missing)")
    p.add_argument("--listen-port", type=int, default=LISTEN_PORT, metavar="PORT",
                   help=f"HAProxy's port on 127.0.0.1 (default {LISTEN_PORT})")
    p.add_argument("--slots", type=int, metavar="N",
                   help="server slots, the most endpoints served (default: every pod a local cluster can have)")
    p.add_argument("--poll-s", type=float, default=0.5, metavar="S",
                   help="how often the Endpoints are read (default 0.5)")
    p.add_argument("--haproxy", default="haproxy", metavar="BIN", help="haproxy binary (default haproxy)")
    p.add_argument("--cgroup", metavar="NAME",
                   help="cgroup that the cluster moves this agent into: haproxy starts only once the agent is "
                        "in it, so that haproxy is charged to the node too (default: do not wait)")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="logging level (default INFO)")
    return p


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Options]:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args, options(args)
    except OptionError as e:
        parser.error(str(e))


def options(args: argparse.Namespace) -> Options:
    """The checked options; OptionError names the first bad one."""
    try:
        ipaddress.IPv4Address(args.cluster_ip)
    except ValueError:
        raise OptionError(f"--cluster-ip: {args.cluster_ip!r} is not an IPv4 address") from None
    for flag, value in (("--port", args.port), ("--listen-port", args.listen_port)):
        if not 1 <= value <= 65535:
            raise OptionError(f"{flag}: must be 1..65535, got {value}")
    check_balance(args.balance)
    slots = _default_slots() if args.slots is None else args.slots
    if not 1 <= slots <= MAX_SLOTS:
        raise OptionError(f"--slots: must be 1..{MAX_SLOTS}, got {slots}")
    if not 0 < args.poll_s <= 60:
        raise OptionError(f"--poll-s: must be in (0, 60] seconds, got {args.poll_s}")
    if not os.path.isfile(args.kubeconfig):
        raise OptionError(f"--kubeconfig: {args.kubeconfig} does not exist (local-up writes it to the runtime "
                          "folder)")
    workdir = Path(args.workdir)
    if workdir.exists() and not workdir.is_dir():
        raise OptionError(f"--workdir: {workdir} exists and is not a folder")
    return Options(kubeconfig=args.kubeconfig, cluster_ip=args.cluster_ip, port=args.port, balance=args.balance,
                   workdir=workdir, listen_port=args.listen_port, slots=slots, poll_s=args.poll_s,
                   haproxy=args.haproxy)


CGROUP_WAIT_S = 10.0


def in_cgroup(name: str, text: str) -> bool:
    """Whether /proc/self/cgroup's ``text`` puts the process in ``name`` in some hierarchy."""
    return any(line.rsplit(":", 1)[-1].rstrip("/").endswith("/" + name.strip("/")) for line in text.splitlines())


def wait_in_cgroup(name: str, timeout: float = CGROUP_WAIT_S, path: str = "/proc/self/cgroup") -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if in_cgroup(name, Path(path).read_text()):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    args, opts = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s haproxy[" + args.node + "] %(levelname)s %(message)s")
    # urllib3 warns on every retry; the agent's once-per-change messages say it better.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    # The cluster moves this process into the node's cgroup just after starting it; it
    # cannot enter by itself, since `ip netns exec` hides /sys/fs/cgroup from it. haproxy,
    # forked below, inherits the agent's cgroup, so it waits until the move is done.
    if args.cgroup and not wait_in_cgroup(args.cgroup):
        log.error("not moved into cgroup %s within %.0f s; haproxy would run outside its node's cgroup",
                  args.cgroup, CGROUP_WAIT_S)
        return 1
    try:
        return Agent(opts).run()
    except HaproxyError as e:
        log.error("%s", e)
        return 1
