"""local-up as one step list: the actions in order, one printer, teardown of what was made on a failure.

Nothing here creates a namespace or starts a process: the actions are fakes.
"""

from __future__ import annotations

import io

import pytest

from rap.localcluster import cluster, state, steps
from rap.localcluster.config import ClusterConfig
from rap.status import Status


def test_the_actions_in_order():
    assert [a.run.__name__ for a in steps.ACTIONS] == [
        "certificates", "network", "control_plane", "nodes", "metrics_server", "backend_pods", "proxies",
        "service_answers"]


def test_titles_name_what_the_steps_make():
    st = state.ClusterState(cluster_ip="10.96.0.10")
    ctx = steps.Context(None, ClusterConfig(nodes=2, proxy="stock", rtt_ms={(1, 2): 10.0}), {}, st)
    titles = [a.title(ctx) for a in steps.ACTIONS]
    assert titles[1] == "network: bridge rap0 and 2 node namespaces"
    assert titles[3] == "nodes: Node objects, RTT listeners, cgroups, inter-node delay"
    assert titles[5] == "backend pods: node-1=2, node-2=2"
    assert titles[6] == "proxies: stock on every node"
    assert titles[7] == "waiting until the Service 10.96.0.10:80 answers from every node"
    ctx.config = ClusterConfig(nodes=2)
    assert steps.ACTIONS[3].title(ctx) == "nodes: Node objects, RTT listeners, cgroups"


def _fakes(log: list, fail_at: str | None = None) -> tuple[steps.Action, ...]:
    def make(name):
        def act(ctx):
            log.append(name)
            if name == fail_at:
                raise OSError(f"{name} broke")
        act.__name__ = name
        return steps.Action(lambda ctx: f"the {name}", act)

    return tuple(make(n) for n in ("first", "second", "third"))


def test_run_prints_each_step_then_runs_it_and_stops_at_the_first_failure():
    out, log = io.StringIO(), []
    with pytest.raises(OSError, match="second broke"):
        steps.run(steps.Context(None, ClusterConfig(), {}, None), Status("local-up", out), _fakes(log, "second"))
    assert log == ["first", "second"]
    assert out.getvalue().splitlines() == ["[local-up] step 1/3 the first", "[local-up] step 2/3 the second"]


@pytest.fixture
def fake_up(monkeypatch, tmp_path):
    """cluster.up with preflight, namespaces, log keeping and teardown faked; the runtime in tmp_path."""
    calls = {"teardown": [], "saved": []}
    monkeypatch.setattr(cluster, "preflight", lambda c: {"kube-apiserver": tmp_path / "kube-apiserver"})
    monkeypatch.setattr(cluster.netns, "existing_namespaces", lambda: [])
    monkeypatch.setattr(cluster, "_keep_logs", lambda runtime: tmp_path / "kept-logs")
    monkeypatch.setattr(cluster, "teardown", lambda runtime, say: calls["teardown"].append(runtime) or [])
    real_save = state.save
    monkeypatch.setattr(state, "save", lambda runtime, st: calls["saved"].append(st.phase) or real_save(runtime, st))
    return tmp_path / "runtime", calls


def test_up_runs_the_actions_and_keeps_the_state(fake_up, monkeypatch, capsys):
    runtime, calls = fake_up
    log: list = []
    monkeypatch.setattr(steps, "ACTIONS", _fakes(log))
    st = cluster.up(ClusterConfig(nodes=2), runtime)
    assert log == ["first", "second", "third"] and calls["teardown"] == []
    assert st.nodes == ["node-1", "node-2"] and state.load(runtime).nodes == ["node-1", "node-2"]
    assert calls["saved"][0] == "starting"  # the state file exists before anything is made
    assert capsys.readouterr().out.splitlines() == [f"[local-up] step {i}/3 the {n}"
                                                    for i, n in enumerate(("first", "second", "third"), 1)]


def test_a_failed_step_tears_down_what_was_made(fake_up, monkeypatch, capsys):
    runtime, calls = fake_up
    log: list = []
    monkeypatch.setattr(steps, "ACTIONS", _fakes(log, "second"))
    with pytest.raises(cluster.LocalClusterError, match="local-up failed and was rolled back: second broke"):
        cluster.up(ClusterConfig(nodes=2), runtime)
    assert log == ["first", "second"] and calls["teardown"] == [runtime]
    err = capsys.readouterr().err.splitlines()
    assert err == ["[local-up] failed: second broke", "[local-up] cleaning up what was made...",
                   f"[local-up] the logs of the failed start are kept in {runtime.parent / 'kept-logs'}"]


def test_a_clear_error_is_raised_as_it_is(fake_up, monkeypatch):
    runtime, calls = fake_up

    def refuse(ctx):
        raise cluster.LocalClusterError("the Service does not answer")

    monkeypatch.setattr(steps, "ACTIONS", (steps.Action(lambda ctx: "wait", refuse),))
    with pytest.raises(cluster.LocalClusterError, match="^the Service does not answer$"):
        cluster.up(ClusterConfig(), runtime)
    assert calls["teardown"] == [runtime]


@pytest.mark.parametrize("proxy, policies", [("local-only", ["Local"]), ("iptables", []), ("rap", [])])
def test_backend_pods_set_the_services_traffic_policy_for_the_kinds_that_need_it(monkeypatch, tmp_path, proxy,
                                                                                 policies):
    from rap.localcluster import objects, workload

    set_to = []
    monkeypatch.setattr(workload, "start_pod", lambda runtime, c, api, i, k: {"name": f"web-{i}-{k}"})
    monkeypatch.setattr(cluster, "write_metrics_registry", lambda runtime, st: None)
    monkeypatch.setattr(cluster, "pod_spec", lambda c, p: p["name"])
    monkeypatch.setattr(state, "save", lambda runtime, st: None)
    monkeypatch.setattr(objects, "create_service", lambda api: "10.215.0.9")
    monkeypatch.setattr(objects, "set_endpoints", lambda api, pods: None)
    monkeypatch.setattr(objects, "set_traffic_policy", lambda api, policy: set_to.append(policy))
    ctx = steps.Context(tmp_path, ClusterConfig(nodes=1, proxy=proxy), {}, state.ClusterState())
    ctx.api = object()
    steps.backend_pods(ctx)
    assert set_to == policies and ctx.state.cluster_ip == "10.215.0.9"
