"""rap.scale's options, synthetic metrics, /proc readers, simulated objects, counting forwarder and report."""

from __future__ import annotations

import socket
import threading

import pytest

from rap.scale import fakecluster, procstat, report, synthetic
from rap.scale.forwarder import CountingForwarder
from rap.scale.options import ScaleOptionError, parse_options
from rap.scale.synthmetrics import split_seed


# -- options -----------------------------------------------------------------------------------

def test_defaults_and_quick():
    o = parse_options(monitor="node")
    assert (o.nodes, o.pods_per_node, o.rap_nodes, o.period_s, o.monitors) == ((100, 300, 1000), 20, 3, 5.0, ("node",))
    q = parse_options(quick=True, monitor="node")
    assert q.nodes == (50,) and q.window_s < o.window_s
    assert parse_options(quick=True, nodes="20", monitor="node").nodes == (20,)  # given beats --quick


@pytest.mark.parametrize("kwargs, option", [
    ({"nodes": "300,100"}, "--nodes"), ({"nodes": "100,100"}, "--nodes"), ({"nodes": "ten"}, "--nodes"),
    ({"nodes": "0"}, "--nodes"), ({"nodes": "6000"}, "--nodes"), ({"nodes": ","}, "--nodes"),
    ({"pods_per_node": "-1"}, "--pods-per-node"), ({"pods_per_node": "2.5"}, "--pods-per-node"),
    ({"services": "0"}, "--services"), ({"monitor": "central"}, "--monitor"), ({"monitor": ","}, "--monitor"),
    ({"rap_nodes": "10"}, "--rap-nodes"), ({"period": "0"}, "--period"), ({"period": "soon"}, "--period"),
    ({"window": "1"}, "--window"), ({"warmup": "1"}, "--warmup"), ({"seed": "-3"}, "--seed"),
])
def test_a_bad_option_is_one_line_naming_it(kwargs, option):
    with pytest.raises(ScaleOptionError) as err:
        parse_options(**{"monitor": "node", **kwargs})
    assert str(err.value).startswith(option + ":") and "\n" not in str(err.value)
    assert err.value.exit_code == 2


def test_out_must_be_new_or_empty(tmp_path):
    (tmp_path / "x").write_text("")
    with pytest.raises(ScaleOptionError, match="^--out:"):
        parse_options(monitor="node", out=str(tmp_path))
    assert parse_options(monitor="node", out=str(tmp_path / "new")).out_dir() == tmp_path / "new"


def test_every_monitor_by_default_the_stock_reference_first():
    assert parse_options().monitors == ("stock", "node", "aggregator", "aggregator-all")
    assert parse_options(monitor="aggregator,node,aggregator").monitors == ("aggregator", "node")
    with pytest.raises(ScaleOptionError, match="^--monitor: 'none' is not a monitor"):
        parse_options(monitor="none")


# -- synthetic metrics -------------------------------------------------------------------------

def test_synthetic_usage_is_deterministic_steady_and_below_the_thresholds():
    name = synthetic.pod_name("default", "sim-0001-0")
    assert synthetic.usage(1, name, 12.5) == synthetic.usage(1, name, 12.5)
    assert synthetic.usage(1, name, 0) != synthetic.usage(2, name, 0)
    for t in range(0, 120, 7):
        for n in (name, synthetic.node_name("kwok-node-0001"), synthetic.pod_name("default", "sim-0999-19")):
            cpu, mem = synthetic.usage(7, n, t)
            base_cpu, base_mem, _, _ = synthetic.base(7, n)
            assert abs(cpu / base_cpu - 1) <= synthetic.NOISE + 1e-9
            assert abs(mem / base_mem - 1) <= synthetic.NOISE + 1e-9
            assert 0 < cpu < 0.8 and 0 < mem < 0.9


