"""The agent's life: start haproxy, keep its servers equal to the endpoints, redirect, stop.

Order matters for clients: the redirect goes in only after the first sync, so
a connection to the ClusterIP never meets an HAProxy without servers while
endpoints exist; on the way out it goes first, so no new connection reaches an
HAProxy that is stopping. The rule is removed on every exit the agent sees;
after a SIGKILL, cluster.py's cleanup removes it, and haproxy, started with
PR_SET_PDEATHSIG, dies with the agent instead of living on unsupervised.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rap.localcluster.haproxy import binary, redirect
from rap.localcluster.haproxy.config import Settings, render
from rap.localcluster.haproxy.endpoints import ServiceEndpoints
from rap.localcluster.haproxy.errors import HaproxyError
from rap.localcluster.haproxy.runtime import AdminSocket
from rap.localcluster.haproxy.sync import Syncer

log = logging.getLogger("rap.haproxy")

PR_SET_PDEATHSIG = 1
START_TIMEOUT_S = 10
SOFT_STOP_S = 3.0  # haproxy's hard-stop-after (2 s) ends a soft stop before this


@dataclass(frozen=True)
class Options:
    kubeconfig: str
    cluster_ip: str
    port: int
    balance: str
    workdir: Path
    listen_port: int
    slots: int
    poll_s: float
    haproxy: str


class _Stop(Exception):
    """SIGTERM/SIGINT arrived while the agent was waiting (for the API or the next round)."""


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_haproxy(path: str, config: Path) -> subprocess.Popen:
    # -db: stay in the foreground, so this process is haproxy's parent and sees it exit.
    return subprocess.Popen([path, "-db", "-f", str(config)], stdin=subprocess.DEVNULL,
                            preexec_fn=_die_with_parent)


def stop_haproxy(proc: subprocess.Popen) -> None:
    """Soft stop (running connections finish), then SIGTERM, then SIGKILL."""
    for sig, wait_s in ((signal.SIGUSR1, SOFT_STOP_S), (signal.SIGTERM, 1.0), (signal.SIGKILL, 1.0)):
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


class Agent:
    def __init__(self, o: Options) -> None:
        self.o = o
        self.settings = Settings(o.balance, socket=o.workdir / "admin.sock", listen_port=o.listen_port,
                                 slots=o.slots)
        self.stopping = False
        self._waiting = False

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True
        if self._waiting:
            raise _Stop()

    def run(self) -> int:
        """0 after SIGTERM/SIGINT; raises HaproxyError when haproxy or its rule fails."""
        from kubernetes import config as kubeconfig

        path = binary.find(self.o.haproxy)
        log.info("HAProxy %s, balance %s, listening on %s:%d", binary.version(path), self.o.balance,
                 self.settings.listen_address, self.settings.listen_port)
        try:
            api_client = kubeconfig.new_client_from_config(config_file=self.o.kubeconfig)
        except Exception as e:  # noqa: BLE001 - the client raises several kinds; all mean a bad file
            raise HaproxyError(f"--kubeconfig {self.o.kubeconfig}: not a usable kubeconfig ({_short(e)})") from None
        self.o.workdir.mkdir(parents=True, exist_ok=True)
        config = self.o.workdir / "haproxy.cfg"
        config.write_text(render(self.settings))
        self.settings.socket.unlink(missing_ok=True)  # a stale socket would answer nothing
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        proc = start_haproxy(path, config)
        try:
            admin = AdminSocket(self.settings.socket)
            admin.wait_ready(START_TIMEOUT_S, lambda: proc.poll() is None)
            self._loop(proc, Syncer(admin, self.o.slots), ServiceEndpoints(api_client, self.o.cluster_ip,
                                                                               self.o.port))
        except _Stop:
            pass
        finally:
            self._waiting = False
            redirect.cleanup()
            stop_haproxy(proc)
        log.info("stopped; rule removed, haproxy exited with %s", proc.returncode)
        return 0

    def _loop(self, proc: subprocess.Popen, syncer: Syncer, source: ServiceEndpoints) -> None:
        redirected = False
        problem: str | None = None  # the last state logged ("" is fine), so a lasting one is logged once
        while not self.stopping:
            started = time.monotonic()
            if proc.poll() is not None:
                raise HaproxyError(f"haproxy exited with code {proc.returncode}; its messages are in this log")
            try:
                self._waiting = True
                targets = source.fetch()
            except _Stop:
                raise
            except Exception as e:  # noqa: BLE001 - keep serving the last known endpoints
                targets, now = None, f"cannot read the Endpoints ({_short(e)}); serving the last known ones"
            else:
                now = "" if targets is not None else (f"no Service has ClusterIP {self.o.cluster_ip} port "
                                                      f"{self.o.port} yet; waiting")
            finally:
                self._waiting = False
            if now != problem:
                (log.warning if now else log.info)("%s", now or f"reading the Endpoints of {source.name}")
                problem = now
            if targets is not None:
                syncer.apply(targets)
                if not redirected:
                    redirect.install(self.o.cluster_ip, self.o.port, self.settings.listen_address,
                                     self.settings.listen_port)
                    redirected = True
                    log.info("redirecting %s:%d to %s:%d", self.o.cluster_ip, self.o.port,
                             self.settings.listen_address, self.settings.listen_port)
            self._waiting = True
            if not self.stopping:
                time.sleep(max(0.0, self.o.poll_s - (time.monotonic() - started)))
            self._waiting = False


def _short(err: BaseException) -> str:
    from rap.pyproxy.monitor import _short as short

    return short(err)
