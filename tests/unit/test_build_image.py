"""Fast tests of rap.build.image: NAME:TAG, the Docker engine, the binary it packages.

Nothing here runs go build or downloads anything.
"""

from __future__ import annotations

import pytest

from rap.build import image


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
