"""Fast tests of rap.build.oci: references, layer and config digests, the manifest, the layout; and the base's rules."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest

from rap.build import baseroot, oci


def test_ref_names_registry_repository_and_tag():
    ref = oci.parse_ref("127.0.0.1:5000/rap/kube-proxy:v1.21.14-rap")
    assert (ref.registry, ref.repository, ref.tag) == ("127.0.0.1:5000", "rap/kube-proxy", "v1.21.14-rap")
    assert str(ref) == "127.0.0.1:5000/rap/kube-proxy:v1.21.14-rap" and ref.plain_http
    hub = oci.parse_ref("rap/kube-proxy:v1")
    assert hub.registry is None and hub.repository == "rap/kube-proxy"
    assert oci.parse_ref("localhost/kp:v1").registry == "localhost"
    assert oci.parse_ref("10.200.0.1:5000/kp:v1").plain_http
    assert not oci.parse_ref("registry.example/kp:v1").plain_http


@pytest.mark.parametrize("bad, says", [
    ("kube-proxy", "NAME:TAG"), ("localhost:5000/kube-proxy", "NAME:TAG"), ("name:", "NAME:TAG"),
    (":tag", "NAME:TAG"), ("127.0.0.1:5000/Rap/kube-proxy:v1", "lowercase"),
    ("127.0.0.1:5000/rap//kp:v1", "lowercase"), ("rap/kp:-v1", "tag"), ("rap/kp:" + "v" * 129, "tag"),
])
def test_bad_refs_say_what_is_wrong(bad, says):
    with pytest.raises(oci.RefError, match=says):
        oci.parse_ref(bad)


def test_layer_digest_is_of_the_gzip_and_diff_id_of_the_tar():
    tar = oci.entries_tar([oci.Entry("usr/local/bin/kube-proxy", data=b"binary")])
    layer = oci.layer_from_tar(tar, "COPY")
    assert layer.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert layer.blob.digest == "sha256:" + hashlib.sha256(layer.blob.data).hexdigest()
    assert gzip.decompress(layer.blob.data) == tar
    assert oci.layer_from_gzip(layer.blob.data, "COPY") == layer  # the cached base's way gives the same


def test_entries_tar_is_reproducible_sorted_and_has_parents():
    entries = [oci.Entry("usr/sbin/iptables", link="iptables-wrapper"),
               oci.Entry("usr/sbin/iptables-wrapper", 0o755, data=b"#!/bin/sh\n")]
    tar = oci.entries_tar(entries)
    assert tar == oci.entries_tar(list(reversed(entries)))
    assert oci.layer_from_tar(tar, "x").blob.digest == oci.layer_from_tar(tar, "x").blob.digest  # gzip mtime 0
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        members = t.getmembers()
    assert [m.name for m in members] == ["usr", "usr/sbin", "usr/sbin/iptables", "usr/sbin/iptables-wrapper"]
    assert members[0].isdir() and members[2].issym() and members[2].linkname == "iptables-wrapper"
    assert members[3].mode == 0o755 and members[3].uid == 0 and {m.mtime for m in members} == {oci.FIXED_MTIME}


def test_config_and_manifest_name_each_other_by_digest():
    layers = [oci.layer_from_tar(oci.entries_tar([oci.Entry(f"f{i}", data=b"x" * i)]), f"step {i}")
              for i in (1, 2)]
    image = oci.build_image(layers, ["/usr/local/bin/kube-proxy"])
    config = json.loads(image.config.data)
    assert config["config"] == {"Entrypoint": ["/usr/local/bin/kube-proxy"], "Env": [oci.DEFAULT_PATH]}
    assert config["rootfs"] == {"type": "layers", "diff_ids": [l.diff_id for l in layers]}
    assert config["os"] == "linux" and len(config["history"]) == 2
    manifest = json.loads(image.manifest.data)
    assert manifest["mediaType"] == image.manifest.media_type == oci.MANIFEST_TYPE
    assert manifest["config"] == {"mediaType": oci.CONFIG_TYPE, "digest": image.config.digest,
                                  "size": len(image.config.data)}
    assert [l["digest"] for l in manifest["layers"]] == [l.blob.digest for l in layers]
    assert image.blobs[-1] == image.config  # the config goes after the layers, before the manifest
    assert oci.build_image(layers, ["/usr/local/bin/kube-proxy"]).manifest.digest == image.manifest.digest


def test_layout_holds_every_blob_under_its_digest(tmp_path):
    layer = oci.layer_from_tar(oci.entries_tar([oci.Entry("a", data=b"a")]), "a")
    image = oci.build_image([layer], ["/a"])
    ref = oci.parse_ref("127.0.0.1:5000/rap/a:v1")
    oci.write_layout(image, tmp_path, ref)
    for blob in [*image.blobs, image.manifest]:
        assert (tmp_path / "blobs/sha256" / blob.digest[7:]).read_bytes() == blob.data
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.manifest.digest
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == str(ref)


def test_base_keeps_the_system_and_leaves_out_what_a_runtime_supplies():
    for kept in ("usr/sbin/iptables", "etc/alternatives/iptables", "dev", "proc", "usr/share/doc/dash",
                 "usr/share/doc/dash/copyright", "var/lib/dpkg/status"):
        assert baseroot.keep(kept), kept
    for dropped in ("etc/resolv.conf", "etc/hostname", "etc/hosts", "dev/null", "proc/1",
                    "var/cache/apt/archives/x.deb", "var/lib/apt/lists/x_Packages", "usr/share/man/man1/a.1.gz",
                    "usr/share/doc/dash/changelog.gz", "usr/share/locale/de/LC_MESSAGES/a.mo"):
        assert not baseroot.keep(dropped), dropped


def test_base_tar_of_a_tree_is_sorted_with_fixed_times(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/resolv.conf").write_text("nameserver 10.0.0.1\n")
    (tmp_path / "etc/b").write_text("b")
    (tmp_path / "etc/a").write_text("a")
    (tmp_path / "bin").symlink_to("usr/bin")
    out = io.BytesIO()
    baseroot.layer_tar(tmp_path, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as t:
        members = t.getmembers()
    assert [m.name for m in members] == ["bin", "etc", "etc/a", "etc/b"]
    assert {m.mtime for m in members} == {baseroot.FIXED_MTIME} and {m.uname for m in members} == {""}
