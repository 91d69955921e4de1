"""The real node binaries: kubelet, kube-controller-manager, kube-scheduler and pause from the pinned tree.

Slow: with an empty Go build cache the three Go builds took about 6 minutes
on 2 cores (kubelet 5, kube-controller-manager 1 more, kube-scheduler seconds);
after the kube-proxy and kube-apiserver builds, about a minute; with the
binaries built and stamped, a second.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from rap.build import binaries, pause, source, toolchain

pytestmark = pytest.mark.slow

PT_INTERP = 3  # the program header naming a dynamic loader


@pytest.fixture(scope="module")
def built():
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists():
        pytest.fail("go is not installed: " + toolchain.GO_INSTALL_HINT)
    return {**binaries.build_node_binaries(), "pause": pause.build_pause()}


@pytest.mark.parametrize("name", list(binaries.NODE_BINARIES))
def test_each_node_binary_names_the_pinned_release(built, name):
    assert binaries.check_version(built[name], source.K8S_VERSION) == f"Kubernetes {source.K8S_VERSION}"


def test_pause_names_its_own_version_and_the_release(built):
    # pause knows only -v: any other argument, --version too, makes it wait for a signal.
    out = subprocess.run([str(built["pause"]), "-v"], capture_output=True, text=True, timeout=10)
    assert (out.returncode, out.stdout) == (0, f"pause.c v3.5-{source.K8S_VERSION}\n")


def _has_interpreter(path: Path) -> bool:
    """Whether a 64-bit little-endian ELF file asks for a dynamic loader (a PT_INTERP header)."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, f"{path} is not a 64-bit LE ELF file"
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return any(struct.unpack_from("<I", data, phoff + i * phentsize)[0] == PT_INTERP for i in range(phnum))


def test_pause_is_static(built):
    # The sandbox image holds pause alone, without a libc to load.
    assert not _has_interpreter(built["pause"])


def test_the_elf_check_sees_a_dynamic_binary():
    # So that test_pause_is_static can fail: gcc itself is linked against libc.
    assert _has_interpreter(Path(shutil.which("gcc")).resolve())


def test_a_second_build_is_skipped_by_the_stamps(built, capsys):
    again = {**binaries.build_node_binaries(), "pause": pause.build_pause()}
    assert again == built
    said = capsys.readouterr().out
    for name in built:
        assert f"{name}: up to date" in said
