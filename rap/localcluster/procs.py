"""Background processes of the local cluster: started detached, found again by a mark.

Every process gets ``RAP_LOCAL_CLUSTER=<runtime dir>`` in its environment.
``local-down`` finds them by that mark in /proc, so it can stop everything even
after an interrupted ``local-up`` that never wrote its pid files.

A pid file holds the pid and the process's start time (field 22 of
/proc/<pid>/stat): a pid is signalled only while it is still that process, so a
pid the kernel has since given to another program is never killed.
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
    (pids / f"{name}.pid").write_text(f"{proc.pid} {start_time(proc.pid)}")
    return proc.pid


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # rsplit: a command name may itself contain ") "; field 22 is the 20th after it.
            return int(f.read().rsplit(") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _read_pidfile(path: Path) -> tuple[int, int | None] | None:
    try:
        fields = path.read_text().split()
    except FileNotFoundError:
        return None  # stopped (by another thread) between the listing and the read
    if not fields:
        return None
    return int(fields[0]), (int(fields[1]) if len(fields) > 1 and fields[1] != "None" else None)


def log_path(runtime: Path, name: str) -> Path:
    return runtime / "logs" / f"{name}.log"


def recorded(runtime: Path) -> dict[str, int]:
    pids = runtime / "pids"
    if not pids.is_dir():
        return {}
    return {name: pid for name, (pid, _) in identities(runtime).items()}


def identities(runtime: Path) -> dict[str, tuple[int, int | None]]:
    """Per name, the recorded pid and start time (None from a pid file of an older version)."""
    pids = runtime / "pids"
    if not pids.is_dir():
        return {}
    found = {}
    for p in pids.glob("*.pid"):
        entry = _read_pidfile(p)
        if entry is not None:
            found[p.stem] = entry
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
    entry = identities(runtime).get(name)
    if entry is not None:
        pid, started = entry
        terminate([pid], timeout, expected=_expected(runtime, {pid: started}))
        (runtime / "pids" / f"{name}.pid").unlink(missing_ok=True)


def _expected(runtime: Path, recorded_starts: dict[int, int | None]) -> dict[int, int | None]:
    """What each pid's start time must be to be signalled: the recorded one, or, with none recorded,
    the current one if the process carries this cluster's mark (else nothing matches)."""
    out = {}
    for pid, started in recorded_starts.items():
        if started is None and _has_mark(pid, runtime):
            started = start_time(pid)
        out[pid] = started if started is not None else -1
    return out


def _has_mark(pid: int, runtime: Path) -> bool:
    try:
        return f"{MARK}={runtime}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def stop_all(runtime: Path, timeout: float = 5.0) -> list[int]:
    expected = {p: start_time(p) for p in marked(runtime)}  # the mark is the identity here
    for pid, started in identities(runtime).values():
        if pid not in expected:
            expected.update(_expected(runtime, {pid: started}))
    expected = {p: s for p, s in expected.items() if p != os.getpid() and s is not None
                and start_time(p) == s and alive(p)}
    pids = sorted(expected)
    terminate(pids, timeout, expected=expected)
    for pidfile in (runtime / "pids").glob("*.pid") if (runtime / "pids").is_dir() else []:
        pidfile.unlink()
    return pids


def terminate(pids, timeout_per_signal: float, expected: dict[int, int | None] | None = None) -> None:
    """SIGTERM, then SIGKILL to what is left after ``timeout_per_signal``; reaps our own children.

    A pid is signalled only while its start time is ``expected[pid]`` (default: the one it has
    now, so a pid reused between the two signals is left alone)."""
    pids = set(pids)
    expected = dict(expected) if expected is not None else {p: start_time(p) for p in pids}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = {p for p in pids if expected.get(p) is not None and start_time(p) == expected[p]}
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout_per_signal
        while True:
            _reap(pids)
            pids = {p for p in pids if alive(p) and start_time(p) == expected[p]}
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
