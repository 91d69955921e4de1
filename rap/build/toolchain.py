"""The project's one Go toolchain: find ``go``, its environment, run it.

Everything the project builds with Go goes through here: kube-proxy and
kube-apiserver, the netdelay delayer (rap.localcluster.netdelay.build) and
Terraform (rap.cloud.terraform). GOMODCACHE and GOCACHE live under the project
cache (``rap.paths.cache_dir()``) so that a fresh clone on the same machine, as
CI makes, reuses both. Not here: what is built, or from which source.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from rap.build import BuildError, status

GO_INSTALL_HINT = (
    "install Go (1.21 or newer) from https://go.dev/dl/ and put its bin/ on PATH, "
    "or on Debian: apt-get install golang-go"
)


def find_go() -> str:
    """The go binary: on PATH, else the usual /usr/local/go install."""
    found = shutil.which("go")
    if found:
        return found
    fallback = Path("/usr/local/go/bin/go")
    if fallback.is_file() and os.access(fallback, os.X_OK):
        return str(fallback)
    raise BuildError(f"the Go toolchain ('go') was not found on PATH: {GO_INSTALL_HINT}")


def go_env(cache: Path) -> dict[str, str]:
    """The environment for every go command of the build."""
    env = dict(os.environ)
    env.update(
        {
            # Module and build caches under the project cache: one place to
            # keep between CI runs, and nothing left in ~/go.
            "GOMODCACHE": str(cache / "go" / "mod"),
            "GOCACHE": str(cache / "go" / "build"),
            # Never download another toolchain: the machine's Go is the one we test.
            "GOTOOLCHAIN": "local",
            # A go.work somewhere above the cache must not capture the build module.
            "GOWORK": "off",
            # Static binaries, as upstream's release builds of kube-proxy are,
            # so they run on any base image.
            "CGO_ENABLED": "0",
            # Flags are passed explicitly; inherited GOFLAGS (e.g. -mod=vendor)
            # would change what gets built.
            "GOFLAGS": "",
        }
    )
    return env


def run_go(args: list[str], cwd: Path, env: dict[str, str], what: str, capture: bool = False) -> str:
    """Run one go command, streaming its output; raise BuildError naming the step."""
    cmd = [find_go(), *args]
    status.say(f"{what}: {' '.join(cmd)}  (in {cwd})")
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, text=True,
            stdout=subprocess.PIPE if capture else None,
        )
    except FileNotFoundError as exc:  # go vanished between find_go and here
        raise BuildError(f"could not run {cmd[0]}: {exc}; {GO_INSTALL_HINT}") from exc
    if proc.returncode != 0:
        raise BuildError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}")
    return proc.stdout or ""


def go_version(env: dict[str, str]) -> str:
    """``go env GOVERSION`` (e.g. go1.26.0), or "unknown"; part of every build stamp."""
    out = subprocess.run([find_go(), "env", "GOVERSION"], env=env, text=True,
                         capture_output=True)
    return out.stdout.strip() or "unknown"
