"""tests/conftest.py: under CI=true a skip fails; elsewhere it stays a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ci_forbids_skips

REPO = Path(__file__).resolve().parents[2]

SAMPLE = '''
import os
import pytest

def test_needs_root():
    if os.environ.get("FAKE_ROOT") != "yes":
        pytest.skip("needs root (network namespaces)")

@pytest.mark.skipif(True, reason="needs iptables")
def test_marked():
    pass

@pytest.mark.skip_ok_in_ci("no CI machine has a GPU")
def test_allowed():
    pytest.skip("no GPU")

@pytest.mark.xfail(reason="known bug", strict=True)
def test_xfail():
    assert False

def test_passes():
    pass
'''

COLLECT_SKIP = 'import pytest\npytest.importorskip("no_such_module_rap_test")\n\ndef test_x():\n    pass\n'


def _run(tmp_path: Path, ci: str | None, source: str = SAMPLE) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(source)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(REPO)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
                           "-c", str(tmp_path / "pytest.ini"), "-rA", str(tmp_path / "test_sample.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_without_ci_a_skip_is_a_skip(tmp_path):
    proc = _run(tmp_path, None)
    assert proc.returncode == 0, proc.stdout
    assert "1 passed, 3 skipped, 1 xfailed" in proc.stdout


def test_under_ci_true_a_skip_fails_and_names_its_reason(tmp_path):
    proc = _run(tmp_path, "true")
    assert proc.returncode == 1, proc.stdout
    assert "needs root (network namespaces)); on CI that is a failure" in proc.stdout
    assert "needs iptables" in proc.stdout
    # the skip in the test fails, the skipif mark (a skip in setup) errors; the allowed skip,
    # the xfail and the pass are untouched
    assert "1 failed, 1 passed, 1 skipped, 1 xfailed, 1 error" in proc.stdout


def test_under_ci_true_a_skip_at_collection_fails(tmp_path):
    proc = _run(tmp_path, "true", COLLECT_SKIP)
    assert proc.returncode != 0, proc.stdout
    assert "CI=true: collecting" in proc.stdout and "no_such_module_rap_test" in proc.stdout


@pytest.mark.parametrize("value, forbids", [("true", True), ("TRUE", True), ("1", True), ("", False),
                                            ("false", False), ("0", False)])
def test_ci_values(value, forbids):
    assert ci_forbids_skips({"CI": value}) is forbids
    assert ci_forbids_skips({}) is False