def test_synthetic_cpu_counter_rate_is_the_usage():
    name = synthetic.node_name("kwok-node-0042")
    cores, _ = synthetic.capacity(name)
    (c0, _), (c1, _) = synthetic.counters(3, name, 30.0), synthetic.counters(3, name, 30.001)
    assert (c1 - c0) / 1e9 / 0.001 / cores == pytest.approx(synthetic.usage(3, name, 30.0)[0], rel=1e-3)
    assert synthetic.counters(3, name, 0)[0] == 0


def test_synthetic_reader_serves_synthetic_names_and_hands_the_rest_on():
    clock = iter([100.0, 110.0, 110.0]).__next__
    reader = synthetic.SyntheticReader(5, fallback=lambda n: (1, 2), clock=clock)
    assert reader(synthetic.pod_name("default", "p")) == synthetic.counters(5, synthetic.pod_name("default", "p"), 10.0)
    assert reader("rap-local/node-1") == (1, 2)
    with pytest.raises(KeyError):
        synthetic.SyntheticReader(5)("rap-local/node-1")


def test_split_seed():
    assert split_seed(["--seed", "4", "--registry", "r"]) == (4, ["--registry", "r"])
    assert split_seed(["--seed=9"]) == (9, [])
    assert split_seed(["--listen", "a:1"]) == (1, ["--listen", "a:1"])
    with pytest.raises(SystemExit):
        split_seed(["--seed", "x"])


# -- /proc ---------------------------------------------------------------------------------------

def test_proc_readers_on_recorded_text():
    stat = "1234 (kube-proxy) S 1 1234 1234 0 -1 4194560 5000 0 0 0 250 50 0 0 20 0 12 0 99 0 0"
    assert procstat.parse_stat_cpu(stat, ticks=100) == 3.0
    assert procstat.parse_stat_cpu(stat.replace("(kube-proxy)", "(a) b)"), ticks=100) == 3.0
    status = "Name:\tkube-proxy\nVmHWM:\t  90000 kB\nVmRSS:\t   81234 kB\n"
    assert procstat.parse_status_kb(status, "VmRSS") == 81234
    assert procstat.parse_status_kb(status, "VmSwap") is None


# -- simulated objects -----------------------------------------------------------------------

def test_simulated_addresses_stay_in_the_project_ranges():
    assert fakecluster.node_ip(1) == "10.216.0.1" and fakecluster.node_ip(1000) == "10.216.3.232"
    for i in (1, 255, 256, fakecluster.MAX_NODES):
        assert fakecluster.node_ip(i) in {str(a) for a in [fakecluster.NODE_NET.network_address + i]}
    with pytest.raises(ValueError):
        fakecluster.node_ip(0)


