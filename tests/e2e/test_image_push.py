"""The RAP kube-proxy image built without a Docker engine, pushed to the project's registry, pulled and run by containerd.

Root only, slow: builds (or reuses) the registry, the Debian base and the
RAP kube-proxy, starts the registry on 127.0.0.1 and a containerd of the
test's own (root, state, socket in the test's folder), pulls the image with
``ctr`` over plain HTTP, and runs ``kube-proxy --version`` and the iptables
wrapper inside it. Nothing is left behind: no registry, containerd or shim
process, no mount, no snapshot.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.leftovers import processes_naming, mounts_naming

pytestmark = pytest.mark.slow

INSTALL_HINT = "./scripts/install.sh installs containerd (with ctr), runc and debootstrap"
NAMESPACE = "rap-image-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def root(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("containerd and debootstrap need root (run as root; CI does)")
    for tool in ("containerd", "ctr", "runc", "debootstrap"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: {INSTALL_HINT}")
    yield tmp_path
    for point in sorted(mounts_naming(str(tmp_path)), key=len, reverse=True):  # a failed test leaves none either
        subprocess.run(["umount", "-l", point.split()[1]], capture_output=True)
    for line in processes_naming(str(tmp_path)):
        os.kill(int(line.split()[0]), 9)


class Containerd:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.sock = folder / "c.sock"
        (folder / "config.toml").write_text(
            f'version = 2\n[plugins."io.containerd.internal.v1.opt"]\n  path = "{folder / "opt"}"\n'
            f'[plugins."io.containerd.grpc.v1.cri".cni]\n  bin_dir = "/usr/lib/cni"\n'
            f'  conf_dir = "{folder / "cni"}"\n')
        self.log = (folder / "containerd.log").open("w")
        self.proc = subprocess.Popen(["containerd", "--config", str(folder / "config.toml"),
                                      "--root", str(folder / "root"), "--state", str(folder / "state"),
                                      "--address", str(self.sock)],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while self.ctr("version", check=False).returncode != 0:
            assert self.proc.poll() is None, (folder / "containerd.log").read_text()
            assert time.monotonic() < deadline, "containerd did not answer in 30 s"
            time.sleep(0.5)

    def ctr(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        out = subprocess.run(["ctr", "--address", str(self.sock), "--namespace", NAMESPACE, *args],
                             capture_output=True, text=True, timeout=timeout)
        if check:
            assert out.returncode == 0, f"ctr {' '.join(args)}: {out.stderr}"
        return out

    def stop(self) -> bool:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
            return True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return False
        finally:
            self.log.close()


def test_image_built_here_is_pushed_pulled_and_runs_kube_proxy(root):
    from rap.build import image
    from rap.build.binaries import build_kube_proxy
    from rap.build.registry import LocalRegistry, build_registry

    registry_bin = build_registry()
    binary = build_kube_proxy()["kube-proxy"]
    reg = LocalRegistry("127.0.0.1", _free_port(), root / "registry", registry_bin)
    containerd = None
    try:
        reg.start()
        ref = f"{reg.address}/rap/kube-proxy:v1.21.14-rap"
        started = time.monotonic()
        image.prepare([ref], push=True).package(ref, binary, push=True)
        print(f"built and pushed {ref} in {time.monotonic() - started:.1f}s")

        # What the registry holds: our manifest, whose config has kube-proxy as the Entrypoint.
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        manifest = json.load(urllib.request.urlopen(urllib.request.Request(
            f"{reg.url}/v2/rap/kube-proxy/manifests/v1.21.14-rap", headers=accept), timeout=10))
        config = json.load(urllib.request.urlopen(
            f"{reg.url}/v2/rap/kube-proxy/blobs/{manifest['config']['digest']}", timeout=10))
        assert config["config"]["Entrypoint"] == ["/usr/local/bin/kube-proxy"]
        assert len(config["rootfs"]["diff_ids"]) == len(manifest["layers"]) == 3

        containerd = Containerd(root / "containerd")
        containerd.ctr("images", "pull", "--plain-http", ref, timeout=300)
        run = containerd.ctr("run", "--rm", ref, "rap-version", "/usr/local/bin/kube-proxy", "--version")
        assert run.stdout.split() == ["Kubernetes", "v1.21.14-rap"], run.stdout
        # The wrapper picks a backend, switches the alternatives, and runs the real iptables.
        wrapped = containerd.ctr("run", "--rm", ref, "rap-iptables", "/usr/sbin/iptables", "--version")
        assert wrapped.stdout.startswith("iptables v1.8") and "(nf_tables)" in wrapped.stdout, wrapped.stdout
        conntrack = containerd.ctr("run", "--rm", ref, "rap-conntrack", "/usr/sbin/conntrack", "--version")
        assert conntrack.stdout.startswith("conntrack v1.4"), conntrack.stdout
        # ipset prints its version, then asks the kernel for its protocol, which this container may not.
        ipset = containerd.ctr("run", "--rm", ref, "rap-ipset", "/usr/sbin/ipset", "--version", check=False)
        assert ipset.stdout.startswith("ipset v7"), ipset.stdout + ipset.stderr

        containerd.ctr("images", "rm", "--sync", ref)
        assert containerd.ctr("containers", "ls", "-q").stdout.split() == []
        assert containerd.ctr("snapshots", "ls").stdout.splitlines()[1:] == []
    finally:
        stopped = containerd.stop() if containerd else True
        reg.stop()
    assert stopped, "containerd did not stop within 30 s of SIGTERM (it was killed)"
    assert reg.proc is None and processes_naming(str(root)) == []
    assert mounts_naming(str(root)) == []
