"""rap.localcluster.haproxy without root or a cluster: a real haproxy on loopback driven through its
runtime API, and the agent's life (start, sync, redirect, stop, haproxy dying) with a fake API source."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rap.localcluster.haproxy import agent, config
from rap.localcluster.haproxy.errors import HaproxyError
from rap.localcluster.haproxy.runtime import AdminSocket
from rap.localcluster.haproxy.sync import Syncer

needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy (scripts/install.sh)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Backends:
    """Loopback HTTP servers that answer their own name."""

    def __init__(self, names):
        self.servers = []
        for name in names:
            class Handler(BaseHTTPRequestHandler):
                def do_GET(self, name=name):
                    body = name.encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body)

                def log_message(self, *a):
                    pass

            srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            self.servers.append(srv)
        self.targets = [("127.0.0.1", s.server_address[1]) for s in self.servers]

    def close(self):
        for s in self.servers:
            s.shutdown()
            s.server_close()


def _get(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[1].decode() if b"\r\n\r\n" in data else ""


@pytest.fixture
def haproxy(tmp_path):
    port = _free_port()
    settings = config.Settings("leastconn", socket=tmp_path / "admin.sock", listen_port=port, slots=4)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(config.render(settings))
    proc = agent.start_haproxy(shutil.which("haproxy"), cfg)
    admin = AdminSocket(settings.socket)
    try:
        admin.wait_ready(10, lambda: proc.poll() is None)
        yield port, admin, proc
    finally:
        agent.stop_haproxy(proc)


@needs_haproxy
def test_runtime_commands_move_traffic_without_a_reload(haproxy):
    port, admin, proc = haproxy
    backends = _Backends(["one", "two"])
    try:
        syncer = Syncer(admin, slots=4)
        syncer.apply(backends.targets)
        assert {_get(port) for _ in range(10)} == {"one", "two"}
        serving = admin.servers(config.BACKEND)
        assert sorted(serving[f"s{k}"] for k in (1, 2)) == sorted((*t, True) for t in backends.targets)
        assert not serving["s3"][2] and not serving["s4"][2]
        syncer.apply(backends.targets[1:])
        assert {_get(port) for _ in range(6)} == {"two"}
        gone = syncer.slots.index(None) + 1
        assert [t[2] for t in admin.servers(config.BACKEND).values()].count(True) == 1
        assert not admin.servers(config.BACKEND)[f"s{gone}"][2]
        assert proc.poll() is None  # the same process throughout
    finally:
        backends.close()


@needs_haproxy
def test_a_refused_command_is_an_error_naming_it(haproxy):
    _, admin, _ = haproxy
    with pytest.raises(HaproxyError, match=r"refused `set server service/s9 state ready`: No such server"):
        admin.set("set server service/s9 state ready")
    with pytest.raises(HaproxyError, match="Invalid addr"):
        admin.set("set server service/s1 addr not-an-ip port 1")


def test_a_socket_nobody_listens_on_is_an_error(tmp_path):
    with pytest.raises(HaproxyError, match=r"admin socket .*none.sock: No such file or directory \(is haproxy running\?\)"):
        AdminSocket(tmp_path / "none.sock").command("show info")


# -- the agent's life, with a fake API and a recorded rule --


class _Source:
    """Stands in for ServiceEndpoints: hands out ``rounds`` one per call, then runs ``then``."""

    def __init__(self, rounds, then):
        self.rounds, self.then, self.calls = list(rounds), then, 0
        self.name = "default/web"

    def fetch(self):
        self.calls += 1
        if self.rounds:
            return self.rounds.pop(0)
        self.then()
        return None


class _AgentRun:
    """Runs the agent in-process with a fake API source; records the rule calls and the haproxy it starts."""

    def __init__(self, tmp_path, monkeypatch):
        self.tmp_path, self.monkeypatch = tmp_path, monkeypatch
        self.events: list = []
        self.started: list = []
        monkeypatch.setattr("kubernetes.config.new_client_from_config", lambda **kw: object())
        monkeypatch.setattr(agent.redirect, "install", lambda *a: self.events.append(("install", a)))
        monkeypatch.setattr(agent.redirect, "cleanup", lambda *a: self.events.append(("cleanup", a)))
        real_start = agent.start_haproxy
        monkeypatch.setattr(agent, "start_haproxy",
                            lambda *a: self.started.append(real_start(*a)) or self.started[-1])

    def run(self, rounds, then) -> int:
        source = _Source(rounds, then)
        self.monkeypatch.setattr(agent, "ServiceEndpoints", lambda *a: source)
        kubeconfig = self.tmp_path / "kubeconfig"
        kubeconfig.write_text("{}")
        opts = agent.Options(kubeconfig=str(kubeconfig), cluster_ip="10.215.0.10", port=80, balance="random(2)",
                             workdir=self.tmp_path / "work", listen_port=_free_port(), slots=4, poll_s=0.05,
                             haproxy="haproxy")
        return agent.Agent(opts).run()


@pytest.fixture
def agent_run(tmp_path, monkeypatch):
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield _AgentRun(tmp_path, monkeypatch)
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def backend():
    b = _Backends(["one"])
    yield b
    b.close()


@needs_haproxy
def test_sigterm_removes_the_rule_stops_haproxy_and_returns_0(agent_run, backend):
    rc = agent_run.run([None, backend.targets], lambda: os.kill(os.getpid(), signal.SIGTERM))
    assert rc == 0
    # No rule while no Service is known; one after the first sync; removed on the way out.
    assert [e[0] for e in agent_run.events] == ["install", "cleanup"]
    assert agent_run.events[0][1][:3] == ("10.215.0.10", 80, "127.0.0.1")
    assert agent_run.started[0].poll() is not None


@needs_haproxy
def test_haproxy_dying_is_an_error_and_still_removes_the_rule(agent_run, backend):
    def kill_haproxy():
        agent_run.started[0].kill()
        agent_run.started[0].wait(5)

    with pytest.raises(HaproxyError, match="haproxy exited with code -9"):
        agent_run.run([backend.targets], kill_haproxy)
    assert [e[0] for e in agent_run.events] == ["install", "cleanup"]
