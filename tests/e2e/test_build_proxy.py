"""The real kube-proxy build: fetch v1.21.14, swap rap.go in, build, --version, upstream tests.

Slow: a cold cache downloads the Kubernetes module and its dependencies and
builds them (minutes on 2 cores); a warm cache (~/.cache/rap, or $RAP_CACHE)
makes it quick. $RAP_GO_SOURCE can point at another rap.go to try the pipeline
(rap_patch/*_test.go are then left out: they test rap_patch/rap.go's internals).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rap import paths
from rap.build import BuildError, binaries, gotest, overlay, source, toolchain

pytestmark = pytest.mark.slow


def _rap_go() -> Path:
    source = os.environ.get(overlay.RAP_GO_ENV)
    path = Path(source) if source else paths.RAP_PATCH_DIR / "rap.go"
    if not path.is_file():
        pytest.skip(f"{path} does not exist yet: nothing to swap in (set "
                    f"{overlay.RAP_GO_ENV} to try the pipeline with another file)")
    return path


@pytest.fixture(scope="module")
def built():
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists():
        pytest.fail("go is not installed: " + toolchain.GO_INSTALL_HINT)
    return binaries.build_kube_proxy(rap=True, stock=True, rap_go=_rap_go())


def test_rap_kube_proxy_names_rap_in_its_version(built):
    text = binaries.check_version(built["kube-proxy"], source.K8S_VERSION + binaries.RAP_VERSION_SUFFIX)
    assert text == "Kubernetes v1.21.14-rap"


def test_stock_kube_proxy_is_plain_v1_21_14(built):
    assert binaries.check_version(built["kube-proxy-stock"], "v1.21.14") == "Kubernetes v1.21.14"


def test_rebuild_with_unchanged_inputs_is_skipped(built, capsys):
    again = binaries.build_kube_proxy(rap=True, stock=False, rap_go=_rap_go())
    assert again["kube-proxy"] == built["kube-proxy"]
    assert "up to date" in capsys.readouterr().out


def _project_tests() -> bool:
    return not os.environ.get(overlay.RAP_GO_ENV)


def test_upstream_userspace_tests_pass_with_rap_swapped_in(built):
    gotest.test_proxy(rap_go=_rap_go(), project_tests=_project_tests())


def test_a_failing_go_test_fails_the_run_loudly(built, tmp_path):
    # Also proves that extra test files really land in the package.
    probe = tmp_path / "zz_rap_pipeline_probe_test.go"
    probe.write_text('package userspace\n\nimport "testing"\n\n'
                     'func TestRAPPipelineProbe(t *testing.T) { t.Fatal("probe: must fail") }\n')
    with pytest.raises(BuildError, match="go test -race userspace failed"):
        gotest.test_proxy(rap_go=_rap_go(), extra_test_files=[probe], run="TestRAPPipelineProbe",
                              project_tests=_project_tests())


def test_the_swapped_file_is_what_gets_compiled(built, tmp_path):
    broken = tmp_path / "rap.go"
    broken.write_text("package userspace\n\nfunc broken( {\n")
    with pytest.raises(BuildError, match="go test -race userspace failed"):
        gotest.test_proxy(rap_go=broken, run="TestRAPPipelineProbe", project_tests=False)


def test_kube_apiserver_builds_from_the_same_source():
    # Needs no rap.go: the local cluster's control plane is stock.
    path = binaries.build_apiserver()
    assert binaries.check_version(path, "v1.21.14") == "Kubernetes v1.21.14"
