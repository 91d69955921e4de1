"""go build of the binaries: kube-proxy with RAP, kube-proxy stock, kube-apiserver, and the node binaries.

Each binary is named by version (``-ldflags -X``, as hack/lib/version.sh sets
them): RAP's kube-proxy says ``v1.21.14-rap``; the stock one, kube-apiserver,
kubelet, kube-controller-manager and kube-scheduler ``v1.21.14``. A released
module never changes, so a binary whose inputs (Go, package, flags, go.mod,
overlaid files) are unchanged is reused by its stamp (rap.build.stamp).
Binaries land in ``rap.paths.build_out_dir()``. Not here: the source tree, the
swap, the tests (rap.build.source, .overlay, .gotest), pause (rap.build.pause).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from pathlib import Path

from rap import paths
from rap.build import BuildError, stamp, status
from rap.build.openapi import OPENAPI_FILE, generate_openapi
from rap.build.overlay import rap_go_path, write_overlay, write_replace_overlay
from rap.build.source import SWAPPED_FILE, Tree, prepare_tree
from rap.build.toolchain import go_version, run_go

RAP_VERSION_SUFFIX = "-rap"
KUBE_PROXY_PKG = "k8s.io/kubernetes/cmd/kube-proxy"
KUBE_APISERVER_PKG = "k8s.io/kubernetes/cmd/kube-apiserver"
# What a real node and the controllers run (issue 14's real-node mode), all
# stock; build_node_binaries says why kubelet is static here.
NODE_BINARIES = {
    "kubelet": "k8s.io/kubernetes/cmd/kubelet",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
}


def version_ldflags(git_version: str) -> str:
    """-X flags naming the version, as hack/lib/version.sh sets them.

    Both packages carry the version (client-go's goes into the User-Agent).
    buildDate is left at its default so identical inputs give identical binaries.
    """
    m = re.match(r"v(\d+)\.(\d+)", git_version)
    major, minor = (m.group(1), m.group(2)) if m else ("1", "21")
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        for key, val in (("gitVersion", git_version), ("gitMajor", major),
                         ("gitMinor", minor), ("gitTreeState", "clean")):
            flags.append(f"-X '{pkg}.{key}={val}'")
    return " ".join(flags)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _stamp(tree: Tree, pkg: str, ldflags: str, overlay: Path | None) -> str:
    """What a binary was built from; same stamp, same binary, so skip the build."""
    parts = [go_version(tree.env), pkg, ldflags, str(tree.src),
             (tree.build_dir / "go.mod").read_text()]
    if overlay is not None:
        replace = json.loads(overlay.read_text())["Replace"]
        parts += [f"{k}={_file_digest(v) if v else ''}" for k, v in sorted(replace.items())]
    return stamp.digest(parts)


def build_binary(tree: Tree, pkg: str, out_name: str, git_version: str,
                 overlay: Path | None = None, force: bool = False) -> Path:
    """go build one command of the tree into build_out_dir()/out_name."""
    out = paths.build_out_dir() / out_name
    ldflags = version_ldflags(git_version)
    inputs = _stamp(tree, pkg, ldflags, overlay)
    if not force and tree.immutable and stamp.is_current(out, inputs):
        status.say(f"{out_name}: up to date ({out}), inputs unchanged")
        return out
    started = time.monotonic()
    with stamp.replacing(out, inputs) as tmp:
        args = ["build", "-mod=mod", "-buildvcs=false", "-trimpath", "-ldflags", ldflags, "-o", str(tmp)]
        if overlay is not None:
            args += ["-overlay", str(overlay)]
        run_go([*args, pkg], tree.build_dir, tree.env, f"build {out_name} ({git_version})")
    status.say(f"{out_name}: built in {time.monotonic() - started:.0f}s -> {out}")
    return out


def build_kube_proxy(k8s_src: Path | str | None = None, rap: bool = True,
                     stock: bool = False, rap_go: Path | str | None = None,
                     force: bool = False) -> dict[str, Path]:
    """Build kube-proxy with RAP (``kube-proxy``) and/or stock (``kube-proxy-stock``).

    Returns {"kube-proxy": path, "kube-proxy-stock": path} for what was built.
    """
    if not (rap or stock):
        raise BuildError("nothing to build: ask for the RAP kube-proxy, the stock one, or both")
    rap_file = rap_go_path(rap_go) if rap else None  # fail before any download
    tree = prepare_tree(k8s_src)
    built: dict[str, Path] = {}
    if rap_file is not None:
        status.step(2, 4, f"swap: {tree.userspace_dir / SWAPPED_FILE} -> {rap_file} (overlay)")
        overlay = write_overlay(tree, "build", rap_file)
        status.step(3, 4, "build: kube-proxy (RAP)")
        built["kube-proxy"] = build_binary(tree, KUBE_PROXY_PKG, "kube-proxy",
                                           tree.version + RAP_VERSION_SUFFIX, overlay, force)
    if stock:
        status.step(3, 4, "build: kube-proxy-stock (upstream round robin, no swap)")
        built["kube-proxy-stock"] = build_binary(tree, KUBE_PROXY_PKG, "kube-proxy-stock",
                                                 tree.version, None, force)
    for name, path in built.items():
        status.say(f"done: {name} at {path}")
    return built


def build_apiserver(k8s_src: Path | str | None = None, force: bool = False) -> Path:
    """kube-apiserver from the same pinned source, for the local cluster (no swap)."""
    tree = prepare_tree(k8s_src)
    generated = generate_openapi(tree)
    target = tree.src / "pkg/generated/openapi" / OPENAPI_FILE
    overlay = write_replace_overlay(tree, "apiserver", {str(target): str(generated)})
    status.say("build: kube-apiserver (same source, stock, generated openapi added by overlay)")
    path = build_binary(tree, KUBE_APISERVER_PKG, "kube-apiserver", tree.version, overlay, force)
    status.say(f"done: kube-apiserver at {path}")
    return path


def build_node_binaries(k8s_src: Path | str | None = None, force: bool = False) -> dict[str, Path]:
    """kubelet, kube-controller-manager and kube-scheduler from the same pinned source, stock.

    No overlay and no generated code: unlike kube-apiserver, none of them
    imports pkg/generated/openapi. Static, as CGO_ENABLED=0 makes every Go
    binary here, so one cached toolchain setting builds them all. Upstream
    links its released kubelet with cgo; for v1.21.14 the only packages that
    then differ are net and os/user (Go's own resolver and user lookup instead
    of glibc's) and cadvisor's NVIDIA GPU metrics (gonvml), which nothing here uses.
    """
    tree = prepare_tree(k8s_src)
    built = {}
    for name, pkg in NODE_BINARIES.items():
        status.say(f"build: {name} (same source, stock)")
        built[name] = build_binary(tree, pkg, name, tree.version, None, force)
    return built


def check_version(binary: Path, expected: str) -> str:
    """Run ``binary --version`` and check that it names the expected version."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    text = (out.stdout + out.stderr).strip()
    if out.returncode != 0 or expected not in text.split():
        raise BuildError(f"{binary} --version said {text!r} (exit {out.returncode}), "
                         f"expected it to name {expected}")
    return text

