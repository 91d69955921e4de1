"""The metrics server's HTTPS side: the request handler, the TLS server, ``start`` and ``MetricsServer``.

Serves ``api.MetricsAPI`` over HTTP/1.1 keep-alive (as kube-apiserver's
aggregator expects), plus health checks, an empty OpenAPI document and the
fault-injection switches ``POST /control/fail?on=1|0`` and
``POST /control/slow?seconds=X``. The serving certificate
comes from ``--cert``/``--key`` (the cluster's, signed by its CA) or, without
them, from ``pki.create_metrics_serving`` (a CA of its own). Not the routing
of metrics paths (``api``) nor the command line (``cli``).
"""

from __future__ import annotations

import json
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from rap.localcluster import pki
from rap.localcluster.metrics.api import CONTROL_PATHS, MetricsAPI
from rap.localcluster.metrics.registry import RegistryFile
from rap.localcluster.metrics.sampler import Reader, Sampler, read_cgroup
from rap.localcluster.metrics.wire import OPENAPI_V2, status

_HEALTH = ("/healthz", "/readyz", "/livez")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the aggregator keeps connections alive
    server_version = "rap-metrics"
    api: MetricsAPI

    def log_message(self, fmt: str, *args) -> None:
        pass

    def _send(self, code: int, body: dict | str) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8" if isinstance(body, str)
                         else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        if path in _HEALTH or path.startswith(tuple(h + "/" for h in _HEALTH)):
            return self._send(200, "ok")
        if path == "/openapi/v2":
            return self._send(200, OPENAPI_V2)
        if path.startswith("/control/"):
            return self._send(*self.api.control(path, {}, change=False))
        self._send(*self.api.get(path, parse_qs(url.query)))

    do_HEAD = do_GET

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        url = urlsplit(self.path)
        if url.path not in CONTROL_PATHS:
            return self._send(405, status(405, "MethodNotAllowed", f"POST {url.path}: the metrics API is read-only"))
        self._send(*self.api.control(url.path, parse_qs(url.query), change=True))


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    context: ssl.SSLContext | None = None

    def finish_request(self, request, client_address) -> None:
        # The handshake happens here, in the connection's thread, so a slow
        # client never holds up accept().
        if self.context is not None:
            request.settimeout(10)
            try:
                request = self.context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
            request.settimeout(None)
        super().finish_request(request, client_address)


def tls_context(cert: str | None, key: str | None, hosts: list[str]) -> ssl.SSLContext:
    """A TLS 1.2+ server context: ``cert``/``key``, or a fresh certificate from pki for ``hosts``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert and key:
        ctx.load_cert_chain(cert, key)
        return ctx
    with tempfile.TemporaryDirectory() as tmp:  # ssl loads only from files
        keys = pki.create_metrics_serving(Path(tmp), hosts)
        ctx.load_cert_chain(keys.path("metrics.crt"), keys.path("metrics.key"))
    return ctx


def write_control_file(path: Path, host: str, port: int) -> None:
    """``{"host", "port"}`` of the switches, replaced whole so a reader never sees half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"host": host, "port": port}))
    tmp.replace(path)


@dataclass
class MetricsServer:
    """A running server: ``.port`` (when started on port 0), ``.api`` to toggle, ``.stop()``."""

    http: TLSServer
    api: MetricsAPI
    stop_event: threading.Event
    threads: list[threading.Thread]

    @property
    def port(self) -> int:
        return self.http.server_address[1]

    def stop(self) -> None:
        self.stop_event.set()
        self.http.shutdown()
        self.http.server_close()
        for t in self.threads:
            t.join(timeout=5)


def start(registry: Path | str, host: str = "127.0.0.1", port: int = 0, *, interval: float = 1.0,
          window: float = 5.0, cert: str | None = None, key: str | None = None,
          tls: bool = True, failing: bool = False, slow_s: float = 0.0,
          control_file: Path | str | None = None, reader: Reader = read_cgroup) -> MetricsServer:
    """Start sampling and serving in background threads (the CLI and tests both use this).

    ``control_file``: where to write the address that takes the fault switches, once bound
    (``control.endpoint`` reads it).
    """
    reg = RegistryFile(registry)
    sampler = Sampler(reg, window, reader)
    api = MetricsAPI(reg, sampler, failing, slow_s)
    handler = type("BoundHandler", (Handler,), {"api": api})
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    http = type("Server", (TLSServer,), {"address_family": family})((host, port), handler)
    try:
        http.context = tls_context(cert, key, ["localhost", "127.0.0.1", host, *pki.METRICS_DNS]) if tls else None
    except BaseException:
        http.server_close()  # a bad --cert/--key leaves no bound socket behind
        raise
    if control_file:
        write_control_file(Path(control_file), host, http.server_address[1])
    stop = threading.Event()
    sampler.tick()  # the first sample now, so the first rate is one interval away
    threads = [threading.Thread(target=sampler.run, args=(interval, stop), daemon=True, name="sampler"),
               threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                                name="https")]
    for t in threads:
        t.start()
    return MetricsServer(http, api, stop, threads)
