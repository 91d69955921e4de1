"""The pause binary, compiled from upstream's own build/pause/linux/pause.c in the pinned tree.

Every Pod sandbox runs pause as its first process; the local cluster's
real-node mode (issue 14) puts it in the sandbox image. Upstream compiles it
inside its kube-cross image with the CFLAGS of build/pause/Makefile; here
the same flags, read from that Makefile, go to the machine's gcc, with
Debian's libc6-dev for the static libc. The binary lands in ``rap.paths.build_out_dir()/pause`` and is reused
while its stamp (gcc, flags, source) is unchanged. Not here: the
image around it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

from rap import paths
from rap.build import BuildError, stamp, status
from rap.build.source import Tree, prepare_tree

PAUSE_SOURCE = "build/pause/linux/pause.c"
PAUSE_MAKEFILE = "build/pause/Makefile"
GCC_HINT = "apt-get install gcc libc6-dev (scripts/install.sh installs both; -static needs libc6-dev's libc.a)"


def _makefile_var(makefile_text: str, name: str) -> str:
    m = re.search(rf"^{name}\s*\??=\s*(.*?)\s*$", makefile_text, re.M)
    if not m:
        raise BuildError(f"{PAUSE_MAKEFILE} has no '{name} = ...' line; is this a Kubernetes release tree?")
    return m.group(1)


def makefile_flags(makefile_text: str, k8s_version: str) -> list[str]:
    """build/pause/Makefile's own CFLAGS (-static, -DVERSION=v$(TAG)-$(REV), ...), filled in.

    REV is ``git describe --contains`` of the commit, which at a release tag
    is the tag itself; the module has no .git, so the tree's version stands in.
    """
    flags = (_makefile_var(makefile_text, "CFLAGS")
             .replace("$(TAG)", _makefile_var(makefile_text, "TAG")).replace("$(REV)", k8s_version))
    if "$(" in flags:
        raise BuildError(f"{PAUSE_MAKEFILE}: CFLAGS uses a variable other than TAG and REV ({flags}); "
                         "rap/build/pause.py must learn to fill it in")
    if "-static" not in flags.split():
        # The sandbox image holds pause alone, with no libc beside it.
        raise BuildError(f"{PAUSE_MAKEFILE}: CFLAGS lacks -static ({flags}); pause must be static")
    return flags.split()


def find_gcc() -> str:
    found = shutil.which("gcc")
    if not found:
        raise BuildError(f"gcc was not found on PATH, and pause is C: {GCC_HINT}")
    return found


def _gcc_version(gcc: str) -> str:
    out = subprocess.run([gcc, "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def _source(tree: Tree) -> tuple[Path, list[str]]:
    """pause.c of the tree and the flags to compile it with."""
    source, makefile = tree.src / PAUSE_SOURCE, tree.src / PAUSE_MAKEFILE
    for needed in (source, makefile):
        if not needed.is_file():
            raise BuildError(f"{needed} is missing: pause is built from upstream's own source, so the "
                             "Kubernetes tree must hold build/pause (a release-1.21 tree does)")
    return source, makefile_flags(makefile.read_text(), tree.version)


def build_pause(k8s_src: Path | str | None = None, force: bool = False) -> Path:
    """gcc -static of pause.c into build_out_dir()/pause, unless its stamp is unchanged."""
    gcc = find_gcc()
    source, flags = _source(prepare_tree(k8s_src))
    out = paths.build_out_dir() / "pause"
    # The source's bytes, not its path: a checkout can change under the same path.
    inputs = stamp.digest([_gcc_version(gcc), *flags, source.read_text()])
    if not force and stamp.is_current(out, inputs):
        status.say(f"pause: up to date ({out}), inputs unchanged")
        return out
    started = time.monotonic()
    with stamp.replacing(out, inputs) as tmp:
        cmd = [gcc, *flags, "-o", str(tmp), str(source)]
        status.say(f"build pause: {' '.join(cmd)}")
        if subprocess.run(cmd).returncode != 0:
            raise BuildError(f"gcc failed to build pause (see its message above): {' '.join(cmd)}; "
                             f"if it cannot find -lc: {GCC_HINT}")
    status.say(f"pause: built in {time.monotonic() - started:.1f}s -> {out}")
    return out
