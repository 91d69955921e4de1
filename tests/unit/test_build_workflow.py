"""Fast tests of rap.build.workflow (invoke build-proxy) and python -m rap.build: options, order, errors.

The steps themselves are replaced by recorders: nothing here runs go or Docker.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rap.build import BuildError, BuildOptionError, workflow
from rap.build.__main__ import main
from rap.errors import OptionError, UserError


def test_push_needs_image_and_is_an_option_error():
    with pytest.raises(BuildOptionError, match="--push needs --image NAME:TAG") as info:
        workflow.parse_options(push=True)
    assert isinstance(info.value, OptionError) and isinstance(info.value, BuildError)
    assert info.value.exit_code == 2


def test_bad_image_ref_fails_before_anything_is_built():
    with pytest.raises(BuildOptionError, match="NAME:TAG"):
        workflow.parse_options(image_ref="kube-proxy")
    with pytest.raises(BuildOptionError, match="stock-only"):
        workflow.parse_options(rap=False, image_ref="rap/kube-proxy:v1")


def test_build_error_is_a_user_error_with_exit_1():
    assert issubclass(BuildError, UserError) and BuildError("x").exit_code == 1
    assert isinstance(BuildError("x"), RuntimeError)  # the local cluster's tasks catch RuntimeError


@pytest.fixture
def steps(monkeypatch):
    """Record the steps build_proxy runs, in order, instead of running them."""
    done: list[str] = []

    def kube_proxy(k8s_src, rap, stock, force):
        done.append(f"kube-proxy rap={rap} stock={stock}")
        return {"kube-proxy": Path("/out/kube-proxy"), **({"kube-proxy-stock": Path("/out/stock")} if stock else {})}

    monkeypatch.setattr(workflow, "build_kube_proxy", kube_proxy)
    monkeypatch.setattr(workflow, "build_apiserver", lambda k8s_src, force: done.append("apiserver") or Path("/out/a"))
    monkeypatch.setattr(workflow, "build_node_binaries",
                        lambda k8s_src, force: done.append("node binaries") or {"kubelet": Path("/out/kubelet")})
    monkeypatch.setattr(workflow, "build_pause", lambda k8s_src, force: done.append("pause") or Path("/out/pause"))
    monkeypatch.setattr(workflow, "find_gcc", lambda: done.append("gcc"))
    monkeypatch.setattr(workflow, "test_proxy", lambda k8s_src: done.append("test"))

    class Packager:
        def package(self, ref, binary, push):
            done.append(f"image {ref} {binary} push={push}")

    monkeypatch.setattr(workflow.image, "prepare",
                        lambda refs, push: done.append(f"prepare {refs} push={push}") or Packager())
    return done


def test_build_proxy_checks_the_engine_first_and_packages_last(steps):
    opts = workflow.parse_options(stock=True, apiserver=True, image_ref="reg:5000/rap/kube-proxy:v1", push=True)
    built = workflow.build_proxy(opts)
    assert steps == ["prepare ['reg:5000/rap/kube-proxy:v1'] push=True", "kube-proxy rap=True stock=True",
                     "apiserver", "test", "image reg:5000/rap/kube-proxy:v1 /out/kube-proxy push=True"]
    assert set(built) == {"kube-proxy", "kube-proxy-stock", "kube-apiserver"}


def test_stock_image_builds_stock_and_packages_both(steps):
    opts = workflow.parse_options(test=False, image_ref="reg:5000/rap/kp:v1-rap", stock_image="reg:5000/rap/kp:v1",
                                  push=True)
    assert opts.stock
    workflow.build_proxy(opts)
    assert steps == ["prepare ['reg:5000/rap/kp:v1-rap', 'reg:5000/rap/kp:v1'] push=True",
                     "kube-proxy rap=True stock=True", "image reg:5000/rap/kp:v1-rap /out/kube-proxy push=True",
                     "image reg:5000/rap/kp:v1 /out/stock push=True"]


def test_image_options_are_checked_before_anything_is_built():
    assert workflow.parse_options(rap=False, stock_image="reg:5000/rap/kp:v1", push=True).stock_image
    with pytest.raises(BuildOptionError, match="its own tag"):
        workflow.parse_options(image_ref="reg:5000/kp:v1", stock_image="reg:5000/kp:v1")
    with pytest.raises(BuildOptionError, match="lowercase"):
        workflow.parse_options(stock_image="reg:5000/KP:v1")


def test_build_proxy_no_test_no_image(steps):
    workflow.build_proxy(workflow.parse_options(test=False))
    assert steps == ["kube-proxy rap=True stock=False"]


def test_node_binaries_come_after_the_apiserver_and_before_the_tests(steps):
    built = workflow.build_proxy(workflow.parse_options(apiserver=True, node_binaries=True))
    assert steps == ["gcc", "kube-proxy rap=True stock=False", "apiserver", "node binaries", "pause", "test"]
    assert list(built) == ["kube-proxy", "kube-apiserver", "kubelet", "pause"]


def test_node_binaries_are_off_unless_asked_for(steps):
    workflow.build_proxy(workflow.parse_options(apiserver=True, test=False))
    assert not {"gcc", "node binaries", "pause"} & set(steps)


def test_python_m_rap_build_node_binaries(steps):
    assert main(["--stock-only", "--node-binaries"]) == 0
    assert steps == ["gcc", "kube-proxy rap=False stock=True", "node binaries", "pause"]


def test_no_gcc_fails_before_any_go_build(steps, monkeypatch):
    def no_gcc():
        raise BuildError("gcc was not found on PATH, and pause is C: apt-get install gcc libc6-dev")

    monkeypatch.setattr(workflow, "find_gcc", no_gcc)
    with pytest.raises(BuildError, match="gcc was not found"):
        workflow.build_proxy(workflow.parse_options(node_binaries=True))
    assert steps == []


def _unwrapped(text: str) -> str:
    """Help text as one line; invoke's wrapper may break a line after a hyphen (kube-controller-|manager)."""
    return re.sub(r"(\w-) (\w)", r"\1\2", " ".join(text.split()))


