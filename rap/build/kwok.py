"""KWOK (sigs.k8s.io/kwok), pinned and built from the Go module proxy on first use.

KWOK simulates Nodes and Pods without kubelets: it marks the Nodes it manages
Ready, renews their Leases, and moves their Pods to Running with an IP. The
scale measurement (rap.scale) runs it against the local kube-apiserver.
Built with the project's Go toolchain (rap.build.toolchain) into
``<cache>/bin/kwok-<version>``, from one version whose module checksum is
kept here, as vegeta is (rap/bench/vegeta.py). Not here: running it
(rap.scale.kwok).

Why v0.6.1: the oldest release the Go module proxy serves here (v0.6.1,
v0.7.0, v0.8.0); its controllers use only core/v1 Nodes and Pods and
coordination.k8s.io/v1 Leases, which kube-apiserver v1.21 serves, and its
default stages (node-initialize, node-heartbeat-with-lease, pod-ready) need
no CRD. Measured working against the local v1.21.14 API server by
``python3 -m rap.scale``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from rap.build import BuildError

MODULE = "sigs.k8s.io/kwok"
PACKAGE = f"{MODULE}/cmd/kwok"
VERSION = "v0.6.1"
# The module's go.sum hash: a re-tagged release, or a proxy serving other bytes, fails here.
SUM = "h1:Ar8u7Y5TWvvOktAWapXRWJxwiwy9XFolJd4IPDR3fPg="


def binary_path(version: str = VERSION) -> Path:
    from rap.paths import cache_dir

    return cache_dir() / "bin" / f"kwok-{version}"


def build(force: bool = False) -> Path:
    """``<cache>/bin/kwok-VERSION``, built unless its stamp says it already is (about 90 s the first time)."""
    from rap.build.toolchain import go_env, go_version, run_go
    from rap.paths import cache_dir

    out = binary_path()
    stamp = out.with_name(out.name + ".stamp")
    env = go_env(cache_dir())
    want = f"{MODULE}@{VERSION} {SUM} {go_version(env)}"
    if not force and out.is_file() and stamp.is_file() and stamp.read_text().strip() == want:
        return out
    # An empty folder of our own as the working directory, so no go.mod around it takes part.
    work = cache_dir() / "tmp" / f"kwok-build-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        module = f"{MODULE}@{VERSION}"
        info = json.loads(run_go(["mod", "download", "-json", module], work, env, "kwok download", capture=True))
        if info.get("Sum") != SUM:
            raise BuildError(f"{module} from the Go module proxy has checksum {info.get('Sum')!r}, not the pinned "
                             f"{SUM}: do not use it; check GOPROXY and, for a new release, update VERSION and SUM "
                             "in rap/build/kwok.py together")
        # -mod=mod: `go install pkg@version` resolves the release's own go.mod, never a workspace's.
        run_go(["install", "-trimpath", f"{PACKAGE}@{VERSION}"], work,
               {**env, "GOBIN": str(work / "bin"), "GOFLAGS": "-mod=mod"}, "kwok build")
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work / "bin" / "kwok", out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stamp.write_text(want + "\n")
    return out


if __name__ == "__main__":  # python3 -m rap.build.kwok: build (or find) it and print its path
    print(build())
