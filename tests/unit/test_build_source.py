"""Fast tests of rap.build.source: the pinned release, the generated go.mod, a --k8s-src checkout.

Nothing here runs go build or downloads anything.
"""

from __future__ import annotations

import pytest

from rap.build import BuildError, source


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
    return dict(source.parse_replace_block(go_mod))

def test_staging_version_follows_release():
    assert source.staging_version("v1.21.14") == "v0.21.14"
    assert source.staging_version(source.K8S_VERSION) == "v0.21.14"
    with pytest.raises(BuildError, match="not a Kubernetes release"):
        source.staging_version("1.21")

def test_parse_replace_block_reads_block_and_single_line_forms():
    got = replaces(K8S_GO_MOD)
    assert got["k8s.io/api"] == "./staging/src/k8s.io/api"
    assert got["k8s.io/single"] == "./staging/src/k8s.io/single"
    assert got["github.com/google/go-cmp"] == "github.com/google/go-cmp v0.5.5"  # comment dropped
    assert len(got) == 6

def test_go_mod_requires_pinned_kubernetes_and_replaces_every_staging_module():
    text = source.render_go_mod(K8S_GO_MOD)
    assert "require k8s.io/kubernetes v1.21.14" in text
    got = replaces(text)
    for mod in ("k8s.io/api", "k8s.io/client-go", "k8s.io/component-base", "k8s.io/single"):
        assert got[mod] == f"{mod} v0.21.14"
    assert "./staging" not in text
    # Third-party pins are kept verbatim.
    assert got["github.com/google/go-cmp"] == "github.com/google/go-cmp v0.5.5"

def test_go_mod_bumps_reflect2_for_new_go_with_a_reason():
    text = source.render_go_mod(K8S_GO_MOD)
    assert replaces(text)["github.com/modern-go/reflect2"] == "github.com/modern-go/reflect2 v1.0.2"
    assert "Go >= 1.18" in text  # the comment says why

def test_go_mod_adds_fixes_that_kubernetes_did_not_pin():
    text = source.render_go_mod("module k8s.io/kubernetes\n")
    assert replaces(text)["github.com/modern-go/reflect2"].endswith("v1.0.2")

def test_go_mod_with_checkout_points_at_its_tree_and_staging(tmp_path):
    text = source.render_go_mod(K8S_GO_MOD, k8s_src=tmp_path)
    got = replaces(text)
    assert got["k8s.io/kubernetes"] == str(tmp_path)
    assert got["k8s.io/api"] == str(tmp_path / "staging/src/k8s.io/api")

def test_bad_k8s_src_paths_are_named(tmp_path):
    with pytest.raises(BuildError, match="no such directory"):
        source.check_k8s_src(tmp_path / "nope")
    with pytest.raises(BuildError, match="not a Kubernetes source tree"):
        source.check_k8s_src(tmp_path)
    (tmp_path / "go.mod").write_text("module k8s.io/kubernetes\n\ngo 1.16\n")
    with pytest.raises(BuildError, match="release-1.21 checkout"):
        source.check_k8s_src(tmp_path)
    (tmp_path / "pkg/proxy/userspace").mkdir(parents=True)
    (tmp_path / "pkg/proxy/userspace/roundrobin.go").write_text("package userspace\n")
    with pytest.raises(BuildError, match="staging"):
        source.check_k8s_src(tmp_path)
    (tmp_path / "staging/src/k8s.io").mkdir(parents=True)
    assert source.check_k8s_src(tmp_path) == tmp_path.resolve()
