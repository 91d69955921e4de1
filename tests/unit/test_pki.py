"""rap.localcluster.pki: the control plane's certificates, and the metrics server's serving certificate."""

from __future__ import annotations

import ipaddress
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
