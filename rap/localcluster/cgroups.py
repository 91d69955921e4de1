"""Cgroups of the local cluster: one group per node, one per pod beneath it.

Groups are named by a path relative to each hierarchy's root, e.g.
``rap-local/node-1/pod-1-1``; the same name works in every hierarchy (cgroup v1
keeps cpu, cpuacct and memory as separate trees) and in cgroup v2. The project
parent (``rap-local``, or ``rap-test-<pid>`` in tests) sits at the hierarchy
root rather than under the caller's own cgroup, so every process (local-up,
the metrics server, a later local-down) resolves a name to the same directory.

A node group's usage includes its pods' (both versions account hierarchically),
which is what the metrics server reports as the node's usage.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rap.errors import UserError
from rap.localcluster import procs

V1_CONTROLLERS = ("cpu", "cpuacct", "memory")
V2_CONTROLLERS = ("cpu", "memory")
DEFAULT_PERIOD_US = 100_000
MIN_QUOTA_US = 1_000  # the kernel refuses a smaller cfs quota


class CgroupError(UserError, RuntimeError):
    """A cgroup operation failed; the message names the controller, path and fix."""


@dataclass(frozen=True)
class Layout:
    """Where the hierarchies are mounted: v1 maps controller -> mount, v2 has one."""

    version: int
    mounts: tuple[tuple[str, Path], ...]  # (controller, mount point)

    def mount(self, controller: str) -> Path:
        return dict(self.mounts)[controller]

    def roots(self) -> list[Path]:
        """Distinct mount points (co-mounted cpu,cpuacct count once)."""
        return sorted({m for _, m in self.mounts})


def _parse_mounts(text: str) -> tuple[dict[str, Path], list[Path]]:
    v1: dict[str, Path] = {}
    v2: list[Path] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        mount, fstype, opts = Path(fields[1]), fields[2], fields[3].split(",")
        if fstype == "cgroup":
            for c in V1_CONTROLLERS:
                if c in opts:
                    v1.setdefault(c, mount)
        elif fstype == "cgroup2":
            v2.append(mount)
    return v1, v2


def _v2_controllers(mount: Path) -> set[str]:
    try:
        return set((mount / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


def detect(mounts_text: str | None = None) -> Layout:
    """Find cpu, cpuacct and memory (v1), else cpu and memory on a cgroup2 mount."""
    if mounts_text is None:
        mounts_text = Path("/proc/self/mounts").read_text()
    v1, v2 = _parse_mounts(mounts_text)
    if all(c in v1 for c in V1_CONTROLLERS):
        return Layout(1, tuple((c, v1[c]) for c in V1_CONTROLLERS))
    for mount in v2:
        if set(V2_CONTROLLERS) <= _v2_controllers(mount):
            return Layout(2, tuple((c, mount) for c in V2_CONTROLLERS))
    raise CgroupError(_missing_message(v1, v2))


def _missing_message(v1: dict[str, Path], v2: list[Path]) -> str:
    missing = [c for c in V1_CONTROLLERS if c not in v1]
    found_v2 = "; ".join(f"the cgroup2 mount at {m} offers [{' '.join(sorted(_v2_controllers(m)))}]"
                         for m in v2) or "no cgroup2 mount"
    c = missing[0]
    return (f"cgroup controller {c!r} not found: no cgroup v1 hierarchy with {c!r} in "
            f"/proc/self/mounts (looked for e.g. /sys/fs/cgroup/{c}), and {found_v2} "
            f"(needs {' and '.join(V2_CONTROLLERS)} in cgroup.controllers). Fix: "
            f"`mount -t cgroup -o {c} cgroup /sys/fs/cgroup/{c}` (as root), or boot with cgroup v2 "
            f"and the {' and '.join(V2_CONTROLLERS)} controllers enabled")


@lru_cache(maxsize=1)
def layout() -> Layout:
    """This machine's layout, detected once per process."""
    return detect()


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as e:
        raise CgroupError(f"cannot write {value!r} to {path}: {e.strerror}") from e


