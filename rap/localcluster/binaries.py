"""Which kube-proxy and kube-apiserver binaries the local cluster runs.

kube-proxy v1.21's userspace proxier insists on raising RLIMIT_NOFILE to
64000 and exits when it may not (it needs CAP_SYS_RESOURCE when the hard
limit is lower). Where this machine allows it, the cluster runs the very
binaries ``invoke build-proxy`` made; where it does not, it runs variants
built from the same tree with one more file swapped,
build/patches/rlimit_nofile.go, which keeps the highest limit allowed
instead of exiting. Both the RAP and the stock variant get that change.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from rap.build.binaries import KUBE_PROXY_PKG, RAP_VERSION_SUFFIX, build_binary
from rap.build.overlay import patch_map, rap_go_path, write_replace_overlay
from rap.build.source import prepare_tree
from rap.paths import BUILD_DIR, build_out_dir

KUBE_PROXY_NOFILE = 64 * 1000
RLIMIT_PATCH = BUILD_DIR / "patches" / "rlimit_nofile.go"
NAMES = {"rap": "kube-proxy", "stock": "kube-proxy-stock"}


@lru_cache(maxsize=None)
def can_raise_nofile(limit: int = KUBE_PROXY_NOFILE) -> bool:
    """Whether a process here may set RLIMIT_NOFILE to ``limit`` (tried once, in a child)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard >= limit:
        return True
    probe = f"import resource as r; r.setrlimit(r.RLIMIT_NOFILE, ({limit}, {limit}))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def kube_proxy(kind: str) -> Path:
    """The kube-proxy the local cluster runs for ``kind`` (rap or stock)."""
    plain = build_out_dir() / NAMES[kind]
    if can_raise_nofile():
        return plain
    return build_out_dir() / f"{NAMES[kind]}-nofile"


def build_local_variants(kinds=("rap", "stock")) -> dict[str, Path]:
    """Build the rlimit-tolerant variants (a no-op when cached or not needed)."""
    if can_raise_nofile():
        return {}
    tree = prepare_tree()
    rlimit_target = str(tree.userspace_dir / "rlimit.go")
    built = {}
    for kind in kinds:
        replace = {rlimit_target: str(RLIMIT_PATCH)}
        version = tree.version
        if kind == "rap":
            replace.update(patch_map(tree.userspace_dir, rap_go_path()))
            version += RAP_VERSION_SUFFIX
        overlay = write_replace_overlay(tree, f"local-{kind}", replace)
        name = f"{NAMES[kind]}-nofile"
        built[name] = build_binary(tree, KUBE_PROXY_PKG, name, version, overlay)
    return built
