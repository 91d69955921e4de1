"""What a running local cluster is: its runtime folder and state file.

The state file is written before anything is created and updated as parts
come up, so ``local-status`` and ``local-down`` know what exists even after a
failed or interrupted ``local-up``.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator


def runtime_dir() -> Path:
    return Path(os.environ.get("RAP_LOCAL_DIR", "/run/rap-local"))


@dataclass
class ClusterState:
    phase: str = "starting"  # starting | up | failed
    proxy: str = ""
    nodes: list[str] = field(default_factory=list)
    cluster_ip: str = ""
    kubeconfig: str = ""
    api_url: str = ""
    pods: list[dict] = field(default_factory=list)  # {name, node, ip, netns, cgroup}
    # Highest pod number used per node: a new pod never reuses a removed one's
    # namespace, veth or address while the kernel may still be tearing it down.
    pod_serial: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    error: str = ""


def state_path(runtime: Path) -> Path:
    return runtime / "state.json"


def load(runtime: Path) -> ClusterState | None:
    path = state_path(runtime)
    if not path.exists():
        return None
    return ClusterState(**json.loads(path.read_text()))


def save(runtime: Path, state: ClusterState) -> None:
    """Write the whole state, under the state-file lock (see ``change``)."""
    with _file_lock(runtime):
        _write(runtime, state)


def _write(runtime: Path, state: ClusterState) -> None:
    runtime.mkdir(parents=True, exist_ok=True)
    tmp = state_path(runtime).with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(state_path(runtime))


@contextmanager
def locked(runtime: Path) -> Iterator[None]:
    """One local-up/local-down at a time on this machine."""
    runtime.mkdir(parents=True, exist_ok=True)
    with open(runtime.parent / f".{runtime.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(
                f"another local-up or local-down is running on {runtime}; wait for it to finish"
            ) from None
        yield


@contextmanager
def _file_lock(runtime: Path) -> Iterator[None]:
    # Blocking, unlike ``locked``: a change waits its turn for the few milliseconds another takes.
    # Beside the runtime folder, so teardown's removal of the folder cannot drop it mid-change.
    runtime.parent.mkdir(parents=True, exist_ok=True)
    with open(runtime.parent / f".{runtime.name}.state.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextmanager
def change(runtime: Path) -> Iterator[ClusterState]:
    """Read, change and write the state file as one step: two changers at once (a pod added while
    another is removed) each see the other's write, so neither update is lost."""
    with _file_lock(runtime):
        st = load(runtime)
        if st is None:
            raise RuntimeError(f"no state file in {runtime}: no local cluster is up")
        yield st
        _write(runtime, st)
