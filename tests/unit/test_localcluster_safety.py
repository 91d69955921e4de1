"""The local cluster's safety: only its own processes are signalled, state changes never lose
an update, and a failed local-up tears down even when keeping its logs fails."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from rap.localcluster import cluster, netdelay, netns, procs, state, steps, teardown
from rap.localcluster.config import ClusterConfig


@pytest.fixture
def child():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _record(runtime, name, pid, started):
    (runtime / "pids").mkdir(parents=True, exist_ok=True)
    (runtime / "pids" / f"{name}.pid").write_text(f"{pid} {started}")


def test_the_start_time_is_field_22_and_differs_between_processes(child):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.05)
        with open(f"/proc/{child.pid}/stat") as f:
            assert procs.start_time(child.pid) == int(f.read().split()[21])
        assert procs.start_time(other.pid) >= procs.start_time(child.pid)
    finally:
        other.kill()
        other.wait()
    assert procs.start_time(other.pid) is None


def test_a_reused_pid_is_never_signalled_by_stop(tmp_path, child):
    _record(tmp_path, "proxy-1", child.pid, procs.start_time(child.pid) + 1)  # "an earlier process"
    procs.stop(tmp_path, "proxy-1", timeout=0.2)
    time.sleep(0.3)  # a signal, had one been sent, has had its effect
    assert child.poll() is None, "a pid whose start time differs from the recorded one was signalled"
    assert not (tmp_path / "pids" / "proxy-1.pid").exists()


def test_a_reused_pid_is_never_signalled_by_stop_all(tmp_path, child):
    _record(tmp_path, "proxy-1", child.pid, procs.start_time(child.pid) + 1)
    assert procs.stop_all(tmp_path, timeout=0.2) == []
    time.sleep(0.3)
    assert child.poll() is None


def test_the_recorded_process_itself_is_stopped(tmp_path, child):
    _record(tmp_path, "proxy-1", child.pid, procs.start_time(child.pid))
    procs.stop(tmp_path, "proxy-1", timeout=2)
    assert child.wait(2) is not None


def test_an_old_pid_file_without_start_time_stops_only_a_marked_process(tmp_path, child):
    (tmp_path / "pids").mkdir()
    (tmp_path / "pids" / "a.pid").write_text(str(child.pid))  # unmarked: not ours
    procs.stop(tmp_path, "a", timeout=0.2)
    time.sleep(0.3)
    assert child.poll() is None
    pid = procs.start(tmp_path, "b", [sys.executable, "-c", "import time; time.sleep(60)"])
    (tmp_path / "pids" / "b.pid").write_text(str(pid))  # marked, so ours
    procs.stop(tmp_path, "b", timeout=2)
    assert not procs.alive(pid)


def test_terminate_leaves_a_pid_whose_start_time_changed_alone(child):
    procs.terminate([child.pid], 0.2, expected={child.pid: procs.start_time(child.pid) - 1})
    time.sleep(0.3)
    assert child.poll() is None


def test_two_concurrent_changers_lose_no_update(tmp_path):
    state.save(tmp_path, state.ClusterState(phase="up"))
    inside = threading.Barrier(2, timeout=5)

    def add(name):
        try:
            inside.wait()  # both start together
        except threading.BrokenBarrierError:
            pass
        with state.change(tmp_path) as st:
            time.sleep(0.2)  # long enough for the other to read the same state without the lock
            st.pods.append({"name": name})

    threads = [threading.Thread(target=add, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(p["name"] for p in state.load(tmp_path).pods) == ["a", "b"]


def test_a_change_without_a_cluster_names_it(tmp_path):
    with pytest.raises(RuntimeError, match="no local cluster is up"):
        with state.change(tmp_path):
            pass


def test_a_failed_up_tears_down_even_when_keeping_the_logs_fails(monkeypatch, tmp_path):
    runtime = tmp_path / "rt"
    started, calls = [], []
    monkeypatch.setattr(cluster, "preflight", lambda c: {})
    monkeypatch.setattr(netns, "existing_namespaces", lambda: [])
    monkeypatch.setattr(netns, "teardown", lambda: calls.append("netns") or [])
    monkeypatch.setattr(teardown, "_cgroups", lambda: calls.append("cgroups") or [])
    monkeypatch.setattr(netdelay, "remove", lambda nodes: calls.append("netdelay") or [])

    def failing_steps(ctx, status):
        started.append(procs.start(ctx.runtime, "etcd", [sys.executable, "-c", "import time; time.sleep(60)"]))
        raise RuntimeError("the API server did not start")

    def failing_copy(runtime):
        raise OSError("No space left on device")

    monkeypatch.setattr(steps, "run", failing_steps)
    monkeypatch.setattr(cluster, "_keep_logs", failing_copy)
    with pytest.raises(cluster.LocalClusterError, match="rolled back: the API server did not start"):
        cluster.up(ClusterConfig(nodes=2), runtime)
    assert not procs.alive(started[0])
    assert not runtime.exists()
    assert calls == ["netdelay", "netns", "cgroups"]
