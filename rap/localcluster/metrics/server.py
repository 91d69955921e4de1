"""The metrics server's HTTPS side: the request handler, the TLS listeners, ``start`` and ``MetricsServer``.

Serves ``api.MetricsAPI`` over HTTP/1.1 keep-alive (as kube-apiserver's
aggregator expects), plus health checks, an empty OpenAPI document and the
fault-injection switches ``POST /control/fail?on=1|0`` and
``POST /control/slow?seconds=X``. The serving certificate comes from
``--cert``/``--key`` (the cluster's, signed by its CA) or, without them, from
``pki.create_metrics_serving`` (a CA of its own).

Who may ask: a listener given a ``ClientAuth`` takes only clients whose
certificate its CA signed and whose CN it names (in the cluster: the
aggregator's front-proxy client). Given a control listener, the switches are
served there only (in the cluster: the root namespace's loopback, for the
``rap-metrics-control`` client), and the API's listener answers them 404.
Without either, one open listener serves everything (tests, a metrics server
run alone). Not the routing of metrics paths (``api``) nor the command line
(``cli``).
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
SERVES = ("all", "metrics", "control")  # what one listener answers


@dataclass(frozen=True)
class ClientAuth:
    """Clients a listener takes: certificates signed by ``ca`` (PEM file) with a CN in ``names`` (any if empty)."""

    ca: str
    names: tuple[str, ...] = ()


def peer_cn(sock) -> str | None:
    """The CN of a verified client certificate on ``sock``; None without one."""
    cert = sock.getpeercert() if isinstance(sock, ssl.SSLSocket) else None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the aggregator keeps connections alive
    server_version = "rap-metrics"
    api: MetricsAPI
    serves: str = "all"
    names: tuple[str, ...] = ()

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

    def _refused(self, path: str) -> tuple[int, dict] | None:
        """Why this listener does not answer ``path`` for this client (None: it does)."""
        if self.names:
            cn = peer_cn(self.connection)
            if cn not in self.names:
                return 403, status(403, "Forbidden", f"client certificate CN={cn!r} is not one of "
                                                     f"{', '.join(self.names)}")
        control = path.startswith("/control/")
        if (self.serves == "metrics" and control) or (self.serves == "control" and not control
                                                      and not _is_health(path)):
            return 404, status(404, "NotFound", f"{path} is not served on this port")
        return None

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        refused = self._refused(path)
        if refused:
            return self._send(*refused)
        if _is_health(path):
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
        refused = self._refused(url.path)
        if refused:
            return self._send(*refused)
        if url.path not in CONTROL_PATHS:
            return self._send(405, status(405, "MethodNotAllowed", f"POST {url.path}: the metrics API is read-only"))
        self._send(*self.api.control(url.path, parse_qs(url.query), change=True))


def _is_health(path: str) -> bool:
    return path in _HEALTH or path.startswith(tuple(h + "/" for h in _HEALTH))


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    context: ssl.SSLContext | None = None

    def finish_request(self, request, client_address) -> None:
        # The handshake happens here, in the connection's thread, so a slow
        # client never holds up accept(). A client without an acceptable
        # certificate ends here too.
        if self.context is not None:
            request.settimeout(10)
            try:
                request = self.context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
            request.settimeout(None)
        super().finish_request(request, client_address)


def _server_context(cert: str, key: str, client: ClientAuth | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client.ca)
    return ctx


def tls_contexts(cert: str | None, key: str | None, hosts: list[str],
                 clients: list[ClientAuth | None]) -> list[ssl.SSLContext]:
    """One TLS 1.2+ server context per entry of ``clients`` (None: no client certificate asked),
    all serving ``cert``/``key``, or one fresh certificate from pki for ``hosts``."""
    if cert and key:
        return [_server_context(cert, key, c) for c in clients]
    with tempfile.TemporaryDirectory() as tmp:  # ssl loads only from files
        keys = pki.create_metrics_serving(Path(tmp), hosts)
        return [_server_context(str(keys.path("metrics.crt")), str(keys.path("metrics.key")), c) for c in clients]


def tls_context(cert: str | None, key: str | None, hosts: list[str],
                client: ClientAuth | None = None) -> ssl.SSLContext:
    """A TLS 1.2+ server context: ``cert``/``key``, or a fresh certificate from pki for ``hosts``."""
    return tls_contexts(cert, key, hosts, [client])[0]


def write_control_file(path: Path, host: str, port: int) -> None:
    """``{"host", "port"}`` of the switches, replaced whole so a reader never sees half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"host": host, "port": port}))
    tmp.replace(path)


