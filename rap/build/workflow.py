"""``invoke build-proxy`` as one function: check the options, then build, test and package.

The order: options (``parse_options``: --push needs --image or --stock-image,
each must be NAME:TAG), how images will be made when one is wanted (a Docker
engine, else daemonless, with the registry answering for --push), gcc when pause
is, kube-proxy (RAP, and stock on request), kube-apiserver on request, the node
binaries on request (kubelet, kube-controller-manager, kube-scheduler, pause),
the userspace tests, the image. Everything that can be checked is checked before the first build.
``python -m rap.build`` runs the same sequence. Not here: how each step works
(rap.build.binaries, .pause, .gotest, .image).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rap.build import BuildOptionError, image
from rap.build.binaries import build_apiserver, build_kube_proxy, build_node_binaries
from rap.build.gotest import test_proxy
from rap.build.pause import build_pause, find_gcc


@dataclass(frozen=True)
class BuildOptions:
    """What one build-proxy run makes; see the task's help for each field."""

    k8s_src: str | None = None
    rap: bool = True
    stock: bool = False
    test: bool = True
    apiserver: bool = False
    node_binaries: bool = False
    image: str | None = None
    stock_image: str | None = None
    push: bool = False
    force: bool = False


def parse_options(k8s_src: str | None = None, *, rap: bool = True, stock: bool = False, test: bool = True,
                  apiserver: bool = False, node_binaries: bool = False, image_ref: str | None = None,
                  stock_image: str | None = None, push: bool = False, force: bool = False) -> BuildOptions:
    """The task's options, checked; BuildOptionError (exit 2) names a bad one.

    ``stock_image`` implies building the stock kube-proxy.
    """
    if push and not (image_ref or stock_image):
        raise BuildOptionError("--push needs --image NAME:TAG (or --stock-image NAME:TAG)")
    if image_ref and not rap:
        raise BuildOptionError("--image packages the RAP kube-proxy, so it cannot go with a stock-only build")
    if image_ref and image_ref == stock_image:
        raise BuildOptionError(f"--image and --stock-image are both {image_ref}: give the stock image its own tag")
    for ref, option in ((image_ref, "--image"), (stock_image, "--stock-image")):
        if ref:
            try:
                image.parse_image_ref(ref, option)
            except image.ImageError as exc:
                raise BuildOptionError(str(exc)) from None
    return BuildOptions(k8s_src=k8s_src, rap=rap, stock=stock or bool(stock_image), test=test,
                        apiserver=apiserver, node_binaries=node_binaries, image=image_ref,
                        stock_image=stock_image, push=push, force=force)


def images(options: BuildOptions) -> dict[str, str]:
    """{image ref: name of the binary it packages}, in build order."""
    wanted = {options.image: "kube-proxy", options.stock_image: "kube-proxy-stock"}
    return {ref: binary for ref, binary in wanted.items() if ref}


def build_proxy(options: BuildOptions) -> dict[str, Path]:
    """Build, test and package as ``options`` say; returns {binary name: path}."""
    packaged = images(options)
    if packaged:  # no engine and no debootstrap, or no registry to push to: fail before the build, not after it
        packager = image.prepare(list(packaged), options.push)
    if options.node_binaries:
        find_gcc()  # likewise: pause comes last, after minutes of Go builds
    built = build_kube_proxy(options.k8s_src, rap=options.rap, stock=options.stock, force=options.force)
    if options.apiserver:
        built["kube-apiserver"] = build_apiserver(options.k8s_src, force=options.force)
    if options.node_binaries:
        built.update(build_node_binaries(options.k8s_src, force=options.force))
        built["pause"] = build_pause(options.k8s_src, force=options.force)
    if options.test:
        test_proxy(options.k8s_src)
    for ref, binary in packaged.items():
        packager.package(ref, built[binary], options.push)
    return built


def summary(built: dict[str, Path]) -> str:
    """The closing lines of a build: each binary and where it is."""
    width = max([16, *(len(name) + 1 for name in built)])
    return "\n".join(["binaries:", *(f"  {name:{width}} {path}" for name, path in built.items())])
