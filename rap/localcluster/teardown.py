"""local-down: remove everything local-up made, whatever state it was left in.

Cleanup works from names and marks, not only from the state file: every
namespace starts with ``rap-``, every link is ``rap0`` or ``rapn<i>``, every
process carries the cluster's mark, every cgroup sits under the project's
parent, so an interrupted local-up is cleaned up as fully as a finished one.
Every iptables rule the cluster adds lives in a node namespace (kube-proxy's,
the Python proxy's, netdelay's), so it goes with its namespace.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rap.localcluster import netns, procs


def teardown(runtime: Path, say=print) -> list[str]:
    removed: list[str] = []
    pids = procs.stop_all(runtime)
    if pids:
        removed.append(f"{len(pids)} processes")
    removed += netns.teardown()
    removed += _cgroups()
    if runtime.exists():
        shutil.rmtree(runtime, ignore_errors=True)
        removed.append(f"runtime folder {runtime}")
    for item in removed:
        say(f"  removed {item}")
    return removed


def _cgroups() -> list[str]:
    from rap.localcluster import cgroups
    from rap.localcluster.workload import CGROUP_PARENT

    if not cgroups.group(CGROUP_PARENT).exists():
        return []
    cgroups.remove(CGROUP_PARENT)
    return [f"cgroup {CGROUP_PARENT}"]
