"""Fast tests of rap.build.binaries: the version flags of every binary, what is built, the stamp.

Nothing here runs go build or downloads anything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

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


def _fake_tree(tmp_path, monkeypatch):
    from rap.build.source import Tree

    monkeypatch.setenv("RAP_BUILD_OUT", str(tmp_path / "out"))
    (tmp_path / "go.mod").write_text("module rap.local/kube-proxy-build\n")
    monkeypatch.setattr(binaries, "go_version", lambda env: "go1.26.0")
    return Tree(src=tmp_path / "src", build_dir=tmp_path, version="v1.21.14")


def test_node_binaries_are_the_three_stock_commands_at_the_tree_version(tmp_path, monkeypatch):
    tree = _fake_tree(tmp_path, monkeypatch)
    monkeypatch.setattr(binaries, "prepare_tree", lambda k8s_src=None: tree)
    calls = []
    monkeypatch.setattr(binaries, "build_binary",
                        lambda t, pkg, name, version, overlay, force: calls.append((pkg, name, version, overlay))
                        or tmp_path / name)
    built = binaries.build_node_binaries()
    assert calls == [("k8s.io/kubernetes/cmd/kubelet", "kubelet", "v1.21.14", None),
                     ("k8s.io/kubernetes/cmd/kube-controller-manager", "kube-controller-manager", "v1.21.14", None),
                     ("k8s.io/kubernetes/cmd/kube-scheduler", "kube-scheduler", "v1.21.14", None)]
    assert list(built) == ["kubelet", "kube-controller-manager", "kube-scheduler"]


def test_build_binary_is_skipped_by_its_stamp_and_a_failed_build_is_not_trusted(tmp_path, monkeypatch, capsys):
    from rap.build import BuildError

    tree = _fake_tree(tmp_path, monkeypatch)
    runs = []

    def go(args, cwd, env, what, capture=False):
        runs.append(args)
        (Path(args[args.index("-o") + 1])).write_text("elf")
        if len(runs) == 2:
            raise BuildError(f"{what} failed (exit 1)")
        return ""

    monkeypatch.setattr(binaries, "run_go", go)
    out = binaries.build_binary(tree, "k8s.io/kubernetes/cmd/kubelet", "kubelet", "v1.21.14")
    assert out.read_text() == "elf" and len(runs) == 1
    binaries.build_binary(tree, "k8s.io/kubernetes/cmd/kubelet", "kubelet", "v1.21.14")
    assert len(runs) == 1 and "kubelet: up to date" in capsys.readouterr().out
    with pytest.raises(BuildError, match="failed"):
        binaries.build_binary(tree, "k8s.io/kubernetes/cmd/kubelet", "kubelet", "v1.21.14", force=True)
    assert not (tmp_path / "out" / "kubelet.tmp").exists()
    binaries.build_binary(tree, "k8s.io/kubernetes/cmd/kubelet", "kubelet", "v1.21.14")
    assert len(runs) == 3  # the failed build dropped the stamp, so this one builds again
