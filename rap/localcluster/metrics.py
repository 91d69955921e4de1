"""The local cluster's metrics server: metrics.k8s.io/v1beta1 measured from its cgroups.

    python3 -m rap.localcluster.metrics --registry RUNTIME/metrics-registry.json \\
        --listen 10.213.0.1:4443 [--cert C --key K] [--interval 1] [--window 5] [--fail]

kube-apiserver's aggregation layer proxies /apis/metrics.k8s.io/v1beta1 here
(see ``apiservice()`` and ``service_objects()``), so RAP reads the same API as on
a real cluster with metrics-server. Like metrics-server, CPU is a rate between
two samples of the cumulative counter, in nanocores: the newest sample against
the latest one taken at least ``--window`` seconds before it (shorter just
after start), reported as ``window``; memory is the working set of the newest.

The registry (written by the cluster code with ``write_registry``, re-read when
the file changes) says what to measure::

    {"nodes": {"node-1": "rap-local/node-1"},
     "pods": {"default/pod-1-1": {"node": "node-1", "cgroup": "rap-local/node-1/pod-1-1",
                                  "container": "backend", "labels": {"app": "web"}}}}

Fault injection: ``--fail``, SIGUSR1 (toggle) or ``POST /control/fail?on=1|0``
make the metric endpoints answer 503, as an unavailable metrics-server would.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from rap.localcluster import cgroups

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
PREFIX = f"/apis/{GROUP_VERSION}"
DEFAULT_CONTAINER = "backend"

# -- Kubernetes wire formats ------------------------------------------------------

_DECIMAL_SUFFIXES = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
_BINARY_SUFFIXES = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]


def cpu_quantity(nanocores: int) -> str:
    """Canonical DecimalSI form of n·10⁻⁹, as resource.Quantity prints it ("1500m", "123n")."""
    n = int(nanocores)
    if n == 0:
        return "0"
    exp = -9
    while exp < 18 and n % 1000 == 0:
        n //= 1000
        exp += 3
    return f"{n}{_DECIMAL_SUFFIXES[exp]}"


def memory_quantity(nbytes: int) -> str:
    """Canonical BinarySI form of a byte count ("4Ki", "1Mi"; plain bytes if not a multiple of 1024)."""
    n = int(nbytes)
    if -1024 < n < 1024 or n % 1024:
        return cpu_quantity(n * 10**9)  # Quantity falls back to DecimalSI here
    i = 0
    while i < len(_BINARY_SUFFIXES) - 1 and n % 1024 == 0:
        n //= 1024
        i += 1
    return f"{n}{_BINARY_SUFFIXES[i]}"


def _go_fraction(value: int, digits: int) -> str:
    whole, frac = divmod(value, 10**digits)
    frac_s = f"{frac:0{digits}d}".rstrip("0")
    return f"{whole}.{frac_s}" if frac_s else str(whole)


def go_duration(ns: int) -> str:
    """time.Duration.String(), which metav1.Duration (``window``) serialises as."""
    ns = int(ns)
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_go_fraction(ns, 3)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_go_fraction(ns, 6)}ms"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    secs = _go_fraction(rest, 9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    return f"{sign}{minutes}m{secs}" if minutes else f"{sign}{secs}"


def rfc3339(t: float) -> str:
    """metav1.Time: UTC, whole seconds."""
    return datetime.fromtimestamp(int(t), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(code: int, reason: str, message: str) -> dict:
    """A metav1.Status error body, as the API server answers errors."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


# -- the registry -------------------------------------------------------------------

