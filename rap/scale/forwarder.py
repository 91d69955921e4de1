"""A TCP forwarder that counts the bytes one process exchanges with kube-apiserver.

Each measured RAP process gets its own: its monitor's kubeconfig names the
forwarder's address (the API server's own address, another port, so the
server certificate still matches) and the forwarder relays the TLS stream
unchanged to the API server, counting bytes each way. That is the process's
traffic on the wire, watches and TLS included, which kube-apiserver's own
metrics cannot split by client. Listens only on the address it is given
(the local cluster's bridge, reached from the node namespaces). Not a proxy
that reads anything: bytes pass through opaque.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass


@dataclass
class Counts:
    to_server: int = 0
    to_client: int = 0
    connections: int = 0


class CountingForwarder:
    """``listen`` (host, port 0 for any) -> ``upstream`` (host, port); ``counts()`` so far; ``stop()``."""

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._counts = Counts()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.create_server(listen, reuse_port=False)
        self._sock.settimeout(0.5)
        self._conns: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, daemon=True, name=f"forwarder-{self.port}")
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return self._sock.getsockname()[:2]

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1]

    def counts(self) -> Counts:
        with self._lock:
            return Counts(self._counts.to_server, self._counts.to_client, self._counts.connections)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                up = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                conn.close()
                continue
            up.settimeout(None)
            conn.settimeout(None)
            with self._lock:
                self._counts.connections += 1
                self._conns.update((conn, up))
            threading.Thread(target=self._pipe, args=(conn, up, "to_server"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, conn, "to_client"), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, field: str) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                with self._lock:
                    setattr(self._counts, field, getattr(self._counts, field) + len(data))
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=2)
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for s in conns:
            try:
                s.close()
            except OSError:
                pass
