"""HAProxy's runtime API: one command per connection to the admin socket.

One command per connection keeps every answer apart (batched commands answer
with replies that cannot be told apart); the socket is local, so a connection
costs microseconds.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Callable

from rap.localcluster.haproxy.errors import HaproxyError

# How `set server` says it worked; anything else is HAProxy's error text.
_OK_PREFIXES = ("IP changed from", "no need to change", "port changed from")


class AdminSocket:
    def __init__(self, path: Path, timeout_s: float = 2.0) -> None:
        self.path = path
        self.timeout_s = timeout_s

    def command(self, line: str) -> str:
        """Send one command; HAProxy's whole answer (it closes the connection after it)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(self.timeout_s)
            try:
                s.connect(str(self.path))
                s.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
            except OSError as e:
                raise HaproxyError(f"haproxy's admin socket {self.path}: {e.strerror or e} (is haproxy running?)")
        return b"".join(chunks).decode(errors="replace")

    def set(self, line: str) -> None:
        """A `set server` command; an answer that is not a success is an error."""
        answer = self.command(line).strip()
        if answer and not answer.startswith(_OK_PREFIXES):
            raise HaproxyError(f"haproxy refused `{line}`: {answer.splitlines()[0]}")

    def wait_ready(self, timeout_s: float, alive: Callable[[], bool]) -> None:
        """Until the socket answers; fails at once when haproxy has exited."""
        deadline = time.monotonic() + timeout_s
        while True:
            if not alive():
                raise HaproxyError("haproxy exited while starting; its messages are in this log")
            try:
                self.command("show info")
                return
            except HaproxyError:
                if time.monotonic() > deadline:
                    raise HaproxyError(f"haproxy's admin socket {self.path} did not answer in {timeout_s:.0f}s")
                time.sleep(0.05)

    def servers(self, backend: str) -> dict[str, tuple[str, int, bool]]:
        """``show servers state``: name -> (address, port, serving), for tests and checks."""
        out = {}
        for line in self.command(f"show servers state {backend}").splitlines():
            f = line.split()
            if len(f) < 19 or not f[0].isdigit():
                continue  # the format version line and the header
            # Serving: operational state 2 (running) and no maintenance bit among the admin
            # state's forced (0x01), inherited (0x02) and resolution (0x20) ones; 0x04 only
            # records that the configuration started the server disabled.
            out[f[3]] = (f[4], int(f[18]), int(f[5]) == 2 and not int(f[6]) & 0x23)
        return out