def test_pods_spread_over_the_services_and_carry_limits():
    shape = fakecluster.Shape(nodes=10, pods_per_node=20, services=7)
    names = [n for i in range(1, 11) for n, _ in shape.pods(i)]
    assert len(set(names)) == 200
    per_service = {}
    for i in range(1, 11):
        for _, svc in shape.pods(i):
            per_service[svc] = per_service.get(svc, 0) + 1
    assert set(per_service) == {fakecluster.service_name(s) for s in range(7)}
    assert max(per_service.values()) - min(per_service.values()) <= 1
    body = fakecluster.pod_body("sim-0001-0", "kwok-node-0001", "sim-0")
    assert body["spec"]["nodeName"] == "kwok-node-0001"
    assert body["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "250m", "memory": "256Mi"}
    node = fakecluster.node_body(3)
    assert node["metadata"]["labels"]["type"] == "kwok"
    assert node["status"]["addresses"][0] == {"type": "InternalIP", "address": "10.216.0.3"}


def test_registry_entries_name_synthetic_sources():
    shape = fakecluster.Shape(2, 1, 1)
    nodes, pods = fakecluster.registry_entries(shape, [{"name": "sim-0001-0", "node": "kwok-node-0001",
                                                         "ip": "10.217.0.2", "service": "sim-0"}])
    assert nodes == {"kwok-node-0001": "synthetic/node/kwok-node-0001", "kwok-node-0002": "synthetic/node/kwok-node-0002"}
    assert pods["default/sim-0001-0"]["cgroup"] == "synthetic/pod/default/sim-0001-0"


# -- forwarder -------------------------------------------------------------------------------

def test_forwarder_relays_and_counts_both_ways():
    server = socket.create_server(("127.0.0.1", 0))

    def echo():
        conn, _ = server.accept()
        with conn:
            data = conn.recv(100)
            conn.sendall(data * 2)

    threading.Thread(target=echo, daemon=True).start()
    fwd = CountingForwarder(("127.0.0.1", 0), server.getsockname())
    try:
        with socket.create_connection(fwd.address, timeout=5) as c:
            c.sendall(b"hello")
            got = b""
            while len(got) < 10:
                got += c.recv(100)
        assert got == b"hellohello"
        for _ in range(100):
            counts = fwd.counts()
            if counts.to_client == 10:
                break
            threading.Event().wait(0.02)
        assert (counts.to_server, counts.to_client, counts.connections) == (5, 10, 1)
    finally:
        fwd.stop()
        server.close()


# -- report ----------------------------------------------------------------------------------

def _row(rps, wire, cpu=0.5, rss=60.0):
    return {"requests_per_s": rps, "requests_per_period": rps * 5, "wire_bytes_per_period": wire,
            "apiserver_metrics": {"bytes_per_period": wire * 0.9}, "cpu_pct_mean": cpu, "cpu_pct_max": cpu,
            "rss_mb_max": rss}


def test_report_table_and_checks():
    agg = {**_row(0.2, 1000), "aggregator": {**_row(1.0, 5e6), "cpu_pct": 20.0}}
    doc = {"options": {"period_s": 5.0, "rap_nodes": 3, "pods_per_node": 20, "services": 10, "window_s": 60,
                       "warmup_s": 30, "seed": 1},
           "sizes": [{"simulated_nodes": 100, "simulated_pods": 2000,
                      "monitors": {"node": _row(0.8, 2e6), "aggregator": agg}},
                     {"simulated_nodes": 1000, "simulated_pods": 20000,
                      "monitors": {"node": _row(0.7, 4e7, 30, 400), "aggregator": {**agg, **_row(0.23, 1100)}}}]}
    text = report.markdown(doc)
    assert "| 1,000 (20,000) | RAP, per-node monitor | 0.700 | 3.50 |" in text and "the aggregator process" in text
    found = {c["check"]: c["ok"] for c in report.checks(doc)}
    assert found["API requests/s per RAP node within 20% from 100 to 1,000 nodes"] is True  # 0.2 -> 0.23: 15%
    assert found["wire bytes/period per RAP node within 20% from 100 to 1,000 nodes"] is True
    assert all(found.values())
    doc["sizes"][1]["monitors"]["aggregator"]["rss_mb_max"] = 200
    assert not all(c["ok"] for c in report.checks(doc))
    assert report.checks({"sizes": [doc["sizes"][0] | {"monitors": {"node": _row(1, 1)}}]}) == []


def test_cli_bad_option_is_one_line_and_exit_2(capsys):
    from rap.scale import cli

    assert cli.main(["--nodes", "0", "--monitor", "node"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --nodes:")


def test_the_spread_counts_every_size_not_only_the_ends():
    agg = lambda rps: {**_row(rps, 1000), "aggregator": {**_row(1.0, 5e6), "cpu_pct": 20.0}}  # noqa: E731
    doc = {"sizes": [{"simulated_nodes": n, "monitors": {"aggregator": agg(rps)}}
                     for n, rps in ((100, 0.2), (300, 0.3), (1000, 0.21))]}
    [spread] = [c for c in report.checks(doc) if c["check"].startswith("API requests/s")]
    assert spread["ok"] is False and spread["measured"] == "0.2 -> 0.3 -> 0.21 (50%)"
