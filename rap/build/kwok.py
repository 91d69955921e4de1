"""KWOK (sigs.k8s.io/kwok), pinned and built from the Go module proxy on first use.

KWOK simulates Nodes and Pods without kubelets: it marks the Nodes it manages
Ready, renews their Leases, and moves their Pods to Running with an IP. The
scale measurement (rap.scale) runs it against the local kube-apiserver.
Built with the project's Go toolchain (rap.build.toolchain) into
``<cache>/bin/kwok-<version>``, from one version whose module checksum is
kept here, as vegeta is (rap/bench/vegeta.py), through rap.build.pinned. Not here: running it
(rap.scale.kwok).

Why v0.6.1: the oldest release the Go module proxy serves here (v0.6.1,
v0.7.0, v0.8.0); its controllers use only core/v1 Nodes and Pods and
coordination.k8s.io/v1 Leases, which kube-apiserver v1.21 serves, and its
default stages (node-initialize, node-heartbeat-with-lease, pod-ready) need
no CRD. Measured working against the local v1.21.14 API server by
``python3 -m rap.scale``.
"""

from __future__ import annotations

from pathlib import Path

from rap.build import pinned

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
    # -mod=mod: `go install pkg@version` resolves the release's own go.mod, never a workspace's.
    return pinned.install(pinned.Pin("kwok", MODULE, VERSION, SUM, PACKAGE, "rap/build/kwok.py",
                                     env={"GOFLAGS": "-mod=mod"}), binary_path(), force)


if __name__ == "__main__":  # python3 -m rap.build.kwok: build (or find) it and print its path
    print(build())
