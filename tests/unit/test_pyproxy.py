"""rap.pyproxy without root or a cluster: API JSON -> specs and snapshots, rules, options, relay on loopback."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone

import pytest

from rap.config import RapConfig
from rap.policies import AFFINITY_CLIENT_IP, AFFINITY_NONE, Endpoint, make_policy
from rap.pyproxy import cli
from rap.pyproxy.iptables import CONTAINER_CHAIN, HOST_CHAIN, Redirect, chains_text, jump_args
from rap.pyproxy.monitor import Monitor, Stamps, node_addresses, node_usage_by_name, pod_usage_by_ip
from rap.pyproxy.relay import Proxier
from rap.pyproxy.services import PortSpec, port_specs
from rap.snapshot import Usage

# -- Services + Endpoints -> PortSpec --


def _svc(name, ip, ports, ns="default", **spec):
    return {"metadata": {"namespace": ns, "name": name}, "spec": {"clusterIP": ip, "ports": ports, **spec}}


def _eps(name, subsets, ns="default"):
    return {"metadata": {"namespace": ns, "name": name}, "subsets": subsets}


def test_port_specs_named_and_unnamed_ports():
    services = {"items": [
        _svc("web", "10.215.0.10", [{"port": 80, "protocol": "TCP"}]),
        _svc("multi", "10.215.0.11", [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"},
                                      {"name": "admin", "port": 9000}]),
    ]}
    endpoints = {"items": [
        _eps("web", [{"addresses": [{"ip": "10.214.1.11", "nodeName": "node-1"}, {"ip": "10.214.2.11", "nodeName": "node-2"}],
                      "notReadyAddresses": [{"ip": "10.214.3.11", "nodeName": "node-3"}],
                      "ports": [{"port": 8080, "protocol": "TCP"}]}]),
        _eps("multi", [{"addresses": [{"ip": "10.214.1.12"}], "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9090}]}]),
    ]}
    specs = {s.name: s for s in port_specs(services, endpoints)}
    assert sorted(specs) == ["default/multi:admin", "default/multi:http", "default/web"]  # UDP skipped
    assert specs["default/web"] == PortSpec("default/web", "10.215.0.10", 80, AFFINITY_NONE, 10800, (
        Endpoint("10.214.1.11", 8080, "node-1"), Endpoint("10.214.2.11", 8080, "node-2")))
    assert specs["default/multi:admin"].endpoints == (Endpoint("10.214.1.12", 9090, ""),)


def test_port_specs_skip_headless_and_external_and_keep_services_without_endpoints():
    services = {"items": [
        _svc("headless", "None", [{"port": 80}]),
        _svc("ext", "", [{"port": 80}], type="ExternalName"),
        _svc("lonely", "10.215.0.12", [{"port": 80}]),
    ]}
    assert port_specs(services, {"items": []}) == [PortSpec("default/lonely", "10.215.0.12", 80)]


def test_port_specs_session_affinity():
    services = {"items": [
        _svc("a", "10.215.0.20", [{"port": 80}], sessionAffinity="ClientIP",
             sessionAffinityConfig={"clientIP": {"timeoutSeconds": 30}}),
        _svc("b", "10.215.0.21", [{"port": 80}], sessionAffinity="ClientIP"),
    ]}
    a, b = port_specs(services, {})
    assert (a.affinity, a.ttl_s) == (AFFINITY_CLIENT_IP, 30)
    assert (b.affinity, b.ttl_s) == (AFFINITY_CLIENT_IP, 10800)


# -- metrics JSON -> Snapshot --

PODS = {"items": [
    {"metadata": {"namespace": "default", "name": "p1"},
     "spec": {"containers": [{"resources": {"limits": {"cpu": "250m", "memory": "256Mi"}}}]},
     "status": {"podIP": "10.214.1.11", "podIPs": [{"ip": "10.214.1.11"}]}},
    # requests stand in for missing limits; two containers add up
    {"metadata": {"namespace": "default", "name": "p2"},
     "spec": {"containers": [{"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                             {"resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}]},
     "status": {"podIP": "10.214.2.11"}},
    # a container with no CPU bound: CPU unknown (0), memory still known
    {"metadata": {"namespace": "default", "name": "p3"},
     "spec": {"containers": [{"resources": {"limits": {"memory": "100Mi"}}}]},
     "status": {"podIP": "10.214.2.12"}},
    {"metadata": {"namespace": "kube-system", "name": "hostnet"},
     "spec": {"hostNetwork": True, "containers": [{"resources": {"limits": {"cpu": "1"}}}]},
     "status": {"podIP": "10.213.0.11"}},
]}
POD_METRICS = {"items": [
    {"metadata": {"namespace": "default", "name": "p1"}, "containers": [{"usage": {"cpu": "200000000n", "memory": "128Mi"}}]},
    {"metadata": {"namespace": "default", "name": "p2"},
     "containers": [{"usage": {"cpu": "50m", "memory": "32Mi"}}, {"usage": {"cpu": "50m", "memory": "32Mi"}}]},
    {"metadata": {"namespace": "default", "name": "p3"}, "containers": [{"usage": {"cpu": "1", "memory": "50Mi"}}]},
    {"metadata": {"namespace": "kube-system", "name": "hostnet"}, "containers": [{"usage": {"cpu": "1"}}]},
    {"metadata": {"namespace": "default", "name": "gone"}, "containers": [{"usage": {"cpu": "1"}}]},
]}
NODES = {"items": [
    {"metadata": {"name": f"node-{i}"},
     "status": {"allocatable": {"cpu": "2", "memory": "2Gi"},
                "addresses": [{"type": "Hostname", "address": f"node-{i}"}, {"type": "InternalIP", "address": f"10.213.0.{10 + i}"}]}}
    for i in (1, 2, 3)
]}
NODE_METRICS = {"items": [
    {"metadata": {"name": "node-1"}, "usage": {"cpu": "1500m", "memory": "1Gi"}},
    {"metadata": {"name": "node-2"}, "usage": {"cpu": "500000000n", "memory": "7220Ki"}},
    {"metadata": {"name": "stranger"}, "usage": {"cpu": "1", "memory": "1Gi"}},
]}


def _stamp_log(at):
    """A stamp function answering ``at`` and recording the (key, timestamp) pairs it was asked."""
    asked = []
    return asked, lambda key, timestamp: asked.append((key, timestamp)) or at


def test_pod_usage_by_ip():
    asked, stamp = _stamp_log(7.0)
    usage = pod_usage_by_ip(PODS, _at(POD_METRICS, "T1"), stamp)
    assert ("default/p1", "T1") in asked  # stamped by the metric item's own timestamp
    assert set(usage) == {"10.214.1.11", "10.214.2.11", "10.214.2.12"}
    assert usage["10.214.1.11"] == Usage(pytest.approx(0.8), pytest.approx(0.5), 7.0)
    assert usage["10.214.2.11"] == Usage(pytest.approx(0.5), pytest.approx(0.5), 7.0)
    assert usage["10.214.2.12"] == Usage(0.0, pytest.approx(0.5), 7.0)


def test_node_usage_and_addresses():
    asked, stamp = _stamp_log(3.0)
    usage = node_usage_by_name(NODES, _at(NODE_METRICS, "T2"), stamp)
    assert ("node-1", "T2") in asked
    assert set(usage) == {"node-1", "node-2"}
    assert usage["node-1"] == Usage(pytest.approx(0.75), pytest.approx(0.5), 3.0)
    assert usage["node-2"].cpu == pytest.approx(0.25)
    assert usage["node-2"].mem == pytest.approx(7220 * 1024 / 2**31)
    assert node_addresses(NODES, "node-1") == {"node-2": "10.213.0.12", "node-3": "10.213.0.13"}


def _at(metrics, timestamp, without=()):
    """A metrics list with every item stamped ``timestamp`` and the named items left out."""
    return {"items": [dict(i, timestamp=timestamp, window="30s") for i in metrics["items"]
                      if i["metadata"]["name"] not in without]}


T0 = 1767225600.0  # 2026-01-01T00:00:00Z


def _rfc3339(wall):
    return datetime.fromtimestamp(wall, timezone.utc).isoformat().replace("+00:00", "Z")


class _StubMonitor(Monitor):
    """The real refresh logic over canned API answers; RTT probes go to a closed loopback port."""

    def __init__(self, policy, clock, wall=time.time):
        super().__init__(None, policy, "node-1", period_s=1.0, rtt_port=1, clock=clock, wall=wall)
        self.fail = False
        self.nodes_fail = False
        self.answers = {"pods": POD_METRICS, "nodes": NODE_METRICS}

    def _get_nodes(self):
        if self.nodes_fail:
            raise ConnectionError("API server down")
        nodes = {"items": [dict(n, status=dict(n["status"], addresses=[{"type": "InternalIP", "address": "127.0.0.1"}]))
                           for n in NODES["items"]]}
        return nodes

    def _core_json(self, method, **kwargs):
        assert method == "list_pod_for_all_namespaces"
        return PODS

    def _metrics(self, plural):
        if self.fail:
            raise ConnectionError("metrics API down")
        return self.answers[plural]


def test_monitor_builds_snapshot_and_survives_metrics_failure(caplog):
    now = [100.0]
    policy = make_policy("rap", local_node="node-1", config=RapConfig(period_s=1))
    mon = _StubMonitor(policy, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="rap.pyproxy"):
        snap = mon.refresh()
        assert policy._snapshot is snap  # swapped into the policy
        assert snap.nodes["node-1"].at == 100.0 and snap.pods["10.214.1.11"].cpu == pytest.approx(0.8)
        # loopback port 1 refuses: a round trip all the same, for both other nodes
        assert set(snap.rtt) == {"node-2", "node-3"} and all(r.at == 100.0 for r in snap.rtt.values())
        mon.fail = True
        now[0] = 101.0
        for _ in range(3):
            snap = mon.refresh()
        assert snap.pods["10.214.1.11"].at == 100.0  # old samples kept; the policy ages them out
        assert snap.rtt["node-2"].at == 101.0  # RTT still measured
        mon.fail = False
        mon.refresh()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot read resource metrics" in m for m in messages) == 1  # once per change
    assert sum("resource metrics available" in m for m in messages) == 2


def _clocked_monitor():
    """A stub monitor (stale_after_s 3) whose balancer clock is 100 when the wall clock is T0 + 2."""
    clocks = {"now": 100.0, "wall": T0 + 2}
    policy = make_policy("rap", local_node="node-1", config=RapConfig(period_s=1))
    mon = _StubMonitor(policy, clock=lambda: clocks["now"], wall=lambda: clocks["wall"])
    mon.answers = {"pods": _at(POD_METRICS, _rfc3339(T0)), "nodes": _at(NODE_METRICS, _rfc3339(T0))}
    return mon, clocks


def _tick(clocks, seconds):
    clocks["now"] += seconds
    clocks["wall"] += seconds


def test_monitor_item_missing_from_one_fetch_keeps_its_sample_until_stale():
    mon, clocks = _clocked_monitor()
    snap = mon.refresh()
    assert snap.pods["10.214.1.11"].at == 98.0 and snap.nodes["node-2"].at == 98.0  # the metric's time

    _tick(clocks, 1)  # metrics-server skipped p1 and node-2; the rest is new
    mon.answers = {"pods": _at(POD_METRICS, _rfc3339(T0 + 2.5), without={"p1"}),
                   "nodes": _at(NODE_METRICS, _rfc3339(T0 + 2.5), without={"node-2"})}
    snap = mon.refresh()
    assert snap.pods["10.214.1.11"] == Usage(pytest.approx(0.8), pytest.approx(0.5), 98.0)  # kept, old at
    assert snap.nodes["node-2"].at == 98.0
    assert snap.pods["10.214.2.11"].at == 100.5 and snap.nodes["node-1"].at == 100.5

    _tick(clocks, 1.5)  # 102.5: p1 and node-2 are 4.5 s old, past stale_after_s
    snap = mon.refresh()
    assert "10.214.1.11" not in snap.pods and "node-2" not in snap.nodes
    assert "default/p1" not in mon.pod_stamps and "node-2" not in mon.node_stamps  # memory does not grow
    assert snap.pods["10.214.2.11"].at == 100.5


def test_monitor_failed_fetch_keeps_everything():
    mon, clocks = _clocked_monitor()
    before = mon.refresh()
    _tick(clocks, 1)  # 101: samples at 98 are still fresh
    mon.fail = mon.nodes_fail = True
    after = mon.refresh()
    assert after is not before and mon.policy._snapshot is after
    assert (dict(after.pods), dict(after.nodes), dict(after.rtt)) == (dict(before.pods), dict(before.nodes), dict(before.rtt))
    assert after.pods and after.nodes and after.rtt

    mon.fail = False  # only the node list fails: pods still update, nodes and RTTs keep theirs
    mon.answers["pods"] = _at(POD_METRICS, _rfc3339(T0 + 2.5))
    after = mon.refresh()
    assert after.pods["10.214.1.11"].at == 100.5
    assert after.nodes == before.nodes and after.rtt == before.rtt


def test_monitor_unchanged_timestamp_keeps_at_and_future_is_clamped():
    mon, clocks = _clocked_monitor()
    mon.refresh()
    clocks["now"], clocks["wall"] = 101.0, T0 + 9  # the wall clock stepped; the same measurement
    snap = mon.refresh()
    assert snap.nodes["node-1"].at == 98.0 and snap.pods["10.214.1.11"].at == 98.0
    assert all(r.at == 101.0 for r in snap.rtt.values())  # RTTs keep their own probe time

    mon.answers = {"pods": _at(POD_METRICS, _rfc3339(T0 + 8)), "nodes": _at(NODE_METRICS, _rfc3339(T0 + 8))}
    assert mon.refresh().nodes["node-1"].at == 100.0  # a new timestamp, 1 s before the fetch

    clocks["now"] = 102.0  # metrics-server's clock 60 s ahead of ours
    mon.answers = {"pods": _at(POD_METRICS, _rfc3339(T0 + 69)), "nodes": _at(NODE_METRICS, _rfc3339(T0 + 69))}
    snap = mon.refresh()
    assert snap.nodes["node-1"].at == 102.0 and snap.pods["10.214.1.11"].at == 102.0


def test_stamps():
    stamps = Stamps()
    assert stamps.at("a", "2026-01-01T00:00:00Z", now=50.0, wall=T0 + 10) == 40.0
    assert stamps.at("a", "2026-01-01T00:00:00Z", now=60.0, wall=T0 + 11) == 40.0  # same measurement
    assert stamps.at("a", "2026-01-01T00:00:05.5Z", now=60.0, wall=T0 + 11) == 54.5
    assert stamps.at("b", "2026-01-01T00:01:00Z", now=60.0, wall=T0 + 11) == 60.0  # future: clamped
    assert stamps.at("c", None, now=60.0, wall=T0) == 60.0  # no timestamp: the fetch's
    assert stamps.at("d", "not a time", now=60.0, wall=T0) == 60.0
    stamps.prune(now=57.5, stale_after_s=3.0)  # a is 3.0 s old: still fresh
    assert "a" in stamps and "b" in stamps
    stamps.prune(now=63.1, stale_after_s=3.0)
    assert "a" not in stamps and "b" not in stamps


# -- iptables rules --


def test_chains_text_redirects_host_and_container_traffic():
    text = chains_text([Redirect("default/web", "10.215.0.10", 80, 40001),
                        Redirect("default/a:x", "10.215.0.9", 81, 40002)], "10.213.0.11")
    lines = text.splitlines()
    assert lines[:3] == ["*nat", f":{HOST_CHAIN} - [0:0]", f":{CONTAINER_CHAIN} - [0:0]"] and lines[-1] == "COMMIT"
    assert lines[3] == (f'-A {HOST_CHAIN} -d 10.215.0.9/32 -p tcp --dport 81 -m comment --comment "rap-local default/a:x"'
                        " -j DNAT --to-destination 10.213.0.11:40002")  # sorted by ClusterIP
    assert sum(l.startswith(f"-A {CONTAINER_CHAIN} -d 10.215.0.10/32 -p tcp --dport 80") and
               l.endswith("--to-destination 10.213.0.11:40001") for l in lines) == 1
    assert len(lines) == 3 + 4 + 1
    assert chains_text([], "10.213.0.11").count("-A ") == 0


def test_jump_rules_are_tagged():
    assert jump_args("OUTPUT", HOST_CHAIN) == ["OUTPUT", "-m", "comment", "--comment", "rap-local", "-j", HOST_CHAIN]


# -- options --

BASE = ["--node", "node-1", "--bind-address", "10.213.0.11"]


@pytest.fixture
def kubeconfig(tmp_path):
    path = tmp_path / "admin.kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\n")
    return str(path)


def test_options_map_to_rap_config(kubeconfig):
    args, config = cli.parse_args(["--kubeconfig", kubeconfig, *BASE, "--rap-period-s", "1", "--rap-w-net", "0.5",
                                   "--policy", "least-request", "--rtt-port", "10251"])
    assert config == RapConfig(period_s=1, w_net=0.5)
    assert (args.policy, args.rtt_port, config.stale_after_s) == ("least-request", 10251, 3)


def test_mode_option_is_text_and_the_rest_numbers(kubeconfig):
    _, config = cli.parse_args(["--kubeconfig", kubeconfig, *BASE, "--rap-mode", "classic", "--rap-eject-s", "2"])
    assert config == RapConfig(mode="classic", eject_s=2)
    _, config = cli.parse_args(["--kubeconfig", kubeconfig, *BASE])
    assert config.mode == "adaptive"


@pytest.mark.parametrize("extra, message", [
    (["--rap-cpu-threshold", "1.5"], "--rap-cpu-threshold: cpu_threshold: must be in (0, 1]"),
    (["--rap-period-s", "0"], "--rap-period-s: period_s: must be > 0"),
    (["--rap-w-cpu", "-1"], "--rap-w-cpu: w_cpu: must be >= 0"),
    (["--rap-w-cpu", "0", "--rap-w-mem", "0", "--rap-w-net", "0"], "--rap-w-cpu, --rap-w-mem, --rap-w-net: "),
    (["--policy", "random"], "invalid choice: 'random'"),
    (["--rap-mode", "fast"], "--rap-mode: mode: must be one of adaptive, classic, got 'fast'"),
    (["--rap-hysteresis", "1"], "--rap-hysteresis: hysteresis: must be in [0, 1)"),
    (["--rtt-port", "70000"], "--rtt-port: must be a TCP port"),
    (["--bind-address", "node-1"], "--bind-address: 'node-1' is not an IPv4 address"),
    (["--sync-period-s", "0"], "--sync-period-s: must be > 0"),
])
def test_option_errors(kubeconfig, capsys, extra, message):
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(["--kubeconfig", kubeconfig, *BASE, *extra])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_kubeconfig(capsys, tmp_path):
    with pytest.raises(SystemExit):
        cli.parse_args(["--kubeconfig", str(tmp_path / "nope"), *BASE])
    assert "does not exist" in capsys.readouterr().err


def test_every_option_has_help():
    for action in cli.build_parser()._actions:
        assert action.help, action.dest


# -- the relay on loopback (no iptables: clients dial the listener directly) --


async def _named_server(name: str):
    async def handle(reader, writer):
        await reader.readline()
        writer.write(name.encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _ask(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hi\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer.decode()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: connecting to it is refused


def test_relay_round_robin_retries_dead_endpoint_and_releases():
    async def scenario():
        servers = [await _named_server(n) for n in ("a", "b")]
        dead = _free_port()
        eps = [Endpoint("127.0.0.1", servers[0][1], "n1"), Endpoint("127.0.0.1", dead, "n1"),
               Endpoint("127.0.0.1", servers[1][1], "n1")]
        policy = make_policy("least-request", shuffle=False, seed=1)
        proxier = Proxier(policy, "127.0.0.1", rules=None)
        await proxier.sync([PortSpec("default/web", "10.215.0.10", 80, endpoints=tuple(eps))])
        port = proxier.proxy_port("default/web")
        answers = [await _ask(port) for _ in range(20)]
        await asyncio.sleep(0.05)
        active = [policy.active("default/web", e) for e in eps]
        await proxier.sync([])
        assert proxier.services() == []
        for s, _ in servers:
            s.close()
        return answers, active

    answers, active = asyncio.run(scenario())
    assert set(answers) == {"a", "b"}  # every connection answered though one endpoint refuses
    assert active == [0, 0, 0]  # released at close, failed dials released too


def test_relay_round_robin_spreads_evenly():
    async def scenario():
        servers = [await _named_server(n) for n in ("a", "b", "c")]
        policy = make_policy("round-robin", shuffle=False)
        proxier = Proxier(policy, "127.0.0.1", rules=None)
        eps = tuple(Endpoint("127.0.0.1", p, "") for _, p in servers)
        await proxier.sync([PortSpec("default/web", "10.215.0.10", 80, endpoints=eps)])
        answers = [await _ask(proxier.proxy_port("default/web")) for _ in range(9)]
        await proxier.close()
        return answers

    assert asyncio.run(scenario()) == ["a", "b", "c"] * 3


def test_relay_reports_a_failed_dial_to_rap_which_ejects_the_endpoint():
    async def scenario():
        servers = [await _named_server(n) for n in ("a", "b")]
        dead = _free_port()
        eps = [Endpoint("127.0.0.1", servers[0][1], "n1"), Endpoint("127.0.0.1", dead, "n1"),
               Endpoint("127.0.0.1", servers[1][1], "n1")]
        now = [100.0]
        policy = make_policy("rap", local_node="n1", shuffle=False)  # no metrics: round robin over U
        released = []
        release = policy.release
        policy.release = lambda svc, ep: (released.append(ep.addr), release(svc, ep))
        proxier = Proxier(policy, "127.0.0.1", rules=None, clock=lambda: now[0])
        await proxier.sync([PortSpec("default/web", "10.215.0.10", 80, endpoints=tuple(eps))])
        port = proxier.proxy_port("default/web")
        answers = [await _ask(port) for _ in range(4)]
        await asyncio.sleep(0.05)
        ejected = policy.is_ejected("default/web", eps[1], now[0])
        assert eps[1].addr not in released and len(released) == 4  # the retry took the failed dial back
        active = [policy.active("default/web", e) for e in eps]
        now[0] += policy.config.eject_s + 1  # the ejection is over: the dead one is tried again
        later = [await _ask(port) for _ in range(3)]
        await asyncio.sleep(0.05)
        active_after = [policy.active("default/web", e) for e in eps]
        await proxier.close()
        for s, _ in servers:
            s.close()
        return answers, ejected, active, later, active_after

    answers, ejected, active, later, active_after = asyncio.run(scenario())
    # a, then the dead one fails and its retry goes to b; once ejected, round robin skips it
    assert answers == ["a", "b", "a", "b"] and ejected
    assert active == [0, 0, 0] and active_after == [0, 0, 0]  # the failed dial counted once, taken back once
    assert later == ["a", "b", "a"]  # index after b is the dead one again: it fails, the retry goes on


def test_relay_releases_the_last_failed_dial():
    async def scenario():
        dead = [_free_port() for _ in range(2)]
        eps = tuple(Endpoint("127.0.0.1", p, "n1") for p in dead)
        policy = make_policy("rap", local_node="n1", shuffle=False)
        proxier = Proxier(policy, "127.0.0.1", rules=None)
        await proxier.sync([PortSpec("default/web", "10.215.0.10", 80, endpoints=eps)])
        answer = await _ask(proxier.proxy_port("default/web"))  # four tries, all refused
        await asyncio.sleep(0.05)
        active = [policy.active("default/web", e) for e in eps]
        await proxier.close()
        return answer, active

    assert asyncio.run(scenario()) == ("", [0, 0])


def test_monitor_reads_a_negative_quantity_as_unknown_as_rap_go_does():
    from rap.pyproxy.monitor import _quantity

    assert _quantity({"cpu": "-500m", "memory": "-1Gi"}, "cpu") == 0.0
    assert _quantity({"cpu": "-500m", "memory": "-1Gi"}, "memory") == 0.0
    assert _quantity({"cpu": "250m"}, "cpu") == 0.25
