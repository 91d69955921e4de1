"""Certificates and kubeconfigs of the local cluster, made by the project.

Three CAs, each trusted for one thing only, as kubeadm lays them out:

- ``ca``: the API server's and the metrics server's serving certificates, and
  the API's clients: the admin (system:masters), each node's proxy
  (``rap-proxy:<node>`` in group ``rap:node-proxies``, bound by RBAC to
  kube-proxy's and RAP's ClusterRoles, never the admin) and the metrics
  server's fault-switch client (``rap-metrics-control``).
- ``front-proxy-ca``: only the client the aggregation layer presents to the
  metrics server (the metrics server trusts nothing else).
- ``etcd-ca``: etcd's certificate and the API server's etcd client, so that no
  API client certificate opens etcd.

Every file is created 0600 by one ``os.open`` in a folder created 0700: no key
is ever readable by others, not even between its creation and a chmod. A
metrics server run without the cluster (tests, ``python3 -m
rap.localcluster.metrics`` without ``--cert``) gets a CA of its own and the
same kind of serving certificate from ``create_metrics_serving``.

Not for the node side beyond the proxies: this cluster has no kubelets.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 30
METRICS_CN = "rap-metrics"
METRICS_DNS = ("rap-metrics.kube-system.svc", "localhost")
FRONT_PROXY_CN = "front-proxy-client"  # kube-apiserver's --requestheader-allowed-names, the metrics server's too
CONTROL_CN = "rap-metrics-control"  # the one client the metrics server's fault switches take
PROXY_GROUP = "rap:node-proxies"  # what RBAC binds; each proxy's user name says its node
SERVER, CLIENT = (ExtendedKeyUsageOID.SERVER_AUTH,), (ExtendedKeyUsageOID.CLIENT_AUTH,)


def proxy_user(node: str) -> str:
    """The user name a node's proxy is known by to the API server."""
    return f"rap-proxy:{node}"


@dataclass(frozen=True)
class Pki:
    dir: Path

    def path(self, name: str) -> Path:
        return self.dir / name

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "admin.kubeconfig"

    def proxy_kubeconfig(self, node: str) -> Path:
        """The kubeconfig of ``node``'s proxy (kube-proxy and RAP's monitor): its own credential."""
        return self.dir / f"proxy-{node}.kubeconfig"


def make_private_dir(directory: Path) -> None:
    """``directory`` as a 0700 folder: made so by mkdir, or narrowed before anything is written in it."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(directory, 0o700)  # the umask can only narrow it
    except FileExistsError:
        if stat.S_IMODE(directory.stat().st_mode) & 0o077:
            directory.chmod(0o700)


def write_private(path: Path, data: bytes) -> None:
    """``data`` in a new file created 0600 (whatever the umask), replacing any file there before."""
    path.unlink(missing_ok=True)  # O_EXCL: never reuse an old file's wider mode
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _write_key(path: Path, key) -> None:
    write_private(path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    write_private(path, cert.public_bytes(serialization.Encoding.PEM))


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


def _issue(pki: Pki, stem: str, ca, subject: x509.Name, usages: tuple, *,
           ips: Iterable[str] = (), dns: Iterable[str] = ()) -> None:
    ca_cert, ca_key = ca
    key = _key()
    builder = (_builder(subject, ca_cert.subject, key.public_key())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False))
    alt = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips] + [x509.DNSName(d) for d in dns]
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    _write_key(pki.path(f"{stem}.key"), key)
    _write_cert(pki.path(f"{stem}.crt"), builder.sign(ca_key, hashes.SHA256()))


def create(directory: Path, api_ips: list[str], api_url: str, nodes: Iterable[str] = ()) -> Pki:
    """Make every key and certificate, the admin kubeconfig, and a kubeconfig per proxy of ``nodes``."""
    make_private_dir(directory)
    pki = Pki(directory)
    ca = _make_ca(pki, "ca", "rap-local-ca")
    _issue(pki, "apiserver", ca, _name("kube-apiserver"), SERVER, ips=api_ips,
           dns=["kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost"])
    _issue(pki, "admin", ca, _name("rap-admin", "system:masters"), CLIENT)
    _issue_metrics(pki, ca, api_ips, METRICS_DNS)
    _issue(pki, "metrics-control", ca, _name(CONTROL_CN), CLIENT)
    front = _make_ca(pki, "front-proxy-ca", "rap-front-proxy-ca")
    _issue(pki, "front-proxy-client", front, _name(FRONT_PROXY_CN), CLIENT)
    etcd = _make_ca(pki, "etcd-ca", "rap-etcd-ca")
    # One certificate serves etcd's clients and its peer port, where it is a client too.
    _issue(pki, "etcd", etcd, _name("rap-etcd"), SERVER + CLIENT, ips=["127.0.0.1"], dns=["localhost"])
    _issue(pki, "apiserver-etcd-client", etcd, _name("kube-apiserver-etcd-client"), CLIENT)
    sa_key = _key()
    _write_key(pki.path("sa.key"), sa_key)
    write_private(pki.path("sa.pub"), sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    write_kubeconfig(pki, api_url)
    for node in nodes:
        add_proxy_credential(pki, ca, node, api_url)
    return pki


def add_proxy_credential(pki: Pki, ca, node: str, api_url: str) -> Path:
    """``node``'s proxy client certificate and its kubeconfig (``Pki.proxy_kubeconfig``)."""
    stem = f"proxy-{node}"
    _issue(pki, stem, ca, _name(proxy_user(node), PROXY_GROUP), CLIENT)
    return write_kubeconfig(pki, api_url, stem=stem, user=proxy_user(node), path=pki.proxy_kubeconfig(node))


