"""Fast tests of rap.build.overlay: the -overlay map that swaps rap.go in, and which rap.go.

Nothing here runs go build or downloads anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rap.build import BuildError, overlay
from rap.build.source import Tree


def test_overlay_removes_roundrobin_and_adds_rap_and_tests(tmp_path):
    pkg = tmp_path / "pkg/proxy/userspace"
    pkg.mkdir(parents=True)
    (pkg / "roundrobin.go").write_text("package userspace\n")
    rap_go = tmp_path / "rap.go"
    test_go = tmp_path / "vectors_test.go"
    got = overlay.overlay_map(pkg, rap_go, [test_go])
    assert got == {
        str(pkg / "roundrobin.go"): "",
        str(pkg / "rap.go"): str(rap_go),
        str(pkg / "vectors_test.go"): str(test_go),
    }

def test_overlay_refuses_a_test_file_that_would_shadow_upstream(tmp_path):
    pkg = tmp_path / "userspace"
    pkg.mkdir()
    (pkg / "roundrobin_test.go").write_text("package userspace\n")
    with pytest.raises(BuildError, match="rename the project's test file"):
        overlay.overlay_map(pkg, tmp_path / "rap.go", [tmp_path / "roundrobin_test.go"])

def test_write_overlay_is_go_overlay_json(tmp_path):
    tree = Tree(src=tmp_path / "src", build_dir=tmp_path, version="v1.21.14")
    rap_go = tmp_path / "rap.go"
    path = overlay.write_overlay(tree, "build", rap_go)
    data = json.loads(path.read_text())
    assert set(data) == {"Replace"}
    assert data["Replace"][str(tree.userspace_dir / "rap.go")] == str(rap_go)

def test_missing_rap_go_names_the_file_and_the_way_out(tmp_path, monkeypatch):
    monkeypatch.delenv(overlay.RAP_GO_ENV, raising=False)
    monkeypatch.setattr(overlay.paths, "RAP_PATCH_DIR", tmp_path)
    with pytest.raises(BuildError, match=r"rap\.go not found.*RAP_GO_SOURCE"):
        overlay.rap_go_path()

def test_rap_go_source_env_overrides_and_must_be_package_userspace(tmp_path, monkeypatch):
    other = tmp_path / "other.go"
    other.write_text("package main\n")
    monkeypatch.setenv(overlay.RAP_GO_ENV, str(other))
    with pytest.raises(BuildError, match="must be 'package userspace'"):
        overlay.rap_go_path()
    other.write_text("// comment\npackage userspace\n")
    assert overlay.rap_go_path() == other.resolve()

def test_project_test_files_are_rap_patch_go_tests(tmp_path):
    (tmp_path / "rap.go").write_text("package userspace\n")
    (tmp_path / "a_test.go").write_text("package userspace\n")
    (tmp_path / "notes.md").write_text("")
    assert [p.name for p in overlay.project_test_files(tmp_path)] == ["a_test.go"]

def test_overlay_adds_the_patch_files_beside_rap_go(tmp_path):
    pkg = tmp_path / "userspace"
    pkg.mkdir()
    (pkg / "roundrobin.go").write_text("package userspace\n")
    patch = tmp_path / "patch"
    patch.mkdir()
    for name in ("rap.go", "rap_config.go", "rap_monitor.go", "rap_config_test.go"):
        (patch / name).write_text("package userspace\n")
    rap_go = (patch / "rap.go").resolve()
    assert [p.name for p in overlay.added_files(rap_go)] == ["rap_config.go", "rap_monitor.go"]
    got = overlay.overlay_map(pkg, rap_go, extra_files=overlay.added_files(rap_go))
    assert got[str(pkg / "rap_config.go")] == str(patch / "rap_config.go")
    assert str(pkg / "rap_config_test.go") not in got

def test_overlay_refuses_an_added_file_that_would_shadow_upstream(tmp_path):
    pkg = tmp_path / "userspace"
    pkg.mkdir()
    (pkg / "loadbalancer.go").write_text("package userspace\n")
    with pytest.raises(BuildError, match="loadbalancer.go; rename the project's added file"):
        overlay.overlay_map(pkg, tmp_path / "rap.go", extra_files=[tmp_path / "loadbalancer.go"])


def test_patch_map_is_the_whole_patch(tmp_path):
    # What the local cluster's -nofile variants overlay too: not rap.go alone.
    pkg = tmp_path / "userspace"
    pkg.mkdir()
    patch = tmp_path / "patch"
    patch.mkdir()
    for name in ("rap.go", "rap_decide.go", "rap_decide_test.go"):
        (patch / name).write_text("package userspace\n")
    rap_go = (patch / "rap.go").resolve()
    got = overlay.patch_map(pkg, rap_go)
    assert got == {str(pkg / "roundrobin.go"): "", str(pkg / "rap.go"): str(rap_go),
                   str(pkg / "rap_decide.go"): str(patch / "rap_decide.go")}


def test_patch_proxysocket_replaces_upstreams_and_no_other_name_may(tmp_path):
    pkg = tmp_path / "userspace"
    pkg.mkdir()
    for name in ("roundrobin.go", "proxysocket.go", "proxier.go"):
        (pkg / name).write_text("package userspace\n")
    patch = tmp_path / "patch"
    patch.mkdir()
    for name in ("rap.go", "proxysocket.go"):
        (patch / name).write_text("package userspace\n")
    rap_go = (patch / "rap.go").resolve()
    got = overlay.patch_map(pkg, rap_go)
    assert got[str(pkg / "proxysocket.go")] == str(patch / "proxysocket.go")
    (patch / "proxier.go").write_text("package userspace\n")
    with pytest.raises(BuildError, match="proxier.go; rename the project's added file"):
        overlay.patch_map(pkg, rap_go)

def test_a_test_file_may_not_replace_proxysocket_go(tmp_path):
    # Only the patch's own proxysocket.go may replace upstream's; a test file never does.
    pkg = tmp_path / "userspace"
    pkg.mkdir()
    (pkg / "proxysocket.go").write_text("package userspace\n")
    with pytest.raises(BuildError, match="rename the project's test file"):
        overlay.overlay_map(pkg, tmp_path / "rap.go", [tmp_path / "proxysocket.go"])

def test_the_repos_patch_replaces_exactly_roundrobin_and_proxysocket(tmp_path):
    # The real rap_patch/ against a stand-in of upstream's package listing.
    pkg = tmp_path / "userspace"
    pkg.mkdir()
    upstream = ("loadbalancer.go", "port_allocator.go", "proxier.go", "proxysocket.go",
                "rlimit.go", "rlimit_windows.go", "roundrobin.go", "port_allocator_test.go",
                "proxier_test.go", "roundrobin_test.go")
    for name in upstream:
        (pkg / name).write_text("package userspace\n")
    rap_go = overlay.paths.RAP_PATCH_DIR / "rap.go"
    got = overlay.patch_map(pkg, rap_go.resolve(), overlay.project_test_files())
    replaced = sorted(Path(k).name for k in got if Path(k).name in upstream)
    assert replaced == ["proxysocket.go", "roundrobin.go"]
    assert got[str(pkg / "roundrobin.go")] == ""
