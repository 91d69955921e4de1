"""etcd and kube-apiserver of the local cluster, as real processes in the root namespace.

etcd listens on loopback only and speaks TLS with client certificates on
both its ports: it trusts ``etcd-ca`` alone, whose one client is the API
server, so no API credential (admin or node) opens the store beneath RBAC.
"""

from __future__ import annotations

import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

from rap.errors import UserError
from rap.localcluster import config as cfg
from rap.localcluster import procs, proxykinds
from rap.localcluster.pki import FRONT_PROXY_CN, Pki
from rap.localcluster.sh import require_tool


class ControlPlaneError(UserError, RuntimeError):
    pass


# TLS 1.2's ECDHE AEAD suites; etcd 3.4 takes TLS 1.3's own (fixed by Go) on top.
ETCD_CIPHERS = ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305")


def check_port_free(host: str, port: int, what: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise ControlPlaneError(
                f"port {host}:{port} for {what} is in use: stop what holds it "
                f"(ss -ltnp 'sport = :{port}') or run `invoke local-down` if it is an old cluster"
            ) from None


def etcd_url(c: cfg.ClusterConfig) -> str:
    return f"https://127.0.0.1:{c.etcd_port}"


def start_etcd(runtime: Path, c: cfg.ClusterConfig, keys: Pki | None = None) -> None:
    """Start etcd with ``keys`` (default: the runtime's pki folder) on etcd_port and etcd_port + 10."""
    etcd = require_tool("etcd", "etcd-server")
    keys = keys or Pki(runtime / "pki")
    peer = c.etcd_port + 10
    check_port_free("127.0.0.1", c.etcd_port, "etcd")
    check_port_free("127.0.0.1", peer, "etcd peers")
    client_url, peer_url = etcd_url(c), f"https://127.0.0.1:{peer}"
    p = keys.path
    tls = [f"--cert-file={p('etcd.crt')}", f"--key-file={p('etcd.key')}",
           f"--trusted-ca-file={p('etcd-ca.crt')}", "--client-cert-auth=true"]
    peer_tls = [f"--peer-cert-file={p('etcd.crt')}", f"--peer-key-file={p('etcd.key')}",
                f"--peer-trusted-ca-file={p('etcd-ca.crt')}", "--peer-client-cert-auth=true"]
    procs.start(runtime, "etcd", [
        etcd, "--name", "rap-local", "--data-dir", str(runtime / "etcd"),
        "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
        "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"rap-local={peer_url}", *tls, *peer_tls,
        "--cipher-suites", ",".join(ETCD_CIPHERS), "--log-level", "warn",
    ])
    _wait_http(f"{client_url}/health", "etcd", runtime, "etcd",
               _tls_context(keys, "etcd-ca.crt", "apiserver-etcd-client"))


def apiserver_url(c: cfg.ClusterConfig, host: str | None = None) -> str:
    return f"https://{host or cfg.bridge_ip()}:{c.api_port}"


def start_apiserver(runtime: Path, c: cfg.ClusterConfig, binary: Path, pki: Pki, *,
                    host: str | None = None, extra_args: Sequence[str] = ()) -> None:
    """Start kube-apiserver on ``host`` (default: the local cluster's bridge address).

    ``extra_args`` are appended to the flags (e.g. --allow-privileged=true, as kubeadm sets).
    """
    host = host or cfg.bridge_ip()
    check_port_free(host, c.api_port, "kube-apiserver")
    p = pki.path
    procs.start(runtime, "kube-apiserver", [
        str(binary),
        f"--etcd-servers={etcd_url(c)}", f"--etcd-cafile={p('etcd-ca.crt')}",
        f"--etcd-certfile={p('apiserver-etcd-client.crt')}", f"--etcd-keyfile={p('apiserver-etcd-client.key')}",
        f"--bind-address={host}", f"--advertise-address={host}",
        f"--secure-port={c.api_port}",
        f"--service-cluster-ip-range={cfg.SERVICE_NET}",
        f"--tls-cert-file={p('apiserver.crt')}", f"--tls-private-key-file={p('apiserver.key')}",
        f"--client-ca-file={p('ca.crt')}",
        f"--service-account-key-file={p('sa.pub')}",
        f"--service-account-signing-key-file={p('sa.key')}",
        "--service-account-issuer=https://kubernetes.default.svc",
        "--authorization-mode=Node,RBAC",
        # No controller-manager makes service-account tokens here; pods are
        # records of processes the project runs, so that admission is off.
        "--disable-admission-plugins=ServiceAccount",
        # The aggregation layer, for metrics.k8s.io served by rap.localcluster.metrics.
        f"--requestheader-client-ca-file={p('front-proxy-ca.crt')}",
        f"--requestheader-allowed-names={FRONT_PROXY_CN}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={p('front-proxy-client.crt')}",
        f"--proxy-client-key-file={p('front-proxy-client.key')}",
        "--enable-aggregator-routing=true",
        # The local-only peer sets the Service's internalTrafficPolicy (alpha in v1.21).
        f"--feature-gates={proxykinds.FEATURE_GATES}",
        "--profiling=false", "--v=1",
        *extra_args,
    ])
    _wait_http(f"{apiserver_url(c, host)}/readyz", "kube-apiserver", runtime, "kube-apiserver",
               _tls_context(pki, "ca.crt", "admin"), timeout=90)


def _tls_context(keys: Pki, ca: str, client: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(keys.path(ca)))
    ctx.load_cert_chain(str(keys.path(f"{client}.crt")), str(keys.path(f"{client}.key")))
    return ctx


def _wait_http(url: str, what: str, runtime: Path, proc_name: str, ctx: ssl.SSLContext,
               timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    pid = procs.recorded(runtime).get(proc_name)
    last = ""
    while time.monotonic() < deadline:
        if pid is not None and not procs.alive(pid):
            raise ControlPlaneError(f"{what} exited at start; see {procs.log_path(runtime, proc_name)}:\n"
                                    + _tail(procs.log_path(runtime, proc_name)))
        try:
            with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.3)
    raise ControlPlaneError(f"{what} not ready after {timeout:.0f}s ({last}); see "
                            f"{procs.log_path(runtime, proc_name)}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""

