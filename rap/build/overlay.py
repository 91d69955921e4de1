"""The swap: the ``go build -overlay`` file that puts rap.go in place of roundrobin.go.

The overlay deletes upstream's ``pkg/proxy/userspace/roundrobin.go`` and adds
``rap_patch/rap.go`` under its own name (so compiler errors name rap.go), the
patch's sibling files, and for test runs ``rap_patch/*_test.go``, all without
writing to any source tree. One sibling, ``rap_patch/proxysocket.go``, replaces
upstream's file of that name (``REPLACED_FILES``); any other clash of names is
an error. Not here: the source tree (rap.build.source) or the builds and tests
that use the overlay.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from rap import paths
from rap.build import BuildError
from rap.build.source import REPLACED_FILES, SWAPPED_FILE, USERSPACE_DIR, Tree, write_if_changed

# Lets a developer prove the pipeline with some other rap.go (for example a
# copy of upstream's roundrobin.go kept outside the repo) before the real one
# exists, or try a variant without touching rap_patch/.
RAP_GO_ENV = "RAP_GO_SOURCE"


def rap_go_path(rap_go: Path | str | None = None) -> Path:
    """The rap.go to swap in: the argument, else $RAP_GO_SOURCE, else rap_patch/rap.go."""
    if rap_go is None:
        rap_go = os.environ.get(RAP_GO_ENV) or (paths.RAP_PATCH_DIR / "rap.go")
    path = Path(rap_go).expanduser()
    if not path.is_file():
        raise BuildError(
            f"{path} not found: it is the RAP balancer that replaces upstream's "
            f"{SWAPPED_FILE}. Write it (rap_patch/rap.go), or point ${RAP_GO_ENV} at "
            "another file to try the pipeline, or build only the stock kube-proxy "
            "(python3 -m rap.build --stock-only).")
    text = path.read_text()
    if not re.search(r"^package userspace\b", text, re.M):
        raise BuildError(f"{path}: must be 'package userspace' to replace "
                         f"{USERSPACE_DIR}/{SWAPPED_FILE}")
    return path.resolve()


def project_test_files(patch_dir: Path | None = None) -> list[Path]:
    """The project's Go tests for the swapped package: rap_patch/*_test.go."""
    patch_dir = patch_dir or paths.RAP_PATCH_DIR
    return sorted(p.resolve() for p in Path(patch_dir).glob("*_test.go"))


def added_files(rap_go: Path) -> list[Path]:
    """The patch's added files: every other non-test .go file beside the swapped one.

    rap.go mirrors upstream's roundrobin.go; configuration, snapshot, decision
    and monitor live in sibling files of the same package, overlaid with it,
    and proxysocket.go replaces upstream's. A lone file elsewhere (e.g.
    $RAP_GO_SOURCE in a scratch folder) has none.
    """
    return sorted(p.resolve() for p in rap_go.parent.glob("*.go")
                  if not p.name.endswith("_test.go") and p.resolve() != rap_go.resolve())


def overlay_map(package_dir: Path, rap_go: Path, test_files: list[Path] = (),
                extra_files: list[Path] = ()) -> dict[str, str]:
    """The -overlay "Replace" map that swaps rap.go into package_dir.

    roundrobin.go is deleted (empty target) and rap.go added under its own
    name, so compiler errors name rap.go. The patch's added files and the
    test files go beside it. An added file in REPLACED_FILES replaces
    upstream's file of that name; any other file named like an upstream file
    would silently replace that file, so that is an error.
    """
    replace = {str(package_dir / SWAPPED_FILE): "", str(package_dir / "rap.go"): str(rap_go)}
    for kind, files in (("added", extra_files), ("test", test_files)):
        for added in files:
            target = package_dir / added.name
            replaces = kind == "added" and added.name in REPLACED_FILES
            if (target.exists() and not replaces) or str(target) in replace:
                raise BuildError(f"{added}: upstream {USERSPACE_DIR} already has a file "
                                 f"named {added.name}; rename the project's {kind} file")
            replace[str(target)] = str(added)
    return replace


def patch_map(package_dir: Path, rap_go: Path, test_files: list[Path] = ()) -> dict[str, str]:
    """The "Replace" map of the whole patch: rap.go, its added files, and ``test_files``."""
    return overlay_map(package_dir, rap_go, list(test_files), added_files(rap_go))


def write_overlay(tree: Tree, name: str, rap_go: Path, test_files: list[Path] = ()) -> Path:
    """The overlay of the whole patch (``patch_map``) for the tree, written to its build dir."""
    return write_replace_overlay(tree, name, patch_map(tree.userspace_dir, rap_go, test_files))


def write_replace_overlay(tree: Tree, name: str, replace: dict[str, str]) -> Path:
    """Write build_dir/overlay-<name>.json, go's -overlay file for the ``replace`` map."""
    path = tree.build_dir / f"overlay-{name}.json"
    write_if_changed(path, json.dumps({"Replace": replace}, indent=2, sort_keys=True) + "\n")
    return path

