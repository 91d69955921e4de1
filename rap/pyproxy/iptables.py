"""The redirection rules of kube-proxy's userspace mode, in the project's own nat chains.

Connections made in the node namespace pass nat OUTPUT, connections from its
pods nat PREROUTING; each jumps to our chain, where ``clusterIP:port`` is
DNATed to the proxy's listener. Every rule carries the ``rap-local`` comment
(local-down removes what a killed proxy left behind by it). The chains are
rewritten whole through ``iptables-restore --noflush`` (declaring a chain
flushes it), so the rule set changes atomically and never lists a service
twice.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from typing import Iterable, Sequence

from rap.errors import UserError

HOST_CHAIN = "RAP-PYPROXY-HOST"  # from OUTPUT: connections that start in the node namespace
CONTAINER_CHAIN = "RAP-PYPROXY-CONTAINER"  # from PREROUTING: connections from the node's pods
COMMENT = "rap-local"
JUMPS = (("OUTPUT", HOST_CHAIN), ("PREROUTING", CONTAINER_CHAIN))
# A crashed run can have left its jumps several times; delete at most this many of each.
MAX_STALE_JUMPS = 50


class IptablesError(UserError, RuntimeError):
    pass


@dataclass(frozen=True)
class Redirect:
    name: str  # the service port, as a comment, for people reading iptables -S
    cluster_ip: str
    port: int
    proxy_port: int


def jump_args(chain: str, target: str) -> list[str]:
    return [chain, "-m", "comment", "--comment", COMMENT, "-j", target]


def chains_text(redirects: Iterable[Redirect], bind_address: str) -> str:
    """iptables-restore input that sets both chains to exactly these redirects."""
    lines = ["*nat", f":{HOST_CHAIN} - [0:0]", f":{CONTAINER_CHAIN} - [0:0]"]
    for r in sorted(redirects, key=lambda r: (ipaddress.ip_address(r.cluster_ip), r.port)):
        for chain in (HOST_CHAIN, CONTAINER_CHAIN):
            lines.append(
                f'-A {chain} -d {r.cluster_ip}/32 -p tcp --dport {r.port}'
                f' -m comment --comment "{COMMENT} {r.name}"'
                f" -j DNAT --to-destination {bind_address}:{r.proxy_port}"
            )
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


class Iptables:
    """Runs the rules in the calling thread's network namespace (the proxy runs inside the node's)."""

    def __init__(self, binary: str = "iptables") -> None:
        self.binary = binary
        self.restore_binary = f"{binary}-restore"
        self._applied: str | None = None

    def check_tools(self) -> None:
        for tool in (self.binary, self.restore_binary):
            if shutil.which(tool) is None:
                raise IptablesError(f"{tool}: not found on PATH; install it (apt-get install iptables)")

    def setup(self) -> None:
        """Remove a crashed run's leftovers, then create the empty chains and the jumps to them."""
        self.cleanup()
        self.apply([], "0.0.0.0")
        for chain, target in JUMPS:
            self._run(["-t", "nat", "-I", *jump_args(chain, target)])

    def apply(self, redirects: Sequence[Redirect], bind_address: str) -> bool:
        """Make the chains hold exactly ``redirects``; False when nothing changed."""
        text = chains_text(redirects, bind_address)
        if text == self._applied:
            return False
        self._restore(text)
        self._applied = text
        return True

    def cleanup(self) -> None:
        """Delete the jumps and the chains; absent ones are fine (first start, second cleanup)."""
        for chain, target in JUMPS:
            for _ in range(MAX_STALE_JUMPS):
                if self._run(["-t", "nat", "-D", *jump_args(chain, target)], check=False) != 0:
                    break
        for target in (HOST_CHAIN, CONTAINER_CHAIN):
            self._run(["-t", "nat", "-F", target], check=False)
            self._run(["-t", "nat", "-X", target], check=False)
        self._applied = None

    def _run(self, args: list[str], check: bool = True) -> int:
        cmd = [self.binary, "-w", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise IptablesError(f"{' '.join(cmd)}: {proc.stderr.strip()} (run as root in the node's namespace)")
        return proc.returncode

    def _restore(self, text: str) -> None:
        cmd = [self.restore_binary, "-w", "--noflush"]
        proc = subprocess.run(cmd, input=text, capture_output=True, text=True)
        if proc.returncode != 0:
            raise IptablesError(f"{' '.join(cmd)}: {proc.stderr.strip()}\ninput was:\n{text}")
