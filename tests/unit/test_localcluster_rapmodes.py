"""The two RAP proxy kinds (classic "rap", "rap-adaptive"): one build, one argv, RAP_MODE from the table.

No cluster: proxy_env and start_proxy with the process calls faked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rap.config import FIELDS
from rap.localcluster import cluster, procs, proxykinds, state
from rap.localcluster.config import ClusterConfig, ClusterConfigError

ST = state.ClusterState(kubeconfig="/run/k.kubeconfig", cluster_ip="10.215.0.7")


def _env(kind: str, **conf) -> dict[str, str]:
    return cluster.proxy_env(ClusterConfig(proxy=kind, **conf), ST, 2)


@pytest.mark.parametrize("kind, mode", [("rap", "classic"), ("rap-adaptive", "adaptive")])
def test_each_rap_kind_names_its_decision_rule_explicitly(kind, mode):
    env = _env(kind)
    assert env[FIELDS["mode"].env] == mode
    assert FIELDS["mode"].env == "RAP_MODE" and mode in FIELDS["mode"].choices


def test_classic_does_not_lean_on_the_tables_default():
    # The table's default is adaptive today; "rap" must be the paper's rule whatever it is.
    assert FIELDS["mode"].default == "adaptive"
    assert proxykinds.kind("rap").rap_mode == "classic"


def test_the_env_names_are_the_tables():
    env = _env("rap-adaptive", rap_period_s=2.5)
    assert env == {"RAP_KUBECONFIG": "/run/proxy-node-2.kubeconfig", "RAP_NODE_NAME": "node-2",
                   FIELDS["period_s"].env: "2.5", FIELDS["rtt_port"].env: str(FIELDS["rtt_port"].default),
                   FIELDS["monitor"].env: "node", FIELDS["mode"].env: "adaptive"}


def test_the_monitor_reaches_both_proxies():
    c = ClusterConfig(proxy="rap", rap_monitor="aggregator")
    assert cluster.proxy_env(c, ST, 2)[FIELDS["monitor"].env] == "aggregator"
    argv = cluster.proxy_argv(ClusterConfig(proxy="python", rap_monitor="aggregator"), ST, 1, None, Path("/run/rt"))
    assert argv[argv.index("--monitor") + 1] == "aggregator"


def test_a_monitor_outside_the_table_is_refused():
    with pytest.raises(ClusterConfigError, match="--monitor"):
        ClusterConfig(rap_monitor="central")


def test_the_python_proxy_gets_no_mode():
    assert FIELDS["mode"].env not in _env("python")


def test_a_kind_with_a_mode_outside_the_table_is_refused(monkeypatch):
    bad = proxykinds.ProxyKind("rap", "x", build="rap", mode="userspace", rap_env=True, rap_mode="greedy")
    monkeypatch.setitem(proxykinds.KINDS, "rap", bad)
    with pytest.raises(ValueError, match="mode"):
        _env("rap")


def test_both_rap_kinds_run_the_same_kube_proxy_the_same_way():
    classic, adaptive = proxykinds.kind("rap"), proxykinds.kind("rap-adaptive")
    assert (classic.build, classic.mode, classic.rap_env) == (adaptive.build, adaptive.mode, adaptive.rap_env)
    argv = {k: cluster.proxy_argv(ClusterConfig(proxy=k), ST, 1, Path("/opt/kp"), Path("/run/rt"))
            for k in ("rap", "rap-adaptive")}
    assert argv["rap"] == argv["rap-adaptive"] and "--proxy-mode=userspace" in argv["rap"]
    assert {k.rap_mode for k in proxykinds.KINDS.values() if k.build == "rap"} == {"classic", "adaptive"}


def test_local_up_accepts_rap_adaptive():
    from rap.localcluster.options import option_help, parse_options

    assert parse_options(proxy="rap-adaptive").proxy == "rap-adaptive"
    assert "rap-adaptive: " in option_help()["proxy"]


@pytest.mark.parametrize("kind, mode", [("rap", "classic"), ("rap-adaptive", "adaptive"), ("stock", None)])
def test_start_proxy_hands_the_mode_to_rap_kinds_only(monkeypatch, kind, mode):
    started = {}
    monkeypatch.setattr(procs, "start", lambda runtime, name, argv, netns=None, env=None:
                        started.update(name=name, env=env) or 4242)
    monkeypatch.setattr(cluster, "join_node_cgroup", lambda i, pid: None)
    cluster.start_proxy(Path("/run/rt"), ClusterConfig(proxy=kind), ST, 3, Path("/opt/kp"))
    assert started["name"] == "proxy-3"
    assert started["env"].get("RAP_MODE") == mode
    assert bool(started["env"]) == (mode is not None)


def test_switching_between_the_rap_kinds_cleans_with_the_rap_build(monkeypatch):
    calls = []
    monkeypatch.setattr(cluster, "_local_kube_proxy", lambda build: Path(f"/out/kube-proxy-{build}"))
    monkeypatch.setattr(cluster, "quiet", lambda cmd, netns=None: calls.append(cmd) or True)
    monkeypatch.setattr(cluster, "_sweep_kube_chains", lambda family, netns: None)
    cluster.cleanup_proxy("rap-adaptive", 1)
    assert calls == [["/out/kube-proxy-rap", "--cleanup"]]


def test_the_python_proxy_runs_the_mode_asked_for():
    argv = cluster.proxy_argv(ClusterConfig(proxy="python", python_mode="classic"), ST, 1, None, Path("/run/rt"))
    assert argv[argv.index("--rap-mode") + 1] == "classic"
    assert "--rap-mode" not in cluster.proxy_argv(ClusterConfig(proxy="python"), ST, 1, None, Path("/run/rt"))
    with pytest.raises(ClusterConfigError, match="python_mode"):
        ClusterConfig(python_mode="greedy")
