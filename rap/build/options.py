"""The help of `invoke build-proxy`'s options, which `python -m rap.build` shares.

Kept apart from rap.build.workflow, which checks the options, so that
tasks.py can show the help without importing the build (invoke --list stays fast).
"""

from __future__ import annotations


def option_help() -> dict[str, str]:
    return {
        "k8s_src": "use this Kubernetes release-1.21 checkout instead of fetching v1.21.14 through the Go module proxy",
        "stock": "also build kube-proxy-stock (upstream round robin, no swap) for comparison",
        "test": "run upstream's pkg/proxy/userspace tests and rap_patch/*_test.go on the swapped tree "
                "(default on; --no-test skips)",
        "apiserver": "also build kube-apiserver from the same source (the local cluster needs it)",
        "node_binaries": "also build what real nodes run, stock from the same source: kubelet, "
                         "kube-controller-manager, kube-scheduler, and pause from upstream's "
                         "build/pause/linux/pause.c (gcc -static)",
        "image": "then build build/Dockerfile around the RAP kube-proxy as this NAME:TAG (needs a Docker engine)",
        "push": "push the --image after building it",
        "force": "rebuild even when the binaries' inputs are unchanged",
    }
