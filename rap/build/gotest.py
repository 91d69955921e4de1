"""go test of the swapped package: upstream's pkg/proxy/userspace tests plus rap_patch/*_test.go.

The project's tests get the repo's paths (conformance vectors) through the
environment, since go test runs them with the package dir inside the source
tree as cwd. Not here: building binaries (rap.build.binaries) or the Go
benchmark (rap.build.gobench).
"""

from __future__ import annotations

import time
from pathlib import Path

from rap import paths
from rap.build import status
from rap.build.overlay import project_test_files, rap_go_path, write_overlay
from rap.build.source import SWAPPED_FILE, USERSPACE_PKG, prepare_tree
from rap.build.toolchain import run_go


def test_proxy(k8s_src: Path | str | None = None, rap_go: Path | str | None = None,
               extra_test_files: list[Path] = (), verbose: bool = False,
               run: str | None = None, project_tests: bool = True,
               vectors_dir: Path | str | None = None) -> None:
    """Upstream's pkg/proxy/userspace tests plus rap_patch/*_test.go, with rap.go swapped in.

    project_tests=False leaves out rap_patch/*_test.go: they test rap.go's own
    internals, so they cannot compile against another file swapped in (e.g.
    upstream's roundrobin.go, to check the pipeline itself).
    vectors_dir: the conformance vectors TestRAPVectors replays (default the
    repo's tests/vectors; the differential test passes generated ones).
    Raises BuildError (so the task exits non-zero) when any test fails.
    """
    rap_file = rap_go_path(rap_go)
    tree = prepare_tree(k8s_src)
    tests = project_test_files() if project_tests else []
    tests += [Path(p).resolve() for p in extra_test_files]
    status.step(2, 4, f"swap: {tree.userspace_dir / SWAPPED_FILE} -> {rap_file} (overlay), "
                      f"plus {len(tests)} project test file(s): {', '.join(p.name for p in tests) or 'none'}")
    overlay = write_overlay(tree, "test", rap_file, tests)
    env = dict(tree.env)
    # The project's tests run with the package dir as cwd (inside the source
    # tree), so tell them where the repo's conformance vectors are.
    env["RAP_VECTORS_DIR"] = str(Path(vectors_dir).resolve() if vectors_dir else paths.VECTORS_DIR)
    env["RAP_REPO"] = str(paths.REPO)
    # go test runs a subset of go vet first. Under Go 1.26 it passes on
    # upstream's 1.21 userspace package, so vet stays on: it also checks rap.go.
    # -count=1: always really run (about 10 s), never report a cached pass.
    args = ["test", "-mod=mod", "-buildvcs=false", "-overlay", str(overlay),
            "-count=1", "-timeout", "10m"]
    if verbose:
        args.append("-v")
    if run:
        args += ["-run", run]
    status.step(4, 4, f"test: upstream {USERSPACE_PKG} tests on the swapped tree")
    started = time.monotonic()
    run_go([*args, USERSPACE_PKG], tree.build_dir, env, "go test userspace")
    status.say(f"tests passed in {time.monotonic() - started:.0f}s")


# Not a pytest test, whatever its name says.
test_proxy.__test__ = False
