"""The nat rule that sends a node namespace's connections to ClusterIP:port to its HAProxy.

The load generator and every other client run in the node namespace itself,
so their packets pass nat OUTPUT: one jump from OUTPUT to the chain
RAP-HAPROXY, which DNATs the Service's ClusterIP and port to HAProxy's
listener on 127.0.0.1. (Pods' own connections pass PREROUTING, where a DNAT to
127.0.0.1 would need route_localnet; nothing in the benchmark sends them.)
Everything carries the comment ``rap-haproxy``, so ``cleanup`` finds it again
after any kind of exit, and removing the chain's one jump removes the peer.
"""

from __future__ import annotations

from rap.localcluster.haproxy.errors import HaproxyError
from rap.localcluster.sh import ToolError, run

CHAIN = "RAP-HAPROXY"
COMMENT = "rap-haproxy"
# A crashed run may have left its jump more than once; delete at most this many.
MAX_STALE_JUMPS = 20


def jump_args() -> list[str]:
    return ["OUTPUT", "-m", "comment", "--comment", COMMENT, "-j", CHAIN]


def rule_args(cluster_ip: str, port: int, listen_address: str, listen_port: int) -> list[str]:
    return [CHAIN, "-d", f"{cluster_ip}/32", "-p", "tcp", "--dport", str(port), "-m", "comment",
            "--comment", COMMENT, "-j", "DNAT", "--to-destination", f"{listen_address}:{listen_port}"]


def _iptables(args: list[str], netns: str | None, check: bool = True) -> bool:
    try:
        run(["iptables", "-w", "-t", "nat", *args], netns=netns)
        return True
    except ToolError as e:
        if check:
            raise HaproxyError(f"{e} (the HAProxy peer runs as root inside the node's namespace)") from None
        return False


def install(cluster_ip: str, port: int, listen_address: str, listen_port: int, netns: str | None = None) -> None:
    """Replace whatever an earlier run left with the chain, its rule and the jump to it."""
    cleanup(netns)
    _iptables(["-N", CHAIN], netns)
    _iptables(["-A", *rule_args(cluster_ip, port, listen_address, listen_port)], netns)
    # First in OUTPUT: ahead of any rule for the same ClusterIP a previous proxy left.
    _iptables(["-I", jump_args()[0], "1", *jump_args()[1:]], netns)


def cleanup(netns: str | None = None) -> None:
    """Remove the jump(s) and the chain from ``netns`` (None: this namespace); absent ones are fine."""
    for _ in range(MAX_STALE_JUMPS):
        if not _iptables(["-D", *jump_args()], netns, check=False):
            break
    _iptables(["-F", CHAIN], netns, check=False)
    _iptables(["-X", CHAIN], netns, check=False)


def installed(netns: str | None = None) -> list[str]:
    """This peer's lines of `iptables -t nat -S` (for tests and checks)."""
    out = run(["iptables", "-w", "-t", "nat", "-S"], netns=netns)
    return [line for line in out.splitlines() if CHAIN in line]