def _read_kv(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


@dataclass(frozen=True)
class Cgroup:
    """A group by name (``rap-local/node-1/pod-1-1``) in every needed hierarchy."""

    name: str
    layout: Layout

    def __post_init__(self) -> None:
        parts = self.name.strip("/").split("/")
        if not self.name.strip("/") or any(p in ("", ".", "..") for p in parts):
            raise CgroupError(f"bad cgroup name {self.name!r}: want a relative path like rap-local/node-1")
        object.__setattr__(self, "name", "/".join(parts))

    def dir(self, controller: str) -> Path:
        return self.layout.mount(controller) / self.name

    def dirs(self) -> list[Path]:
        return [root / self.name for root in self.layout.roots()]

    def child(self, name: str) -> "Cgroup":
        return Cgroup(f"{self.name}/{name}", self.layout)

    def exists(self) -> bool:
        return any(d.is_dir() for d in self.dirs())

    # -- lifecycle ---------------------------------------------------------

    def create(self) -> "Cgroup":
        """Make the group (and its parents) in every hierarchy; idempotent."""
        for root in self.layout.roots():
            if self.layout.version == 2:
                self._create_v2(root)
            else:
                _mkdirs(root / self.name)
        return self

    def _create_v2(self, root: Path) -> None:
        # v2 only gives a child a controller its parent enabled in subtree_control.
        current = root
        for part in self.name.split("/"):
            _write(current / "cgroup.subtree_control", " ".join(f"+{c}" for c in V2_CONTROLLERS))
            current = current / part
            _mkdirs(current)

    def remove(self, timeout: float = 5.0) -> None:
        """Kill every process in the subtree, then remove the groups deepest first."""
        if not self.exists():
            return
        # Half the timeout for SIGTERM, half for SIGKILL.
        procs.terminate(self.pids(recursive=True) - {os.getpid()}, timeout / 2)
        self._evict(self.pids(recursive=True))
        for d in self._subtree_dirs():
            _rmdir(d, timeout)

    def _subtree_dirs(self) -> list[Path]:
        dirs = []
        for top in self.dirs():
            if top.is_dir():
                dirs += [Path(p) for p, _, _ in os.walk(top, topdown=False)]
        return dirs

    def _evict(self, pids: set[int]) -> None:
        # What would not die (or is the caller itself) moves to the root so rmdir works.
        for pid in pids:
            for root in self.layout.roots():
                try:
                    (root / "cgroup.procs").write_text(str(pid))
                except OSError:
                    pass  # it exited meanwhile

    # -- limits and membership ---------------------------------------------

    def set_cpu_limit(self, cpus: float | None, period_us: int = DEFAULT_PERIOD_US) -> None:
        """Cap CPU at ``cpus`` cores (CFS quota/period); None removes the cap."""
        if cpus is not None and cpus <= 0:
            raise CgroupError(f"CPU limit for {self.name} must be > 0 cores, got {cpus}")
        quota = None if cpus is None else max(MIN_QUOTA_US, round(cpus * period_us))
        if self.layout.version == 2:
            _write(self.dir("cpu") / "cpu.max", f"{quota or 'max'} {period_us}")
            return
        d = self.dir("cpu")
        try:
            (d / "cpu.cfs_period_us").write_text(str(period_us))
            (d / "cpu.cfs_quota_us").write_text(str(quota or -1))
        except OSError as e:
            raise CgroupError(f"cannot set a CPU limit of {cpus} cores on {d}: {e.strerror}"
                              + (" (in cgroup v1 a child's quota may not exceed its parent's)"
                                 if e.errno == errno.EINVAL else "")) from e

    def set_memory_limit(self, limit_bytes: int | None) -> None:
        """Cap memory at ``limit_bytes``; None removes the cap."""
        if self.layout.version == 2:
            _write(self.dir("memory") / "memory.max", str(limit_bytes or "max"))
        else:
            _write(self.dir("memory") / "memory.limit_in_bytes", str(limit_bytes or -1))

    def set_cpu_weight(self, shares: int) -> None:
        """Relative CPU weight against sibling groups (v1 cpu.shares scale, default 1024)."""
        if self.layout.version == 2:
            weight = max(1, min(10000, 1 + (shares - 2) * 9999 // 262142))
            _write(self.dir("cpu") / "cpu.weight", str(weight))
        else:
            _write(self.dir("cpu") / "cpu.shares", str(shares))

    def add_pid(self, pid: int) -> None:
        """Move a process (all its threads) into the group in every hierarchy."""
        for d in self.dirs():
            _write(d / "cgroup.procs", str(pid))

    def enter(self) -> None:
        """Move the calling process in; usable as ``preexec_fn`` (no locks taken)."""
        for d in self.dirs():
            fd = os.open(d / "cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

    def pids(self, recursive: bool = False) -> set[int]:
        found: set[int] = set()
        for top in self.dirs():
            walk = os.walk(top) if recursive else [(str(top), [], [])]
            for d, _, _ in walk:
                try:
                    found |= {int(p) for p in Path(d, "cgroup.procs").read_text().split()}
                except FileNotFoundError:
                    continue
        return found

    # -- usage ---------------------------------------------------------------

    def cpu_usage_ns(self) -> int:
        """Cumulative CPU time of the group and its children, in nanoseconds."""
        if self.layout.version == 2:
            return _read_kv(self.dir("cpu") / "cpu.stat")["usage_usec"] * 1000
        return int((self.dir("cpuacct") / "cpuacct.usage").read_text())

    def throttling(self) -> dict[str, int]:
        """cpu.stat: nr_periods, nr_throttled and throttled time (v1 ns, v2 usec)."""
        return _read_kv(self.dir("cpu") / "cpu.stat")

    def memory_bytes(self) -> int:
        """Working set (usage minus inactive file cache), as metrics-server reports."""
        d = self.dir("memory")
        if self.layout.version == 2:
            usage = int((d / "memory.current").read_text())
            inactive = _read_kv(d / "memory.stat").get("inactive_file", 0)
        else:
            usage = int((d / "memory.usage_in_bytes").read_text())
            inactive = _read_kv(d / "memory.stat").get("total_inactive_file", 0)
        return max(0, usage - inactive)


def _mkdirs(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CgroupError(f"cannot create cgroup {path}: {e.strerror} (needs root)") from e


def _rmdir(path: Path, timeout: float) -> None:
    # A just-killed task can keep the group busy for a moment after it exits.
    deadline = time.monotonic() + timeout
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise CgroupError(f"cannot remove cgroup {path}: {e.strerror}") from e
            time.sleep(0.05)


# -- the functions the cluster code calls -------------------------------------

def group(name: str) -> Cgroup:
    """The group ``name`` on this machine (not created)."""
    return Cgroup(name, layout())


def create(name: str, cpus: float | None = None, memory_bytes: int | None = None) -> Cgroup:
    """Create ``name`` (and parents) with optional CPU (cores) and memory limits."""
    cg = group(name).create()
    try:
        cg.set_cpu_limit(cpus)
        cg.set_memory_limit(memory_bytes)
    except CgroupError:
        cg.remove()
        raise
    return cg


def remove(name: str, timeout: float = 5.0) -> None:
    """Remove ``name`` and everything under it, killing its processes; no-op if absent."""
    group(name).remove(timeout)
