"""Finding Debian's haproxy and checking that it can do what the peers ask of it."""

from __future__ import annotations

import re
import shutil
import subprocess

from rap.localcluster.haproxy.errors import HaproxyError

# `balance random(<draws>)` (power of two choices) and the runtime API's
# `set server ... addr ... port` both exist from 2.0 on; Debian 12 ships 2.6.
MIN_VERSION = (2, 0)
INSTALL_HINT = "run scripts/install.sh (it runs apt-get install haproxy)"
_VERSION = re.compile(r"HA-?Proxy version (\d+)\.(\d+)(\S*)")


def parse_version(text: str) -> tuple[int, int, str]:
    """(major, minor, full version) from the first line of `haproxy -v`."""
    m = _VERSION.search(text)
    if m is None:
        raise HaproxyError(f"cannot read a version from `haproxy -v` ({text.strip()[:80]!r}); {INSTALL_HINT}")
    return int(m.group(1)), int(m.group(2)), f"{m.group(1)}.{m.group(2)}{m.group(3)}"


def find(binary: str = "haproxy") -> str:
    path = shutil.which(binary)
    if path is None:
        raise HaproxyError(f"{binary} not found: {INSTALL_HINT}")
    return path


def version(binary: str = "haproxy") -> str:
    """The full version of ``binary``, checked against MIN_VERSION."""
    path = find(binary)
    proc = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
    major, minor, full = parse_version(proc.stdout + proc.stderr)
    if (major, minor) < MIN_VERSION:
        need = ".".join(map(str, MIN_VERSION))
        raise HaproxyError(f"{path} is HAProxy {full}; balance random(2) needs {need} or newer: {INSTALL_HINT} "
                           "on Debian 11 or later")
    return full


def preflight() -> str:
    """What local-up checks before it creates anything: haproxy is there and new enough."""
    return version()