class RegistryError(ValueError):
    """The registry file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class PodEntry:
    namespace: str
    name: str
    node: str
    cgroup: str
    container: str = DEFAULT_CONTAINER
    labels: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Registry:
    nodes: dict  # node name -> cgroup name
    pods: dict  # "namespace/name" -> PodEntry

    def cgroups(self) -> set[str]:
        return set(self.nodes.values()) | {p.cgroup for p in self.pods.values()}


def _pod_entry(key: str, raw: dict, where: str) -> PodEntry:
    ns, sep, name = key.partition("/")
    if not sep or not ns or not name:
        raise RegistryError(f"{where}: pod key {key!r} must be 'namespace/name'")
    if not isinstance(raw, dict) or not isinstance(raw.get("cgroup"), str):
        raise RegistryError(f"{where}: pods[{key!r}] needs a 'cgroup' string")
    return PodEntry(ns, name, str(raw.get("node", "")), raw["cgroup"],
                    str(raw.get("container") or DEFAULT_CONTAINER), dict(raw.get("labels") or {}))


def parse_registry(data: dict, where: str = "registry") -> Registry:
    if not isinstance(data, dict):
        raise RegistryError(f"{where}: must be a JSON object with 'nodes' and 'pods'")
    nodes, pods = data.get("nodes") or {}, data.get("pods") or {}
    if not isinstance(nodes, dict) or not all(isinstance(v, str) for v in nodes.values()):
        raise RegistryError(f"{where}: 'nodes' must map node name -> cgroup name")
    if not isinstance(pods, dict):
        raise RegistryError(f"{where}: 'pods' must map 'namespace/name' -> {{node, cgroup, container}}")
    return Registry(dict(nodes), {k: _pod_entry(k, v, where) for k, v in pods.items()})


def write_registry(path: Path | str, nodes: dict, pods: dict) -> None:
    """Atomically replace the registry (the server never sees half a file)."""
    parse_registry({"nodes": nodes, "pods": pods}, str(path))
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"nodes": nodes, "pods": pods}, indent=1, sort_keys=True))
    os.replace(tmp, path)


class RegistryFile:
    """The registry, re-read whenever the file's identity or mtime changes."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._stamp: tuple | None = None
        self.current = Registry({}, {})
        self.error: str | None = None

    def get(self) -> Registry:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self.error = f"{self.path}: no such file (the cluster code writes it)"
            return self.current
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self.current = parse_registry(json.loads(self.path.read_text()), str(self.path))
                self.error = None
            except (ValueError, OSError) as e:  # keep the last good registry
                self.error = str(e)
                print(f"metrics: {e}", file=sys.stderr, flush=True)
        return self.current


# -- sampling -------------------------------------------------------------------------

Reader = Callable[[str], tuple[int, int]]  # cgroup name -> (cpu ns, memory bytes)


def read_cgroup(name: str) -> tuple[int, int]:
    g = cgroups.group(name)
    return g.cpu_usage_ns(), g.memory_bytes()


@dataclass(frozen=True)
class Sample:
    mono: float  # for rates: immune to clock steps
    wall: float  # for the reported timestamp
    cpu_ns: int
    mem: int


@dataclass(frozen=True)
class Usage:
    timestamp: float
    window_ns: int
    nanocores: int
    memory: int


class Sampler:
    """Samples every registered cgroup; usage = rate over the newest window."""

    def __init__(self, registry: RegistryFile, window: float, reader: Reader = read_cgroup,
                 clock: Callable[[], tuple[float, float]] = lambda: (time.monotonic(), time.time())):
        self.registry, self.window, self.reader, self.clock = registry, window, reader, clock
        self.samples: dict[str, deque[Sample]] = {}
        self.lock = threading.Lock()

    def tick(self) -> None:
        names = self.registry.get().cgroups()
        fresh = {}
        for name in names:
            try:
                cpu, mem = self.reader(name)
            except (OSError, ValueError, KeyError):
                continue  # group gone or not yet made: no metrics, like a pod not yet scraped
            mono, wall = self.clock()
            fresh[name] = Sample(mono, wall, cpu, mem)
        with self.lock:
            self.samples = {n: self._append(n, s) for n, s in fresh.items()}

    def _append(self, name: str, s: Sample) -> deque[Sample]:
        q = self.samples.get(name, deque())
        if q and s.cpu_ns < q[-1].cpu_ns:
            q = deque()  # counter went back: the group was recreated
        q.append(s)
        while len(q) > 2 and s.mono - q[1].mono >= self.window:
            q.popleft()  # q[0] stays the latest sample at least `window` old
        return q

    def usage(self, name: str) -> Usage | None:
        with self.lock:
            q = self.samples.get(name)
            if not q or len(q) < 2:
                return None
            first, last = q[0], q[-1]
        dt = last.mono - first.mono
        if dt <= 0:
            return None
        rate = (last.cpu_ns - first.cpu_ns) / dt
        return Usage(last.wall, int(dt * 1e9), int(rate), last.mem)

    def run(self, interval: float, stop: threading.Event) -> None:
        while not stop.is_set():
            self.tick()
            stop.wait(interval)


