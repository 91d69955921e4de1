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
        "image": "then package the RAP kube-proxy as the image build/Dockerfile describes, as this NAME:TAG: "
                 "with the Docker engine when one is reachable (DOCKER_HOST or its default socket), else "
                 "without one, from a Debian base made by debootstrap (cached), into build/out/images/",
        "stock_image": "likewise package kube-proxy-stock as this NAME:TAG (builds it too, as --stock does)",
        "push": "push the --image (and --stock-image) after building it; without a Docker engine, NAME must "
                "start with the registry, e.g. 127.0.0.1:5000/rap/kube-proxy:v1.21.14-rap (a local one: "
                "python3 -m rap.build.registry serve)",
        "force": "rebuild even when the binaries' inputs are unchanged",
    }
