"""Building the delayer (main.go beside this file) with the project's Go toolchain.

The binary goes to ``<cache>/bin/netdelay`` and is rebuilt only when its
sources or the Go version change. The toolchain, environment and caches are
the kube-proxy build's (rap.build.toolchain), with go.mod kept read-only. Not
here: running it (rap.localcluster.netdelay.runtime).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from rap.build import BuildError
from rap.build.toolchain import find_go, go_version
from rap.build.toolchain import go_env as build_go_env
from rap.localcluster.netdelay.errors import NetDelayError
from rap.paths import cache_dir

SOURCE_DIR = Path(__file__).resolve().parent
BINARY_NAME = "netdelay"


def binary_path() -> Path:
    """Where the delayer is built (and run from)."""
    return cache_dir() / "bin" / BINARY_NAME


def _find_go() -> str:
    """The shared toolchain's go; its absence is a NetDelayError (local-up's error) naming netdelay."""
    try:
        return find_go()
    except BuildError as exc:
        raise NetDelayError(f"netdelay: {exc}") from None


def go_env() -> dict[str, str]:
    """The kube-proxy build's Go environment (same caches), but never touching go.mod."""
    return {**build_go_env(cache_dir()), "GOFLAGS": "-mod=readonly"}


def source_digest(source_dir: Path = SOURCE_DIR) -> str:
    """Hash of what the binary is built from (go.mod, go.sum, non-test .go files)."""
    h = hashlib.sha256()
    files = sorted(p for p in source_dir.iterdir()
                   if p.name in ("go.mod", "go.sum") or (p.suffix == ".go" and not p.name.endswith("_test.go")))
    for p in files:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def build_netdelay(force: bool = False, source_dir: Path = SOURCE_DIR, out: Path | None = None) -> Path:
    """Build netdelay into ``out`` (<cache>/bin/netdelay) unless it is already built from these sources."""
    out = out or binary_path()
    stamp = out.with_name(BINARY_NAME + ".stamp")
    env = go_env()
    go = _find_go()
    version = go_version(env)
    want = f"{source_digest(source_dir)} {version}"
    if not force and out.is_file() and stamp.is_file() and stamp.read_text().strip() == want:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{BINARY_NAME}.{os.getpid()}.tmp")
    proc = subprocess.run([go, "build", "-trimpath", "-o", str(tmp), "."], cwd=source_dir, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise NetDelayError(f"building netdelay failed (go build in {source_dir}):\n"
                            f"{(proc.stderr or proc.stdout).strip()}")
    os.replace(tmp, out)
    stamp.write_text(want + "\n")
    return out

