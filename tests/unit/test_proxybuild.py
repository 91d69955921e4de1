"""Fast tests of the kube-proxy build recipe: go.mod, overlay, versions, errors.

Nothing here runs go build or downloads anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rap import image, proxybuild
from rap.proxybuild import BuildError

# A trimmed stand-in for Kubernetes 1.21's go.mod: its shape, not its content.
K8S_GO_MOD = """\
module k8s.io/kubernetes

go 1.16

require (
\tgithub.com/modern-go/reflect2 v1.0.1
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
)

replace (
\tgithub.com/google/go-cmp => github.com/google/go-cmp v0.5.5 // pinned
\tgithub.com/modern-go/reflect2 => github.com/modern-go/reflect2 v1.0.1
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/component-base => ./staging/src/k8s.io/component-base
)

replace k8s.io/single => ./staging/src/k8s.io/single
"""


def replaces(go_mod: str) -> dict[str, str]:
    return dict(proxybuild.parse_replace_block(go_mod))


def test_staging_version_follows_release():
    assert proxybuild.staging_version("v1.21.14") == "v0.21.14"
    assert proxybuild.staging_version(proxybuild.K8S_VERSION) == "v0.21.14"
    with pytest.raises(BuildError, match="not a Kubernetes release"):
        proxybuild.staging_version("1.21")


def test_parse_replace_block_reads_block_and_single_line_forms():
    got = replaces(K8S_GO_MOD)
    assert got["k8s.io/api"] == "./staging/src/k8s.io/api"
    assert got["k8s.io/single"] == "./staging/src/k8s.io/single"
    assert got["github.com/google/go-cmp"] == "github.com/google/go-cmp v0.5.5"  # comment dropped
    assert len(got) == 6


def test_go_mod_requires_pinned_kubernetes_and_replaces_every_staging_module():
    text = proxybuild.render_go_mod(K8S_GO_MOD)
    assert "require k8s.io/kubernetes v1.21.14" in text
    got = replaces(text)
    for mod in ("k8s.io/api", "k8s.io/client-go", "k8s.io/component-base", "k8s.io/single"):
        assert got[mod] == f"{mod} v0.21.14"
    assert "./staging" not in text
    # Third-party pins are kept verbatim.
    assert got["github.com/google/go-cmp"] == "github.com/google/go-cmp v0.5.5"


def test_go_mod_bumps_reflect2_for_new_go_with_a_reason():
    text = proxybuild.render_go_mod(K8S_GO_MOD)
    assert replaces(text)["github.com/modern-go/reflect2"] == "github.com/modern-go/reflect2 v1.0.2"
    assert "Go >= 1.18" in text  # the comment says why


def test_go_mod_adds_fixes_that_kubernetes_did_not_pin():
    text = proxybuild.render_go_mod("module k8s.io/kubernetes\n")
    assert replaces(text)["github.com/modern-go/reflect2"].endswith("v1.0.2")


def test_go_mod_with_checkout_points_at_its_tree_and_staging(tmp_path):
    text = proxybuild.render_go_mod(K8S_GO_MOD, k8s_src=tmp_path)
    got = replaces(text)
    assert got["k8s.io/kubernetes"] == str(tmp_path)
    assert got["k8s.io/api"] == str(tmp_path / "staging/src/k8s.io/api")


def test_overlay_removes_roundrobin_and_adds_rap_and_tests(tmp_path):
    pkg = tmp_path / "pkg/proxy/userspace"
    pkg.mkdir(parents=True)
    (pkg / "roundrobin.go").write_text("package userspace\n")
    rap_go = tmp_path / "rap.go"
    test_go = tmp_path / "vectors_test.go"
    got = proxybuild.overlay_map(pkg, rap_go, [test_go])
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
        proxybuild.overlay_map(pkg, tmp_path / "rap.go", [tmp_path / "roundrobin_test.go"])


def test_write_overlay_is_go_overlay_json(tmp_path):
    tree = proxybuild.Tree(src=tmp_path / "src", build_dir=tmp_path, version="v1.21.14")
    rap_go = tmp_path / "rap.go"
    path = proxybuild.write_overlay(tree, "build", rap_go)
    data = json.loads(path.read_text())
    assert set(data) == {"Replace"}
    assert data["Replace"][str(tree.userspace_dir / "rap.go")] == str(rap_go)


def test_version_ldflags_name_both_version_packages():
    flags = proxybuild.version_ldflags("v1.21.14-rap")
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X '{pkg}.gitVersion=v1.21.14-rap'" in flags
        assert f"-X '{pkg}.gitMajor=1'" in flags
        assert f"-X '{pkg}.gitMinor=21'" in flags


def test_missing_go_names_how_to_install(monkeypatch):
    monkeypatch.setattr(proxybuild.shutil, "which", lambda name: None)
    monkeypatch.setattr(proxybuild, "Path", lambda p: Path("/nonexistent/go"))
    with pytest.raises(BuildError, match=r"'go'\) was not found.*go\.dev/dl.*golang-go"):
        proxybuild.find_go()


def test_missing_rap_go_names_the_file_and_the_way_out(tmp_path, monkeypatch):
    monkeypatch.delenv(proxybuild.RAP_GO_ENV, raising=False)
    monkeypatch.setattr(proxybuild.paths, "RAP_PATCH_DIR", tmp_path)
    with pytest.raises(BuildError, match=r"rap\.go not found.*RAP_GO_SOURCE"):
        proxybuild.rap_go_path()


def test_rap_go_source_env_overrides_and_must_be_package_userspace(tmp_path, monkeypatch):
    other = tmp_path / "other.go"
    other.write_text("package main\n")
    monkeypatch.setenv(proxybuild.RAP_GO_ENV, str(other))
    with pytest.raises(BuildError, match="must be 'package userspace'"):
        proxybuild.rap_go_path()
    other.write_text("// comment\npackage userspace\n")
    assert proxybuild.rap_go_path() == other.resolve()


def test_bad_k8s_src_paths_are_named(tmp_path):
    with pytest.raises(BuildError, match="no such directory"):
        proxybuild.check_k8s_src(tmp_path / "nope")
    with pytest.raises(BuildError, match="not a Kubernetes source tree"):
        proxybuild.check_k8s_src(tmp_path)
    (tmp_path / "go.mod").write_text("module k8s.io/kubernetes\n\ngo 1.16\n")
    with pytest.raises(BuildError, match="release-1.21 checkout"):
        proxybuild.check_k8s_src(tmp_path)
    (tmp_path / "pkg/proxy/userspace").mkdir(parents=True)
    (tmp_path / "pkg/proxy/userspace/roundrobin.go").write_text("package userspace\n")
    with pytest.raises(BuildError, match="staging"):
        proxybuild.check_k8s_src(tmp_path)
    (tmp_path / "staging/src/k8s.io").mkdir(parents=True)
    assert proxybuild.check_k8s_src(tmp_path) == tmp_path.resolve()


def test_project_test_files_are_rap_patch_go_tests(tmp_path):
    (tmp_path / "rap.go").write_text("package userspace\n")
    (tmp_path / "a_test.go").write_text("package userspace\n")
    (tmp_path / "notes.md").write_text("")
    assert [p.name for p in proxybuild.project_test_files(tmp_path)] == ["a_test.go"]


def test_test_proxy_is_not_collected_by_pytest():
    assert proxybuild.test_proxy.__test__ is False


def test_image_ref_needs_name_and_tag():
    assert image.parse_ref("localhost:5000/rap/kube-proxy:v1") == ("localhost:5000/rap/kube-proxy", "v1")
    for bad in ("kube-proxy", "localhost:5000/kube-proxy", ":tag", "name:"):
        with pytest.raises(image.ImageError, match="NAME:TAG"):
            image.parse_ref(bad)


def test_no_docker_engine_says_so_and_names_docker_host(monkeypatch, tmp_path):
    pytest.importorskip("docker")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    with pytest.raises(image.ImageError, match=r"no Docker engine is reachable.*DOCKER_HOST"):
        image.docker_client()


def test_image_needs_the_built_binary(tmp_path):
    with pytest.raises(image.ImageError, match="build kube-proxy first"):
        image.build_image("rap/kube-proxy:v1", binary=tmp_path / "kube-proxy")


def test_openapi_packages_follow_the_makefile_rules(tmp_path):
    def go(rel, text):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    tagged = "// +k8s:openapi-gen=true\npackage v1\n"
    go("apis/v1/doc.go", tagged)
    go("apis/v2/types.go", "package v2\n\n// +k8s:openapi-gen=false\n")  # tag in column 0 of a comment
    go("apis/untagged/x.go", "package untagged\n")
    go("apis/mention/x.go", "package mention // talks about +k8s:openapi-gen= without a tag line\n")
    go("_output/v1/doc.go", tagged)
    go(".hidden/v1/doc.go", tagged)
    go("vendor/k8s.io/x/doc.go", tagged)
    go("staging/src/k8s.io/api/doc.go", tagged)
    got = proxybuild.openapi_packages(tmp_path, "k8s.io/demo")
    assert sorted(got) == ["k8s.io/demo/apis/v1", "k8s.io/demo/apis/v2"]


def test_go_json_stream_reads_concatenated_objects():
    assert proxybuild._json_stream('{\n "Path": "a"\n}\n{"Path": "b"}\n') == [{"Path": "a"}, {"Path": "b"}]


def test_overlay_adds_the_patch_files_beside_rap_go(tmp_path):
    pkg = tmp_path / "userspace"
    pkg.mkdir()
    (pkg / "roundrobin.go").write_text("package userspace\n")
    patch = tmp_path / "patch"
    patch.mkdir()
    for name in ("rap.go", "rap_config.go", "rap_monitor.go", "rap_config_test.go"):
        (patch / name).write_text("package userspace\n")
    rap_go = (patch / "rap.go").resolve()
    assert [p.name for p in proxybuild.added_files(rap_go)] == ["rap_config.go", "rap_monitor.go"]
    got = proxybuild.overlay_map(pkg, rap_go, extra_files=proxybuild.added_files(rap_go))
    assert got[str(pkg / "rap_config.go")] == str(patch / "rap_config.go")
    assert str(pkg / "rap_config_test.go") not in got


def test_overlay_refuses_an_added_file_that_would_shadow_upstream(tmp_path):
    pkg = tmp_path / "userspace"
    pkg.mkdir()
    (pkg / "loadbalancer.go").write_text("package userspace\n")
    with pytest.raises(BuildError, match="loadbalancer.go; rename the project's added file"):
        proxybuild.overlay_map(pkg, tmp_path / "rap.go", extra_files=[tmp_path / "loadbalancer.go"])
