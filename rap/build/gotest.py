"""go test of the swapped package: upstream's pkg/proxy/userspace tests plus rap_patch/*_test.go.

The project's tests get the repo's paths (conformance vectors) through the
environment, since go test runs them with the package dir inside the source
tree as cwd. The whole package runs under the race detector: RAP's snapshot
swaps and connection bookkeeping run beside NextEndpoint, and upstream's
proxier tests drive real connections through the swapped proxysocket.go. Not
here: building binaries (rap.build.binaries) or the Go benchmark
(rap.build.gobench).
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from rap import paths
from rap.build import BuildError, BuildOptionError, status
from rap.build.overlay import (added_files, patch_map, project_test_files, rap_go_path, write_overlay,
                               write_replace_overlay)
from rap.build.source import REPLACED_FILES, SWAPPED_FILE, USERSPACE_PKG, prepare_tree
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
                      f"{replaced_note(rap_file)}"
                      f"plus {len(tests)} project test file(s): {', '.join(p.name for p in tests) or 'none'}")
    overlay = write_overlay(tree, "test", rap_file, tests)
    env = race_env(tree.env)
    # The project's tests run with the package dir as cwd (inside the source
    # tree), so tell them where the repo's conformance vectors are.
    env["RAP_VECTORS_DIR"] = str(Path(vectors_dir).resolve() if vectors_dir else paths.VECTORS_DIR)
    env["RAP_REPO"] = str(paths.REPO)
    status.step(4, 4, f"test: upstream {USERSPACE_PKG} tests on the swapped tree, with -race "
                      "(the first run builds the race-instrumented dependencies: minutes)")
    started = time.monotonic()
    run_go([*test_args(overlay, verbose, run), USERSPACE_PKG], tree.build_dir, env,
           "go test -race userspace")
    status.say(f"tests passed in {time.monotonic() - started:.0f}s")


# go test's -fuzztime: a time.Duration or a count of calls ("100000x").
FUZZTIME = re.compile(r"[1-9][0-9]*x|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+")
FUZZ_TARGETS = ("FuzzRAPQuantity", "FuzzRAPMetrics", "FuzzRAPEndpoints")


def fuzz_proxy(targets: tuple[str, ...] | list[str] = FUZZ_TARGETS, fuzztime: str = "10s",
               k8s_src: Path | str | None = None) -> None:
    """go test -fuzz on each of rap_patch/rap_fuzz_test.go's targets, on test_proxy's swapped package.

    go fuzzes only packages of the main module, and the build module only
    requires k8s.io/kubernetes (whose downloaded copy cannot be a main module:
    the module zip has no staging/), so the overlay mirrors the swapped
    package into the build module as fuzz/userspace, files unchanged. One
    target per run (go fuzzes one at a time); no -race (test_proxy's job).
    A failing input lands in fuzz/userspace/testdata/fuzz/<target>/ of the
    build dir, which go's message names.
    """
    unknown = [t for t in targets if t not in FUZZ_TARGETS]
    if unknown:
        raise BuildOptionError(f"--target: unknown fuzz target(s) {', '.join(unknown)}; "
                               f"choose from {', '.join(FUZZ_TARGETS)}")
    if not FUZZTIME.fullmatch(str(fuzztime)):
        raise BuildOptionError(f"--fuzztime: {fuzztime!r} is neither a Go duration (30s, 5m, 1h30m) "
                               "nor a count of inputs (100000x)")
    tree = prepare_tree(k8s_src)
    pkg_dir = tree.build_dir / "fuzz" / "userspace"
    pkg_dir.mkdir(parents=True, exist_ok=True)
    overlay = write_replace_overlay(tree, "fuzz", fuzz_map(tree, pkg_dir))
    env = {**tree.env, "RAP_VECTORS_DIR": str(paths.VECTORS_DIR), "RAP_REPO": str(paths.REPO)}
    for target in targets:
        status.say(f"fuzz: {target} for {fuzztime}")
        run_go(["test", "-mod=mod", "-buildvcs=false", "-overlay", str(overlay), "-run", "^$",
                "-fuzz", f"^{target}$", "-fuzztime", fuzztime, "./fuzz/userspace"],
               tree.build_dir, env, f"go test -fuzz {target}")


def fuzz_map(tree, pkg_dir: Path) -> dict[str, str]:
    """The swapped package (upstream's non-test files, then the patch over them) re-rooted at pkg_dir."""
    out = {str(pkg_dir / f.name): str(f) for f in sorted(tree.userspace_dir.glob("*.go"))
           if not f.name.endswith("_test.go")}
    patch = patch_map(tree.userspace_dir, rap_go_path(None), project_test_files())
    out.update({str(pkg_dir / Path(dest).name): src for dest, src in patch.items()})
    return {dest: src for dest, src in out.items() if src}


def replaced_note(rap_file: Path) -> str:
    """The upstream files the patch beside rap_file replaces under their own names, for the log."""
    names = [p.name for p in added_files(rap_file) if p.name in REPLACED_FILES]
    return "".join(f"{name} -> its own, " for name in names)


def test_args(overlay: Path, verbose: bool = False, run: str | None = None) -> list[str]:
    """go test's arguments for the swapped package, before the package path."""
    # go test runs a subset of go vet first. Under Go 1.26 it passes on
    # upstream's 1.21 userspace package, so vet stays on: it also checks rap.go.
    # -count=1: always really run (about 15 s with -race), never report a cached pass.
    args = ["test", "-mod=mod", "-buildvcs=false", "-overlay", str(overlay),
            "-race", "-count=1", "-timeout", "10m"]
    if verbose:
        args.append("-v")
    if run:
        args += ["-run", run]
    return args


def race_env(env: dict[str, str]) -> dict[str, str]:
    """The build's go environment with cgo on, as -race needs; the binaries stay static."""
    compiler = (env.get("CC") or "gcc").split()[0]
    if shutil.which(compiler, path=env.get("PATH")) is None:
        raise BuildError(f"go test -race needs cgo and so a C compiler, and {compiler!r} is "
                         "not on PATH: install one (Debian: apt-get install gcc libc6-dev) "
                         "or set $CC")
    return {**env, "CGO_ENABLED": "1"}


# Not pytest tests, whatever their names say.
test_proxy.__test__ = False
test_args.__test__ = False
fuzz_proxy.__test__ = False
fuzz_map.__test__ = False