# -- the API objects --------------------------------------------------------------------

def _meta(name: str, now: float, namespace: str | None = None, labels: dict | None = None) -> dict:
    meta = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["creationTimestamp"] = rfc3339(now)
    if labels:
        meta["labels"] = dict(labels)
    return meta


def _usage(u: Usage) -> dict:
    return {"cpu": cpu_quantity(u.nanocores), "memory": memory_quantity(u.memory)}


def node_metrics(name: str, u: Usage, now: float, labels: dict | None = None) -> dict:
    return {"metadata": _meta(name, now, labels=labels), "timestamp": rfc3339(u.timestamp),
            "window": go_duration(u.window_ns), "usage": _usage(u)}


def pod_metrics(pod: PodEntry, u: Usage, now: float) -> dict:
    return {"metadata": _meta(pod.name, now, pod.namespace, pod.labels),
            "timestamp": rfc3339(u.timestamp), "window": go_duration(u.window_ns),
            "containers": [{"name": pod.container, "usage": _usage(u)}]}


def metrics_list(kind: str, items: list[dict]) -> dict:
    return {"kind": f"{kind}List", "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}


def single(kind: str, item: dict) -> dict:
    return {"kind": kind, "apiVersion": GROUP_VERSION, **item}


def _version_entry() -> dict:
    return {"groupVersion": GROUP_VERSION, "version": VERSION}


def api_group() -> dict:
    return {"kind": "APIGroup", "apiVersion": "v1", "name": GROUP,
            "versions": [_version_entry()], "preferredVersion": _version_entry()}


def api_group_list() -> dict:
    group = api_group()
    del group["kind"], group["apiVersion"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}


def api_resource_list() -> dict:
    def res(name: str, kind: str, namespaced: bool) -> dict:
        return {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
                "verbs": ["get", "list"]}
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION,
            "resources": [res("nodes", "NodeMetrics", False), res("pods", "PodMetrics", True)]}


OPENAPI_V2 = {"swagger": "2.0", "info": {"title": "rap-local metrics", "version": VERSION},
              "paths": {}, "definitions": {}}