def test_both_entry_points_explain_node_binaries(capsys):
    import subprocess
    import sys

    from rap.build.binaries import NODE_BINARIES
    from rap.build.options import option_help
    from rap.paths import REPO

    text = option_help()["node_binaries"]
    assert all(name in text for name in [*NODE_BINARIES, "pause"])
    # invoke consumes a task's help dict when it first parses it, so ask the real CLI.
    shown = subprocess.run([sys.executable, "-m", "invoke", "--help", "build-proxy"], cwd=REPO,
                           capture_output=True, text=True, timeout=60).stdout
    assert f"--node-binaries {text}" in _unwrapped(shown)
    with pytest.raises(SystemExit):
        main(["--help"])
    assert f"--node-binaries {text}" in _unwrapped(capsys.readouterr().out)


def test_summary_lines_up_long_names():
    text = workflow.summary({"kube-proxy": Path("/k"), "kube-controller-manager": Path("/c")})
    assert text.splitlines() == ["binaries:", "  kube-proxy               /k", "  kube-controller-manager  /c"]


def test_summary_lists_every_binary():
    text = workflow.summary({"kube-proxy": Path("/out/kube-proxy"), "kube-apiserver": Path("/out/a")})
    assert text.splitlines() == ["binaries:", "  kube-proxy       /out/kube-proxy", "  kube-apiserver   /out/a"]


def test_python_m_rap_build_runs_the_same_sequence(steps, capsys):
    assert main(["--stock-only"]) == 0
    assert steps == ["kube-proxy rap=False stock=True"]
    assert "binaries:" in capsys.readouterr().out


def test_python_m_rap_build_error_is_one_line(monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise BuildError("go build failed: see above")

    monkeypatch.setattr(workflow, "build_kube_proxy", fail)
    assert main([]) == 1
    assert capsys.readouterr().err == "error: go build failed: see above\n"


def test_progress_lines_are_build_status_lines_on_the_current_stdout(capsys):
    from rap.build import status

    status.step(1, 4, "source: k8s.io/kubernetes@v1.21.14")
    assert capsys.readouterr().out == "[build] step 1/4 source: k8s.io/kubernetes@v1.21.14\n"
