"""Fast tests of rap.build.binaries: the version flags of every binary.

Nothing here runs go build or downloads anything.
"""

from __future__ import annotations

from rap.build import binaries


def test_version_ldflags_name_both_version_packages():
    flags = binaries.version_ldflags("v1.21.14-rap")
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X '{pkg}.gitVersion=v1.21.14-rap'" in flags
        assert f"-X '{pkg}.gitMajor=1'" in flags
        assert f"-X '{pkg}.gitMinor=21'" in flags


def test_stock_kube_proxy_is_built_without_any_overlay(tmp_path, monkeypatch):
    # The stock build is the baseline: neither roundrobin.go nor proxysocket.go is swapped.
    from rap.build.source import Tree

    tree = Tree(src=tmp_path / "src", build_dir=tmp_path, version="v1.21.14")
    monkeypatch.setattr(binaries, "prepare_tree", lambda k8s_src=None: tree)
    calls = []
    monkeypatch.setattr(binaries, "build_binary",
                        lambda t, pkg, name, version, overlay, force: calls.append((name, overlay))
                        or tmp_path / name)
    binaries.build_kube_proxy(rap=False, stock=True)
    assert calls == [("kube-proxy-stock", None)]