def match_labels(selector: str, labels: dict) -> bool:
    """Equality-based label selectors: a=b, a==b, a!=b, a, !a (comma = and)."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        m = re.fullmatch(r"([^!=\s]+)\s*(==|=|!=)\s*(\S*)", term)
        if m:
            key, op, value = m.groups()
            if (labels.get(key) == value) != (op != "!="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


# -- the metrics API, independent of HTTP -------------------------------------------------

class MetricsAPI:
    """Answers GET paths with (status code, JSON object); the HTTP layer is thin."""

    def __init__(self, registry: RegistryFile, sampler: Sampler, failing: bool = False):
        self.registry, self.sampler, self.failing = registry, sampler, failing

    def get(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict]:
        now = time.time()
        static = {"/apis": api_group_list, f"/apis/{GROUP}": api_group, PREFIX: api_resource_list}
        if path.rstrip("/") in static:
            return 200, static[path.rstrip("/")]()
        if not path.startswith(PREFIX + "/"):
            return 404, status(404, "NotFound", f"the server could not find the requested resource ({path})")
        if self.failing:
            return 503, status(503, "ServiceUnavailable",
                               "the metrics source is failing (rap-local fault injection)")
        selector = (query.get("labelSelector") or [""])[0]
        return self._resource(path[len(PREFIX):].strip("/").split("/"), selector, now)

    def _resource(self, parts: list[str], selector: str, now: float) -> tuple[int, dict]:
        if parts == ["nodes"]:
            return 200, metrics_list("NodeMetrics", self._nodes(now))
        if len(parts) == 2 and parts[0] == "nodes":
            return self._one("NodeMetrics", "nodes", parts[1], self._nodes(now, parts[1]))
        if parts == ["pods"]:
            return 200, metrics_list("PodMetrics", self._pods(now, None, selector))
        if len(parts) == 3 and parts[0] == "namespaces" and parts[2] == "pods":
            return 200, metrics_list("PodMetrics", self._pods(now, parts[1], selector))
        if len(parts) == 4 and parts[0] == "namespaces" and parts[2] == "pods":
            return self._one("PodMetrics", "pods", parts[3], self._pods(now, parts[1], "", parts[3]))
        return 404, status(404, "NotFound", f"the server could not find the requested resource ({'/'.join(parts)})")

    @staticmethod
    def _one(kind: str, resource: str, name: str, items: list[dict]) -> tuple[int, dict]:
        if items:
            return 200, single(kind, items[0])
        return 404, status(404, "NotFound", f"{resource}.{GROUP} \"{name}\" not found")

    def _nodes(self, now: float, only: str | None = None) -> list[dict]:
        items = []
        for name, cgroup in sorted(self.registry.get().nodes.items()):
            u = self.sampler.usage(cgroup) if only in (None, name) else None
            if u:
                items.append(node_metrics(name, u, now))
        return items

    def _pods(self, now: float, namespace: str | None, selector: str, only: str | None = None) -> list[dict]:
        items = []
        for pod in sorted(self.registry.get().pods.values(), key=lambda p: (p.namespace, p.name)):
            if namespace not in (None, pod.namespace) or only not in (None, pod.name):
                continue
            if selector and not match_labels(selector, pod.labels):
                continue
            u = self.sampler.usage(pod.cgroup)
            if u:
                items.append(pod_metrics(pod, u, now))
        return items


# -- HTTPS --------------------------------------------------------------------------------

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
        if path in ("/healthz", "/readyz", "/livez") or path.startswith(("/healthz/", "/readyz/", "/livez/")):
            return self._send(200, "ok")
        if path == "/openapi/v2":
            return self._send(200, OPENAPI_V2)
        if path == "/control/fail":
            return self._send(200, {"failing": self.api.failing})
        self._send(*self.api.get(path, parse_qs(url.query)))

    do_HEAD = do_GET

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        url = urlsplit(self.path)
        if url.path != "/control/fail":
            return self._send(405, status(405, "MethodNotAllowed", f"POST {url.path}: the metrics API is read-only"))
        on = (parse_qs(url.query).get("on") or [""])[0].lower()
        if on not in ("1", "0", "true", "false"):
            return self._send(400, {"error": "POST /control/fail?on=1 (fail) or on=0 (recover)"})
        self.api.failing = on in ("1", "true")
        self._send(200, {"failing": self.api.failing})


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


def self_signed(hosts: list[str]) -> tuple[bytes, bytes]:
    """A throwaway serving certificate (the APIService skips TLS verification)."""
    import datetime as dt
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rap-metrics")])
    sans = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def tls_context(cert: str | None, key: str | None, hosts: list[str]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert and key:
        ctx.load_cert_chain(cert, key)
        return ctx
    cert_pem, key_pem = self_signed(hosts)
    with tempfile.TemporaryDirectory() as tmp:  # ssl loads only from files
        cpath, kpath = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
        cpath.write_bytes(cert_pem)
        kpath.write_bytes(key_pem)
        ctx.load_cert_chain(cpath, kpath)
    return ctx


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
          tls: bool = True, failing: bool = False, reader: Reader = read_cgroup) -> MetricsServer:
    """Start sampling and serving in background threads (the CLI and tests both use this)."""
    reg = RegistryFile(registry)
    sampler = Sampler(reg, window, reader)
    api = MetricsAPI(reg, sampler, failing)
    handler = type("BoundHandler", (Handler,), {"api": api})
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    http = type("Server", (TLSServer,), {"address_family": family})((host, port), handler)
    http.context = tls_context(cert, key, ["localhost", "127.0.0.1", host,
                                           "rap-metrics.kube-system.svc"]) if tls else None
    stop = threading.Event()
    sampler.tick()  # the first sample now, so the first rate is one interval away
    threads = [threading.Thread(target=sampler.run, args=(interval, stop), daemon=True, name="sampler"),
               threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                                name="https")]
    for t in threads:
        t.start()
    return MetricsServer(http, api, stop, threads)


# -- objects the cluster code POSTs ---------------------------------------------------------

MANAGED_BY = {"app.kubernetes.io/managed-by": "rap-local"}


def apiservice(service_namespace: str = "kube-system", service_name: str = "rap-metrics",
               port: int = 443) -> dict:
    """The APIService that makes kube-apiserver proxy metrics.k8s.io/v1beta1 to us."""
    return {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": f"{VERSION}.{GROUP}", "labels": dict(MANAGED_BY)},
            "spec": {"group": GROUP, "version": VERSION,
                     "service": {"namespace": service_namespace, "name": service_name, "port": port},
                     "insecureSkipTLSVerify": True, "groupPriorityMinimum": 100, "versionPriority": 100}}


def service_objects(ip: str, port: int, service_namespace: str = "kube-system",
                    service_name: str = "rap-metrics", service_port: int = 443) -> tuple[dict, dict]:
    """A selectorless Service and its Endpoints pointing at this server (ip:port).

    kube-apiserver needs --enable-aggregator-routing=true to dial the endpoint
    directly (no kube-proxy runs beside it); the port names must match.
    """
    meta = {"name": service_name, "namespace": service_namespace, "labels": dict(MANAGED_BY)}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": meta,
           "spec": {"ports": [{"name": "https", "port": service_port, "protocol": "TCP", "targetPort": port}]}}
    eps = {"apiVersion": "v1", "kind": "Endpoints", "metadata": dict(meta),
           "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}
    return svc, eps


def apiservice_yaml(**kwargs) -> str:
    """The APIService as YAML (JSON is YAML; no extra dependency)."""
    return json.dumps(apiservice(**kwargs), indent=2) + "\n"


# -- the command line ----------------------------------------------------------------------

def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python3 -m rap.localcluster.metrics", description=__doc__.split("\n")[0])
    p.add_argument("--registry", required=True, help="JSON file the cluster code writes (see write_registry)")
    p.add_argument("--listen", default="127.0.0.1:4443", help="host:port to serve HTTPS on")
    p.add_argument("--cert", help="PEM serving certificate (default: a self-signed one)")
    p.add_argument("--key", help="PEM key for --cert")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between cgroup samples")
    p.add_argument("--window", type=float, default=5.0, help="longest span a CPU rate is taken over (s)")
    p.add_argument("--fail", action="store_true", help="start failing (503); SIGUSR1 toggles")
    args = p.parse_args(argv)
    if bool(args.cert) != bool(args.key):
        p.error("--cert and --key go together")
    if not 0 < args.interval <= args.window:
        p.error("need 0 < --interval <= --window")
    host, sep, port = args.listen.rpartition(":")
    if not sep or not port.isdigit():
        p.error(f"--listen {args.listen!r}: want host:port, e.g. 10.213.0.1:4443")
    args.host, args.port = host.strip("[]"), int(port)
    return args


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    try:
        server = start(args.registry, args.host, args.port, interval=args.interval, window=args.window,
                       cert=args.cert, key=args.key, failing=args.fail)
    except OSError as e:
        print(f"metrics: cannot listen on {args.listen}: {e.strerror or e}", file=sys.stderr)
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGUSR1, lambda *_: setattr(server.api, "failing", not server.api.failing))
    # The bound port, so a caller that passed port 0 learns it from this line.
    print(f"metrics: serving {PREFIX} on https://{args.host}:{server.port} from {args.registry}", flush=True)
    while not done.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
