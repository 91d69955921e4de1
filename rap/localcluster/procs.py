"""Background processes of the local cluster: started detached, found again by a mark.

Every process gets ``RAP_LOCAL_CLUSTER=<runtime dir>`` in its environment.
``local-down`` finds them by that mark in /proc, so it can stop everything even
after an interrupted ``local-up`` that never wrote its pid files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Mapping, Sequence

MARK = "RAP_LOCAL_CLUSTER"


def start(runtime: Path, name: str, cmd: Sequence[str], *, netns: str | None = None,
          env: Mapping[str, str] | None = None) -> int:
    logs = runtime / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {}), MARK: str(runtime)}
    argv = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    with open(logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    pids = runtime / "pids"
    pids.mkdir(exist_ok=True)
    (pids / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def log_path(runtime: Path, name: str) -> Path:
    return runtime / "logs" / f"{name}.log"


def recorded(runtime: Path) -> dict[str, int]:
    pids = runtime / "pids"
    if not pids.is_dir():
        return {}
    return {p.stem: int(p.read_text()) for p in pids.glob("*.pid")}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False


def marked(runtime: Path) -> list[int]:
    """Every live process carrying this cluster's mark."""
    needle = f"{MARK}={runtime}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def stop(runtime: Path, name: str, timeout: float = 5.0) -> None:
    pid = recorded(runtime).get(name)
    if pid is not None:
        _terminate([pid], timeout)
        (runtime / "pids" / f"{name}.pid").unlink(missing_ok=True)


def stop_all(runtime: Path, timeout: float = 5.0) -> list[int]:
    pids = sorted(set(marked(runtime)) | {p for p in recorded(runtime).values() if alive(p)})
    pids = [p for p in pids if p != os.getpid()]
    _terminate(pids, timeout)
    for pidfile in (runtime / "pids").glob("*.pid") if (runtime / "pids").is_dir() else []:
        pidfile.unlink()
    return pids


def _terminate(pids: list[int], timeout: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.05)
        _reap(pids)
        if not any(alive(p) for p in pids):
            return


def _reap(pids: list[int]) -> None:
    # Children of this process would stay zombies (and "alive" to ps) until waited.
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
