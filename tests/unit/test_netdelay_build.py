"""Fast tests of rap.localcluster.netdelay.build: the Go environment, the source digest, the cached build."""

from __future__ import annotations

import pytest

from rap.localcluster import netdelay as nd
from rap.localcluster.netdelay import build as nd_build


def test_go_env_uses_project_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RAP_CACHE", str(tmp_path))
    env = nd.go_env()
    assert env["GOMODCACHE"] == str(tmp_path / "go" / "mod")
    assert env["GOCACHE"] == str(tmp_path / "go" / "build")
    assert nd.binary_path() == tmp_path / "bin" / "netdelay"


def test_source_digest_follows_sources_not_tests(tmp_path):
    for name in ("go.mod", "go.sum", "main.go", "main_test.go"):
        (tmp_path / name).write_text(name)
    first = nd.source_digest(tmp_path)
    (tmp_path / "main_test.go").write_text("changed")
    assert nd.source_digest(tmp_path) == first
    (tmp_path / "main.go").write_text("changed")
    assert nd.source_digest(tmp_path) != first


def test_real_sources_are_there():
    names = {p.name for p in nd.SOURCE_DIR.iterdir()}
    assert {"go.mod", "go.sum", "main.go"} <= names


@pytest.mark.slow
def test_go_tests_and_cached_build():
    """`go test` of netdelay (rule parser, FIFO ring), then a build that a second call reuses."""
    import shutil
    import subprocess
    import time

    if shutil.which("go") is None and not __import__("os").path.exists("/usr/local/go/bin/go"):
        pytest.skip("Go toolchain not installed (./scripts/install.sh installs it)")
    proc = subprocess.run([nd_build._find_go(), "test", "./..."], cwd=nd.SOURCE_DIR, env=nd.go_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = nd.build_netdelay()
    mtime = first.stat().st_mtime_ns
    t0 = time.monotonic()
    assert nd.build_netdelay() == first and first.stat().st_mtime_ns == mtime
    assert time.monotonic() - t0 < 5
    out = subprocess.run([str(first), "--rule", "queue=1"], capture_output=True, text=True)
    assert out.returncode == 2 and "both queue and delay are required" in out.stderr


def test_missing_go_is_a_netdelay_error(monkeypatch):
    from rap.build import BuildError

    def no_go():
        raise BuildError("the Go toolchain ('go') was not found on PATH")

    monkeypatch.setattr(nd_build, "find_go", no_go)
    with pytest.raises(nd.NetDelayError, match=r"^netdelay: the Go toolchain"):
        nd.build_netdelay()
