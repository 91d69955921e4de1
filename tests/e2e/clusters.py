"""What the e2e tests that need a local cluster share: root, the builds, a cluster that always goes down, a wait."""

from __future__ import annotations

import contextlib
import os
import time

import pytest


def need_root_and_builds(rap: bool = True) -> None:
    """Skip without root; build (or find cached) kube-proxy (stock, and RAP if asked) and kube-apiserver."""
    if os.geteuid() != 0:
        pytest.skip("the local cluster needs root")
    from rap.build.binaries import build_apiserver, build_kube_proxy

    build_kube_proxy(rap=rap, stock=True)
    build_apiserver()


@contextlib.contextmanager
def running(c, rap: bool = True):
    """(runtime, state) of a local cluster with config ``c``, torn down afterwards whatever happens."""
    from rap.localcluster import cluster, state

    need_root_and_builds(rap=rap)
    runtime = state.runtime_dir()
    cluster.down(runtime)  # a leftover from an aborted run must not fail this one
    try:
        yield runtime, cluster.up(c, runtime)
    finally:
        cluster.down(runtime)


def wait_for(predicate, timeout: float, what: str):
    """``predicate()``'s first truthy value, polled every 0.5 s; the test fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
