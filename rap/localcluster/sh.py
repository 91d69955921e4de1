"""Running the system tools the local cluster is made of (ip, iptables, sysctl)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Sequence

from rap.errors import UserError


class ToolError(UserError, RuntimeError):
    """A system command failed; the message names the command and its output."""


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolError(f"{name} not found: install Debian's {package} (./scripts/install.sh does)")
    return path


def run(cmd: Sequence[str], check: bool = True, netns: str | None = None, input: str | None = None) -> str:
    """The command's output; ``input`` is written to its stdin (e.g. iptables-restore's rules)."""
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    proc = subprocess.run(list(cmd), capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise ToolError(f"`{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def quiet(cmd: Sequence[str], netns: str | None = None) -> bool:
    """Run a best-effort cleanup command; True when it succeeded."""
    try:
        run(cmd, check=True, netns=netns)
        return True
    except ToolError:
        return False
