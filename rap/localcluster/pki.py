"""Certificates and the kubeconfig of the local cluster, made by the project.

One CA signs the API server's serving certificate, the admin client and the
metrics server's serving certificate; a second (front-proxy) CA signs the
client the aggregation layer uses to reach the metrics server, as
kube-apiserver expects for aggregated APIs. A metrics server run without the
cluster (tests, ``python3 -m rap.localcluster.metrics`` without ``--cert``)
gets a CA of its own and the same kind of serving certificate from
``create_metrics_serving``.

Not for the node side: this cluster has no kubelets to give certificates to.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

VALID_DAYS = 30
METRICS_CN = "rap-metrics"
METRICS_DNS = ("rap-metrics.kube-system.svc", "localhost")


@dataclass(frozen=True)
class Pki:
    dir: Path

    def path(self, name: str) -> Path:
        return self.dir / name

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "admin.kubeconfig"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _write_key(path: Path, key) -> None:
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=VALID_DAYS)))


def _make_ca(pki: Pki, stem: str, cn: str):
    key = _key()
    cert = (_builder(_name(cn), _name(cn), key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    _write_key(pki.path(f"{stem}.key"), key)
    _write_cert(pki.path(f"{stem}.crt"), cert)
    return cert, key


def _issue(pki: Pki, stem: str, ca, subject: x509.Name, *, server: bool,
           ips: list[str] = (), dns: list[str] = ()) -> None:
    ca_cert, ca_key = ca
    key = _key()
    usage = x509.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (_builder(subject, ca_cert.subject, key.public_key())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    alt = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips] + [x509.DNSName(d) for d in dns]
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    _write_key(pki.path(f"{stem}.key"), key)
    _write_cert(pki.path(f"{stem}.crt"), builder.sign(ca_key, hashes.SHA256()))


def create(directory: Path, api_ips: list[str], api_url: str) -> Pki:
    """Make every key, certificate and the admin kubeconfig in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory)
    ca = _make_ca(pki, "ca", "rap-local-ca")
    _issue(pki, "apiserver", ca, _name("kube-apiserver"), server=True, ips=api_ips,
           dns=["kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost"])
    _issue(pki, "admin", ca, _name("rap-admin", "system:masters"), server=False)
    _issue_metrics(pki, ca, api_ips, METRICS_DNS)
    front = _make_ca(pki, "front-proxy-ca", "rap-front-proxy-ca")
    _issue(pki, "front-proxy-client", front, _name("front-proxy-client"), server=False)
    _write_key(pki.path("sa.key"), _key())
    sa_key = serialization.load_pem_private_key(pki.path("sa.key").read_bytes(), None)
    pki.path("sa.pub").write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    write_kubeconfig(pki, api_url)
    return pki


def create_metrics_serving(directory: Path, hosts: list[str]) -> Pki:
    """A CA (ca.crt) and the metrics server's serving certificate signed by it (metrics.crt/.key).

    ``hosts`` are IP addresses or DNS names for the certificate's SANs; the
    in-cluster DNS names of ``METRICS_DNS`` are always included.
    """
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory)
    ca = _make_ca(pki, "ca", "rap-metrics-ca")
    ips, dns = _split_hosts(hosts)
    _issue_metrics(pki, ca, ips, dns + [d for d in METRICS_DNS if d not in dns])
    return pki


def _issue_metrics(pki: Pki, ca, ips: list[str], dns: list[str]) -> None:
    _issue(pki, "metrics", ca, _name(METRICS_CN), server=True, ips=ips, dns=list(dns))


def _split_hosts(hosts: list[str]) -> tuple[list[str], list[str]]:
    ips: list[str] = []
    dns: list[str] = []
    for h in filter(None, dict.fromkeys(hosts)):  # in order, once each
        try:
            ips.append(str(ipaddress.ip_address(h)))
        except ValueError:
            dns.append(h)
    return ips, dns


def write_kubeconfig(pki: Pki, api_url: str) -> Path:
    def b64(name: str) -> str:
        return base64.b64encode(pki.path(name).read_bytes()).decode()

    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "rap-local",
        "clusters": [{"name": "rap-local", "cluster": {
            "server": api_url, "certificate-authority-data": b64("ca.crt")}}],
        "users": [{"name": "rap-admin", "user": {
            "client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")}}],
        "contexts": [{"name": "rap-local", "context": {"cluster": "rap-local", "user": "rap-admin"}}],
    }
    pki.kubeconfig.write_text(yaml.safe_dump(doc))
    pki.kubeconfig.chmod(0o600)
    return pki.kubeconfig
