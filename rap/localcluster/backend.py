"""A backend pod of the local cluster: an HTTP/1.1 server that burns CPU per request.

    python3 -m rap.localcluster.backend --port 8080 --name pod-1-1 --node node-1 --cpu-ms 5

Each request spins until its thread has used ``cpu-ms`` of CPU time (thread
CPU time, not wall time), so under a cgroup CPU limit a saturated pod answers
more slowly, as a real CPU-bound service would.

    GET  /anything          burn the cost, answer JSON {"pod", "node", "cpu_ms", ...}
                            (``?format=text`` answers "pod node\\n"); headers
                            X-Pod and X-Node name the server; X-Cost-Ms overrides
                            the cost for this one request
    GET  /healthz           "ok", no cost
    GET  /cost, POST /cost?ms=50      read or set the per-request cost
    POST /memory?mb=100     hold that much memory (0 frees it), for memory tests

SIGTERM or SIGINT: stop accepting, exit 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_COST_MS = 60_000.0


class State:
    """What the handlers share: identity, the current cost, the memory ballast."""

    def __init__(self, name: str, node: str, cpu_ms: float) -> None:
        self.name, self.node = name, node
        self.cpu_ms = cpu_ms
        self.ballast = b""
        self.served = 0
        self.lock = threading.Lock()


def burn(cpu_ms: float) -> None:
    """Spin until this thread has used ``cpu_ms`` of CPU (throttling stretches the wall time)."""
    end = time.thread_time() + cpu_ms / 1000.0
    x = 0
    while time.thread_time() < end:
        for i in range(500):  # cheap work between clock reads
            x += i * i


def _cost(value: str | None) -> float:
    cost = float(value)  # ValueError -> 400
    if not 0 <= cost <= MAX_COST_MS:
        raise ValueError(f"cost must be in [0, {MAX_COST_MS}] ms")
    return cost


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer carries Content-Length
    server_version = "rap-backend"
    state: State  # set on the subclass made in serve()

    def log_message(self, fmt: str, *args) -> None:
        pass  # one line per request would dominate the pod's CPU and the logs

    def _send(self, code: int, body: str, ctype: str = "application/json") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Pod", self.state.name)
        self.send_header("X-Node", self.state.node)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, code: int, obj: dict) -> None:
        self._send(code, json.dumps(obj) + "\n")

    def _drain_body(self) -> None:
        # Unread request bodies would be parsed as the next request on keep-alive.
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def do_GET(self) -> None:
        self._drain_body()
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/healthz":
            return self._send(200, "ok\n", "text/plain")
        if url.path == "/cost":
            return self._json(200, {"pod": self.state.name, "cpu_ms": self.state.cpu_ms})
        try:
            header = self.headers.get("X-Cost-Ms")
            cost = _cost(header) if header is not None else self.state.cpu_ms
        except ValueError as e:
            return self._json(400, {"error": f"X-Cost-Ms: {e}"})
        self._serve(cost, query.get("format", ["json"])[0])

    do_HEAD = do_GET

    def _serve(self, cost: float, fmt: str) -> None:
        start = time.monotonic()
        burn(cost)
        with self.state.lock:
            self.state.served += 1
            served = self.state.served
        if fmt == "text":
            return self._send(200, f"{self.state.name} {self.state.node}\n", "text/plain")
        self._json(200, {"pod": self.state.name, "node": self.state.node, "cpu_ms": cost,
                         "wall_ms": round((time.monotonic() - start) * 1000, 3),
                         "served": served, "client": self.client_address[0]})

    def do_POST(self) -> None:
        self._drain_body()
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        try:
            if url.path == "/cost":
                self.state.cpu_ms = _cost(query["ms"][0])
                return self._json(200, {"pod": self.state.name, "cpu_ms": self.state.cpu_ms})
            if url.path == "/memory":
                mb = int(query["mb"][0])
                if not 0 <= mb <= 65536:
                    raise ValueError("mb must be in [0, 65536]")
                self.state.ballast = b"\1" * (mb << 20)  # touched, so it is resident
                return self._json(200, {"pod": self.state.name, "memory_mb": mb})
        except (KeyError, ValueError) as e:
            return self._json(400, {"error": f"{url.path}: bad or missing parameter: {e}"})
        self._json(404, {"error": f"no POST {url.path}"})


class Server(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not block exit
    request_queue_size = 256  # a load burst queues instead of being refused


def serve(host: str, port: int, state: State) -> Server:
    handler = type("BoundHandler", (Handler,), {"state": state})
    return Server((host, port), handler)


def _stop_on_signals(server: Server) -> None:
    # shutdown() waits for serve_forever(), which runs in this (the main) thread.
    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python3 -m rap.localcluster.backend", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--name", required=True, help="pod name, echoed in every answer")
    p.add_argument("--node", required=True, help="node name, echoed in every answer")
    p.add_argument("--cpu-ms", type=float, default=5.0, help="CPU time each request burns (ms)")
    p.add_argument("--cgroup", help="join this cgroup (e.g. rap-local/node-1/pod-1-1) before serving")
    args = p.parse_args(argv)
    if not 0 <= args.cpu_ms <= MAX_COST_MS:
        p.error(f"--cpu-ms must be in [0, {MAX_COST_MS}]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.cgroup:
        from rap.localcluster import cgroups
        try:
            cgroups.group(args.cgroup).enter()
        except (OSError, cgroups.CgroupError) as e:
            print(f"backend {args.name}: cannot join cgroup {args.cgroup} (create it first): {e}", file=sys.stderr)
            return 2
    try:
        server = serve(args.host, args.port, State(args.name, args.node, args.cpu_ms))
    except OSError as e:
        print(f"backend {args.name}: cannot listen on {args.host}:{args.port}: {e.strerror}", file=sys.stderr)
        return 2
    _stop_on_signals(server)
    # The bound port, so a caller that passed --port 0 learns it from this line.
    print(f"backend {args.name} on {args.node} listening on {args.host}:{server.server_address[1]}", flush=True)
    with server:
        server.serve_forever(poll_interval=0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
