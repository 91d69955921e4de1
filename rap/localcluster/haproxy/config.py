"""haproxy.cfg for one node's peer: one TCP frontend, one backend of server slots.

The backend holds ``slots`` servers, all in maintenance at start; the agent
gives them addresses and turns them on through the runtime API as endpoints
come and go (rap/localcluster/haproxy/sync.py), so a change never needs a
reload and never drops a connection. No health checks (they would add traffic
to the backends that the other peers do not send), no logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rap.errors import OptionError

BACKEND = "service"
SERVER_PREFIX = "s"  # slot k is server s<k>, k = 1..slots

# The algorithms the agent accepts: what the peers use plus roundrobin as a baseline.
BALANCE = re.compile(r"leastconn|roundrobin|random(\([1-9]\))?")
BALANCE_HELP = "leastconn, roundrobin, random or random(N) with N draws 1..9"

# The benchmark's client gives up after 10 s; HAProxy must never cut a request
# before its client would, hence 30 s for both sides of an established connection.
TIMEOUTS = {"connect": "5s", "client": "30s", "server": "30s", "client-fin": "1s", "server-fin": "1s"}
# Hundreds of concurrent connections with ample headroom; each costs two file descriptors.
MAXCONN = 4096
# A SIGUSR1 soft stop lets running requests finish; this bounds it so procs.stop's 5 s are enough.
HARD_STOP_AFTER = "2s"


@dataclass(frozen=True)
class Settings:
    balance: str
    socket: Path  # the admin socket of the runtime API
    listen_port: int
    listen_address: str = "127.0.0.1"
    slots: int = 64
    maxconn: int = MAXCONN


def check_balance(balance: str) -> str:
    if BALANCE.fullmatch(balance) is None:
        raise OptionError(f"--balance: {balance!r} is not an algorithm this peer runs; use {BALANCE_HELP}")
    return balance


def server_name(slot: int) -> str:
    return f"{SERVER_PREFIX}{slot}"


def render(s: Settings) -> str:
    check_balance(s.balance)
    if s.slots < 1:
        raise OptionError(f"--slots: must be at least 1, got {s.slots}")
    timeouts = "".join(f"    timeout {name} {value}\n" for name, value in TIMEOUTS.items())
    return (
        "# Written by rap.localcluster.haproxy; servers change through the runtime API, not this file.\n"
        "global\n"
        f"    maxconn {s.maxconn}\n"
        # One thread: leastconn and random(2) then compare exact counts, and the
        # peer costs what one event loop costs (the machine has 2 cores).
        "    nbthread 1\n"
        f"    stats socket {s.socket} mode 600 level admin\n"
        f"    hard-stop-after {HARD_STOP_AFTER}\n"
        "\n"
        "defaults\n"
        "    mode tcp\n"
        f"{timeouts}"
        # A connection refused by a pod that just left (before the next sync) goes to another server.
        "    retries 2\n"
        "    option redispatch 1\n"
        "\n"
        f"frontend cluster_ip\n"
        f"    bind {s.listen_address}:{s.listen_port}\n"
        f"    default_backend {BACKEND}\n"
        "\n"
        f"backend {BACKEND}\n"
        f"    balance {s.balance}\n"
        f"    server-template {SERVER_PREFIX} 1-{s.slots} 0.0.0.0:0 disabled\n"
    )
