"""A tool pinned to one release of a Go module, installed from the Go module proxy and reused by its stamp.

KWOK (rap.build.kwok), vegeta (rap.bench.vegeta) and the image registry
(rap.build.registry) are each one release whose go.sum hash the project
keeps: ``install`` downloads the module, refuses it when the proxy serves
other bytes than the pinned hash, ``go install``s the command from an empty
folder of its own (so no go.mod around it takes part), and puts the binary
at its path with a stamp of (module, version, hash, Go) through
rap.build.stamp, so a half-built binary is never reused. Not here: what each
tool is for, or running it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rap.build import BuildError, stamp


@dataclass(frozen=True)
class Pin:
    name: str  # the command's binary, as go install names it
    module: str
    version: str
    sum: str  # the module's go.sum hash
    package: str  # what to install: the module itself or one of its commands
    home: str  # the file that holds version and sum, for the message when the hash differs
    ldflags: str = ""
    env: dict[str, str] = field(default_factory=dict)  # added to go install's environment
    error: type[Exception] = BuildError


def install(pin: Pin, out: Path, force: bool = False, say: Callable[[str], None] | None = None) -> Path:
    """``out``, built unless its stamp is current; ``pin.error`` when the proxy serves other bytes. ``say``
    hears whether it was up to date or how long the build took."""
    from rap.build import toolchain
    from rap.paths import cache_dir

    env = toolchain.go_env(cache_dir())
    module = f"{pin.module}@{pin.version}"
    inputs = stamp.digest([module, pin.sum, toolchain.go_version(env)])
    if not force and stamp.is_current(out, inputs):
        if say:
            say(f"{pin.name}: up to date ({out}), inputs unchanged")
        return out
    started = time.monotonic()
    work = cache_dir() / "tmp" / f"{pin.name}-build-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        info = json.loads(toolchain.run_go(["mod", "download", "-json", module], work, env, f"{pin.name} download",
                                           capture=True))
        if info.get("Sum") != pin.sum:
            raise pin.error(f"{module} from the Go module proxy has checksum {info.get('Sum')!r}, not the pinned "
                            f"{pin.sum}: do not use it; check GOPROXY and, for a new release, update VERSION and "
                            f"SUM in {pin.home} together")
        out.parent.mkdir(parents=True, exist_ok=True)
        with stamp.replacing(out, inputs) as tmp:
            flags = ["-ldflags", pin.ldflags] if pin.ldflags else []
            toolchain.run_go(["install", "-trimpath", *flags, f"{pin.package}@{pin.version}"], work,
                             {**env, "GOBIN": str(work / "bin"), **pin.env}, f"{pin.name} build")
            os.replace(work / "bin" / pin.name, tmp)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if say:
        say(f"{pin.name}: built in {time.monotonic() - started:.0f}s -> {out}")
    return out
