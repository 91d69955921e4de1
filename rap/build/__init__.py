"""Build kube-proxy v1.21 with RAP swapped in, and run upstream's tests on it.

The recipe, one module per step:

- ``toolchain``: the project's one Go toolchain (find it, its environment and
  caches, run it). netdelay and Terraform are built with it too.
- ``gomod`` and ``source``: Kubernetes, pinned to one release, as the Go module
  ``k8s.io/kubernetes`` through the Go module proxy (no git clone), or an
  existing release-1.21 checkout; the generated *build module* that requires it.
- ``overlay``: the swap. ``go build -overlay`` removes
  ``pkg/proxy/userspace/roundrobin.go`` and adds ``rap_patch/rap.go`` (and its
  sibling files, of which ``proxysocket.go`` replaces upstream's, and for test
  runs ``rap_patch/*_test.go``) to that package, without writing to any source tree.
- ``binaries`` (with ``openapi`` for kube-apiserver): ``go build`` of
  ``cmd/kube-proxy``, RAP (``v1.21.14-rap``) and stock (``v1.21.14``), of
  kube-apiserver, and of the real nodes' kubelet, kube-controller-manager and
  kube-scheduler; ``pause``: gcc of upstream's ``build/pause/linux/pause.c``.
  Each is skipped while its inputs are unchanged (``stamp``).
- ``gotest`` and ``gobench``: upstream's ``pkg/proxy/userspace`` tests plus the
  project's Go tests on the swapped tree; the Go benchmark of NextEndpoint.
- ``image``: build/Dockerfile's image around the built kube-proxy, and its
  push: with a Docker engine, or without one from ``baseroot`` (the Debian
  base, made by debootstrap and cached), ``oci`` (layers, config, manifest)
  and ``push`` (the Distribution HTTP API); ``registry``: the local registry
  (distribution v3), built and run.
- ``workflow``: the ``invoke build-proxy`` sequence of the steps above;
  ``options``: the help of its options.

``python -m rap.build`` runs the build without invoke. Not here: what the
local cluster does with the binaries (rap.localcluster.binaries).
"""

from __future__ import annotations

from rap.errors import OptionError, UserError
from rap.status import Status


class BuildError(UserError, RuntimeError):
    """A build step failed; the message names the thing and the fix.

    Also a RuntimeError, as before rap.errors existed, so that callers which
    catch RuntimeError (the local cluster's tasks) still turn it into one line.
    """


class BuildOptionError(BuildError, OptionError):
    """A bad build option (e.g. --push without --image), found before anything is built. Exit 2."""


# The build's one progress printer: ``[build] step 2/4 swap: ...`` lines on stdout.
status = Status("build")