def add_client_credential(pki: Pki, stem: str, user: str, api_url: str, group: str | None = None) -> Path:
    """One more API client of a cluster made earlier: ``user`` (in ``group``) signed by its ``ca``, and its
    kubeconfig ``<stem>.kubeconfig`` beside the others (as ``rap.aggregator.local`` adds the aggregator's)."""
    ca = (x509.load_pem_x509_certificate(pki.path("ca.crt").read_bytes()),
          serialization.load_pem_private_key(pki.path("ca.key").read_bytes(), password=None))
    _issue(pki, stem, ca, _name(user, group), CLIENT)
    return write_kubeconfig(pki, api_url, stem=stem, user=user, path=pki.dir / f"{stem}.kubeconfig")


def create_metrics_serving(directory: Path, hosts: list[str]) -> Pki:
    """A CA (ca.crt) and the metrics server's serving certificate signed by it (metrics.crt/.key).

    ``hosts`` are IP addresses or DNS names for the certificate's SANs; the
    in-cluster DNS names of ``METRICS_DNS`` are always included.
    """
    make_private_dir(directory)
    pki = Pki(directory)
    ca = _make_ca(pki, "ca", "rap-metrics-ca")
    ips, dns = _split_hosts(hosts)
    _issue_metrics(pki, ca, ips, dns + [d for d in METRICS_DNS if d not in dns])
    return pki


def _issue_metrics(pki: Pki, ca, ips: list[str], dns: list[str]) -> None:
    _issue(pki, "metrics", ca, _name(METRICS_CN), SERVER, ips=ips, dns=dns)


def _split_hosts(hosts: list[str]) -> tuple[list[str], list[str]]:
    ips: list[str] = []
    dns: list[str] = []
    for h in filter(None, dict.fromkeys(hosts)):  # in order, once each
        try:
            ips.append(str(ipaddress.ip_address(h)))
        except ValueError:
            dns.append(h)
    return ips, dns


def write_kubeconfig(pki: Pki, api_url: str, stem: str = "admin", user: str = "rap-admin",
                     path: Path | None = None) -> Path:
    """A kubeconfig for the client certificate ``stem``.crt/.key (default: the admin's, at ``pki.kubeconfig``)."""
    def b64(name: str) -> str:
        return base64.b64encode(pki.path(name).read_bytes()).decode()

    path = path or pki.kubeconfig
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "rap-local",
        "clusters": [{"name": "rap-local", "cluster": {
            "server": api_url, "certificate-authority-data": b64("ca.crt")}}],
        "users": [{"name": user, "user": {
            "client-certificate-data": b64(f"{stem}.crt"), "client-key-data": b64(f"{stem}.key")}}],
        "contexts": [{"name": "rap-local", "context": {"cluster": "rap-local", "user": user}}],
    }
    write_private(path, yaml.safe_dump(doc).encode())
    return path
