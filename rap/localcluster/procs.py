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
    found = {}
    for p in pids.glob("*.pid"):
        try:
            found[p.stem] = int(p.read_text())
        except FileNotFoundError:
            continue  # stopped (by another thread) between the listing and the read
    return found


def alive(pid: int) -> bool:
    """Running (not a zombie). rsplit: a command name may itself contain ") "."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
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
        terminate([pid], timeout)
        (runtime / "pids" / f"{name}.pid").unlink(missing_ok=True)


def stop_all(runtime: Path, timeout: float = 5.0) -> list[int]:
    pids = sorted(set(marked(runtime)) | {p for p in recorded(runtime).values() if alive(p)})
    pids = [p for p in pids if p != os.getpid()]
    terminate(pids, timeout)
    for pidfile in (runtime / "pids").glob("*.pid") if (runtime / "pids").is_dir() else []:
        pidfile.unlink()
    return pids


def terminate(pids, timeout_per_signal: float) -> None:
    """SIGTERM, then SIGKILL to what is left after ``timeout_per_signal``; reaps our own children."""
    pids = set(pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout_per_signal
        while True:
            _reap(pids)
            pids = {p for p in pids if alive(p)}
            if not pids or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if not pids:
            return


def _reap(pids) -> None:
    # Children of this process would stay zombies (and "alive" to ps) until waited.
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