@dataclass
class MetricsServer:
    """A running server: ``.port`` (when started on port 0), ``.api`` to toggle, ``.stop()``;
    ``.control_port`` when the switches have a listener of their own."""

    http: TLSServer
    api: MetricsAPI
    stop_event: threading.Event
    threads: list[threading.Thread]
    control: TLSServer | None = None

    @property
    def port(self) -> int:
        return self.http.server_address[1]

    @property
    def control_port(self) -> int | None:
        return self.control.server_address[1] if self.control else None

    def stop(self) -> None:
        self.stop_event.set()
        for listener in filter(None, (self.http, self.control)):
            listener.shutdown()
            listener.server_close()
        for t in self.threads:
            t.join(timeout=5)


def _listener(host: str, port: int, api: MetricsAPI, serves: str, client: ClientAuth | None) -> TLSServer:
    handler = type("BoundHandler", (Handler,), {"api": api, "serves": serves,
                                                "names": tuple(client.names) if client else ()})
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return type("Server", (TLSServer,), {"address_family": family})((host, port), handler)


def start(registry: Path | str, host: str = "127.0.0.1", port: int = 0, *, interval: float = 1.0,
          window: float = 5.0, cert: str | None = None, key: str | None = None,
          tls: bool = True, failing: bool = False, slow_s: float = 0.0,
          client: ClientAuth | None = None, control: tuple[str, int] | None = None,
          control_client: ClientAuth | None = None,
          control_file: Path | str | None = None, reader: Reader = read_cgroup) -> MetricsServer:
    """Start sampling and serving in background threads (the CLI and tests both use this).

    ``client``: who the API's listener takes (None: anyone). ``control``: (host, port) of a
    listener of the switches' own, taking ``control_client``. ``control_file``: where to write
    the address that takes the switches, once bound (``control.endpoint`` reads it).
    """
    reg = RegistryFile(registry)
    sampler = Sampler(reg, window, reader)
    api = MetricsAPI(reg, sampler, failing, slow_s)
    listeners = [_listener(host, port, api, "metrics" if control else "all", client)]
    try:
        if control:
            listeners.append(_listener(*control, api, "control", control_client))
        if tls:
            hosts = ["localhost", "127.0.0.1", host, *pki.METRICS_DNS, *([control[0]] if control else [])]
            clients = [client, control_client][:len(listeners)]
            for listener, ctx in zip(listeners, tls_contexts(cert, key, hosts, clients)):
                listener.context = ctx
    except BaseException:
        for listener in listeners:
            listener.server_close()  # a bad --cert/--key or a busy port leaves no bound socket behind
        raise
    switches = listeners[-1]
    if control_file:
        write_control_file(Path(control_file), switches.server_address[0], switches.server_address[1])
    stop = threading.Event()
    sampler.tick()  # the first sample now, so the first rate is one interval away
    threads = [threading.Thread(target=sampler.run, args=(interval, stop), daemon=True, name="sampler")]
    threads += [threading.Thread(target=listener.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                                 name=f"https-{listener.RequestHandlerClass.serves}") for listener in listeners]
    for t in threads:
        t.start()
    return MetricsServer(listeners[0], api, stop, threads, listeners[1] if control else None)
