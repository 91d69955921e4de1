"""Debian's containerd run as the local cluster's real nodes will run it: its own root, state, socket and config.

Root only, slow (containerd takes a few seconds to load its plugins). Nothing
is left behind: no process, no mount, nothing outside the test's folder
(the config points the CRI plugin's CNI folder and the opt plugin there too,
since by default they write to /etc/cni and /opt/containerd).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.leftovers import processes_naming

pytestmark = pytest.mark.slow

INSTALL_HINT = "./scripts/install.sh installs Debian's containerd (with ctr), runc and containernetworking-plugins"


def _config(root: Path) -> str:
    return (f'version = 2\n'
            f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{root / "opt"}"\n'
            f'[plugins."io.containerd.grpc.v1.cri".cni]\n'
            f'  bin_dir = "/usr/lib/cni"\n  conf_dir = "{root / "cni"}"\n')


def _ctr_version(sock: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["ctr", "--address", str(sock), "version"], capture_output=True, text=True, timeout=10)


def _sections(text: str) -> dict[str, dict[str, str]]:
    """``ctr version``'s output as {"Client": {"Version": ...}, "Server": {...}}."""
    found: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            current = found.setdefault(line[:-1], {})
        elif current is not None and ":" in line:
            key, _, value = line.strip().partition(":")
            current[key] = value.strip()
    return found


def _stop(proc: subprocess.Popen, timeout: float = 30) -> bool:
    """SIGTERM, as a node's teardown will send it; True if that sufficed, else SIGKILL and False."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


@pytest.fixture
def root(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("containerd needs root (run as root; CI does)")
    for tool in ("containerd", "ctr", "runc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: {INSTALL_HINT}")
    yield tmp_path
    for line in processes_naming(str(tmp_path)):  # a failed test must not leave one either
        os.kill(int(line.split()[0]), 9)


def test_own_containerd_answers_ctr_and_stops_leaving_nothing(root):
    sock = root / "containerd.sock"
    assert len(str(sock) + ".ttrpc") < 108, "unix socket path too long"  # sun_path's limit
    (root / "config.toml").write_text(_config(root))
    etc_cni_before = Path("/etc/cni").exists()
    log = (root / "containerd.log").open("w")
    proc = subprocess.Popen(["containerd", "--config", str(root / "config.toml"), "--root", str(root / "root"),
                             "--state", str(root / "state"), "--address", str(sock)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while (answer := _ctr_version(sock)).returncode != 0:
            assert proc.poll() is None, f"containerd exited {proc.returncode}:\n{(root / 'containerd.log').read_text()}"
            assert time.monotonic() < deadline, f"no answer on {sock} in 30 s: {answer.stderr}"
            time.sleep(0.5)
        parts = _sections(answer.stdout)
        assert set(parts) == {"Client", "Server"}, answer.stdout
        assert parts["Client"]["Version"] and parts["Server"]["Version"] == parts["Client"]["Version"], answer.stdout
        assert parts["Server"].get("UUID"), answer.stdout
    finally:
        stopped_by_term = _stop(proc)
        log.close()
    assert stopped_by_term, "containerd did not stop within 30 s of SIGTERM (it was killed)"
    assert proc.returncode == 0, (root / "containerd.log").read_text()
    assert processes_naming(str(root)) == []
    assert [m for m in Path("/proc/self/mounts").read_text().splitlines() if str(root) in m] == []
    if not etc_cni_before:  # the CRI plugin made its CNI folder in ours, not in /etc
        assert not Path("/etc/cni").exists() and (root / "cni").is_dir()
    assert (root / "root").is_dir() and (root / "state").is_dir()
    assert not sock.exists()  # containerd removed its socket: nothing will answer there
