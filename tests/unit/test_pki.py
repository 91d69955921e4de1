"""rap.localcluster.pki: the control plane's certificates, and the metrics server's serving certificate."""

from __future__ import annotations

import base64
import ipaddress
import os
import stat

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rap.localcluster import pki


def _cert(keys: pki.Pki, stem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(keys.path(f"{stem}.crt").read_bytes())


def _sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(ip) for ip in san.get_values_for_type(x509.IPAddress)], san.get_values_for_type(x509.DNSName)


def _cn(cert: x509.Certificate) -> str:
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def _usage(cert: x509.Certificate) -> list:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


@pytest.fixture(scope="module")
def cluster_keys(tmp_path_factory):
    return pki.create(tmp_path_factory.mktemp("pki"), ["10.213.0.1", "127.0.0.1"], "https://10.213.0.1:6443")


def test_control_plane_certificates(cluster_keys):
    ca = _cert(cluster_keys, "ca")
    for stem, cn, usage in [("apiserver", "kube-apiserver", ExtendedKeyUsageOID.SERVER_AUTH),
                            ("admin", "rap-admin", ExtendedKeyUsageOID.CLIENT_AUTH),
                            ("metrics", "rap-metrics", ExtendedKeyUsageOID.SERVER_AUTH)]:
        cert = _cert(cluster_keys, stem)
        cert.verify_directly_issued_by(ca)
        assert (_cn(cert), _usage(cert)) == (cn, [usage])
        assert stat.S_IMODE(cluster_keys.path(f"{stem}.key").stat().st_mode) == 0o600
    assert _sans(_cert(cluster_keys, "apiserver")) == (
        ["10.213.0.1", "127.0.0.1"], ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost"])
    assert _sans(_cert(cluster_keys, "metrics")) == (
        ["10.213.0.1", "127.0.0.1"], ["rap-metrics.kube-system.svc", "localhost"])
    _cert(cluster_keys, "front-proxy-client").verify_directly_issued_by(_cert(cluster_keys, "front-proxy-ca"))
    assert cluster_keys.path("sa.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_admin_kubeconfig(cluster_keys):
    doc = yaml.safe_load(cluster_keys.kubeconfig.read_text())
    assert doc["clusters"][0]["cluster"]["server"] == "https://10.213.0.1:6443"
    assert doc["current-context"] == "rap-local" and doc["users"][0]["name"] == "rap-admin"


def test_metrics_serving_certificate_of_its_own(tmp_path):
    keys = pki.create_metrics_serving(tmp_path / "m", ["127.0.0.1", "localhost", "", "::1", "127.0.0.1", "box"])
    cert = _cert(keys, "metrics")
    cert.verify_directly_issued_by(_cert(keys, "ca"))
    assert (_cn(cert), _usage(cert)) == ("rap-metrics", [ExtendedKeyUsageOID.SERVER_AUTH])
    ips, dns = _sans(cert)
    assert [ipaddress.ip_address(ip) for ip in ips] == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert dns == ["localhost", "box", "rap-metrics.kube-system.svc"]
    assert sorted(p.name for p in keys.dir.iterdir()) == ["ca.crt", "ca.key", "metrics.crt", "metrics.key"]


def test_every_ca_signs_only_its_own_clients(cluster_keys):
    ca, front, etcd = (_cert(cluster_keys, s) for s in ("ca", "front-proxy-ca", "etcd-ca"))
    for stem, issuer, cn, usages in [
            ("metrics-control", ca, pki.CONTROL_CN, [ExtendedKeyUsageOID.CLIENT_AUTH]),
            ("front-proxy-client", front, pki.FRONT_PROXY_CN, [ExtendedKeyUsageOID.CLIENT_AUTH]),
            ("etcd", etcd, "rap-etcd", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            ("apiserver-etcd-client", etcd, "kube-apiserver-etcd-client", [ExtendedKeyUsageOID.CLIENT_AUTH])]:
        cert = _cert(cluster_keys, stem)
        cert.verify_directly_issued_by(issuer)
        assert (_cn(cert), _usage(cert)) == (cn, usages)
    assert _sans(_cert(cluster_keys, "etcd")) == (["127.0.0.1"], ["localhost"])
    # No API client (admin, proxies) is signed by etcd's CA: none of them opens etcd.
    for stem in ("admin", "metrics-control", "front-proxy-client"):
        with pytest.raises(ValueError):
            _cert(cluster_keys, stem).verify_directly_issued_by(etcd)


def test_each_node_proxy_has_its_own_credential_and_kubeconfig(tmp_path):
    keys = pki.create(tmp_path / "pki", ["127.0.0.1"], "https://127.0.0.1:6443", nodes=["node-1", "node-2"])
    for node in ("node-1", "node-2"):
        cert = _cert(keys, f"proxy-{node}")
        cert.verify_directly_issued_by(_cert(keys, "ca"))
        org = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
        assert (_cn(cert), org, _usage(cert)) == (f"rap-proxy:{node}", pki.PROXY_GROUP,
                                                   [ExtendedKeyUsageOID.CLIENT_AUTH])
        doc = yaml.safe_load(keys.proxy_kubeconfig(node).read_text())
        user = doc["users"][0]
        assert user["name"] == f"rap-proxy:{node}" and doc["contexts"][0]["context"]["user"] == user["name"]
        data = base64.b64decode(user["user"]["client-certificate-data"])
        assert data == keys.path(f"proxy-{node}.crt").read_bytes()
    assert "system:masters" not in keys.path("proxy-node-1.crt").read_text()


@pytest.fixture
def spied(monkeypatch):
    """Every os.open and os.mkdir pki makes, with the mode the new file or folder had at its birth;
    the umask at 0, the worst a caller could leave, so that nothing leans on it."""
    made: dict[str, int] = {}
    real_open, real_mkdir = os.open, os.mkdir

    def open_(path, flags, mode=0o777, *a, **kw):
        fd = real_open(path, flags, mode, *a, **kw)
        if flags & os.O_CREAT:
            assert flags & os.O_EXCL, f"{path}: created without O_EXCL could reuse a wider file"
            made[str(path)] = stat.S_IMODE(os.fstat(fd).st_mode)
        return fd

    def mkdir(path, mode=0o777, *a, **kw):
        real_mkdir(path, mode, *a, **kw)
        made[str(path)] = stat.S_IMODE(os.stat(path).st_mode)

    monkeypatch.setattr(pki.os, "open", open_)
    monkeypatch.setattr(pki.os, "mkdir", mkdir)
    old = os.umask(0)
    yield made
    os.umask(old)


def test_every_file_is_born_0600_in_a_folder_born_0700(tmp_path, spied):
    keys = pki.create(tmp_path / "pki", ["127.0.0.1"], "https://127.0.0.1:6443", nodes=["node-1"])
    solo = pki.create_metrics_serving(tmp_path / "solo", ["127.0.0.1"])
    for folder in (keys.dir, solo.dir):
        files = sorted(folder.iterdir())
        assert len(files) >= 4
        assert spied[str(folder)] == 0o700 == stat.S_IMODE(folder.stat().st_mode)
        for f in files:
            # Born 0600 through os.open (not written wide and narrowed after), and still so.
            assert (f.name, spied.get(str(f))) == (f.name, 0o600)
            assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert {"ca.key", "admin.kubeconfig", "proxy-node-1.kubeconfig", "etcd.key", "sa.key"} <= {
        f.name for f in keys.dir.iterdir()}


def test_an_existing_wide_folder_and_files_are_replaced_narrow(tmp_path):
    folder = tmp_path / "pki"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    old = folder / "admin.key"
    old.write_text("old")
    old.chmod(0o644)
    pki.create(folder, ["127.0.0.1"], "https://127.0.0.1:6443")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(old.stat().st_mode) == 0o600 and "PRIVATE KEY" in old.read_text()
