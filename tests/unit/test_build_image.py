"""Fast tests of rap.build.image: NAME:TAG, the engine or the daemonless path, the files the image adds.

Nothing here runs go build or downloads anything.
"""

from __future__ import annotations

import pytest

import re

from rap import paths
from rap.build import image, oci


def test_image_ref_needs_name_and_tag():
    assert image.parse_ref("localhost:5000/rap/kube-proxy:v1") == ("localhost:5000/rap/kube-proxy", "v1")
    for bad in ("kube-proxy", "localhost:5000/kube-proxy", ":tag", "name:"):
        with pytest.raises(image.ImageError, match="NAME:TAG"):
            image.parse_ref(bad)

def test_no_docker_engine_says_so_and_names_docker_host(monkeypatch, tmp_path):
    pytest.importorskip("docker")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    with pytest.raises(image.ImageError, match=r"no Docker engine is reachable.*DOCKER_HOST"):
        image.docker_client()

def test_image_needs_the_built_binary(tmp_path):
    with pytest.raises(image.ImageError, match="build kube-proxy first"):
        image.build_image("rap/kube-proxy:v1", binary=tmp_path / "kube-proxy")


def test_daemonless_image_needs_the_built_binary(tmp_path):
    with pytest.raises(image.ImageError, match="build kube-proxy first"):
        image.build_daemonless("127.0.0.1:5000/rap/kube-proxy:v1", binary=tmp_path / "kube-proxy")


def test_no_docker_host_and_no_socket_is_the_daemonless_path(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(image, "DEFAULT_SOCKET", tmp_path / "docker.sock")
    assert image.find_engine() is None


def test_push_without_engine_checks_the_registry_before_any_build(monkeypatch, tmp_path):
    import socket

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(image, "DEFAULT_SOCKET", tmp_path / "docker.sock")
    monkeypatch.setattr(image, "base_layer_path", lambda: tmp_path / "base.tar.gz")
    (tmp_path / "base.tar.gz").write_bytes(b"")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        ref = f"127.0.0.1:{sock.getsockname()[1]}/rap/kube-proxy:v1"
        with pytest.raises(image.BuildError, match="no registry answers"):
            image.prepare([ref], push=True)
    assert image.prepare([ref], push=False).engine is None  # no push: nothing to reach


def test_the_image_adds_what_the_dockerfile_adds():
    dockerfile = (paths.BUILD_DIR / "Dockerfile").read_text()
    loop = re.search(r"for cmd in ([^;]+);", dockerfile).group(1).split()
    assert tuple(loop) == image.WRAPPED_COMMANDS
    assert "COPY iptables-wrapper /usr/sbin/iptables-wrapper" in dockerfile
    assert 'ENTRYPOINT ["/usr/local/bin/kube-proxy"]' in dockerfile and image.ENTRYPOINT == ["/usr/local/bin/kube-proxy"]
    entries = {e.path: e for e in image.wrapper_entries()}
    assert entries["usr/sbin/iptables-wrapper"].data == image.WRAPPER.read_bytes()
    assert {p for p, e in entries.items() if e.link == "iptables-wrapper"} == {f"usr/sbin/{c}" for c in loop}


def test_proxy_image_layers_base_wrapper_binary(tmp_path):
    base = oci.layer_from_tar(oci.entries_tar([oci.Entry("etc")]), "base")
    (tmp_path / "base.tar.gz").write_bytes(base.blob.data)
    (tmp_path / "kube-proxy").write_bytes(b"\x7fELF")
    built = image.proxy_image(tmp_path / "kube-proxy", tmp_path / "base.tar.gz")
    assert built.layers[0].diff_id == base.diff_id and len(built.layers) == 3
    import gzip
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(built.layers[2].blob.data))) as t:
        member = t.getmember("usr/local/bin/kube-proxy")
        assert member.mode == 0o755 and t.extractfile(member).read() == b"\x7fELF"
