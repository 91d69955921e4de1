"""Fast tests of rap.localcluster.netdelay: --rtt parsing, the per-node plan, iptables rules, argv."""

from __future__ import annotations

import pytest

from rap.localcluster import netdelay as nd


def nodes(n: int = 3) -> list[nd.NodeAddr]:
    return [nd.NodeAddr(i, f"rap-node-{i}", f"10.213.0.{10 + i}", f"10.214.{i}.0/24") for i in range(1, n + 1)]


# ----------------------------------------------------------------- parse_rtt

@pytest.mark.parametrize("text, ms", [
    ("40ms", 40.0), ("0.04s", 40.0), ("500us", 0.5), ("2.5ms", 2.5), (" 7 ms ", 7.0), (".5s", 500.0),
])
def test_parse_duration(text, ms):
    assert nd.parse_duration_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["40", "ms", "40 m", "-5ms", "4e1ms", "forty ms", ""])
def test_parse_duration_rejects(text):
    with pytest.raises(nd.RttOptionError, match=r"--rtt.*unit"):
        nd.parse_duration_ms(text)


def test_parse_rtt_forms():
    assert nd.parse_rtt("node-2=40ms") == {(1, 2): 40.0}
    assert nd.parse_rtt(["node-1:node-3=80ms"]) == {(1, 3): 80.0}
    assert nd.parse_rtt(["node-3:node-1=80ms"]) == {(1, 3): 80.0}
    assert nd.parse_rtt(["2=40ms", "2:3=0.01s"]) == {(1, 2): 40.0, (2, 3): 10.0}
    assert nd.parse_rtt("node-2=40ms,node-3=80ms") == {(1, 2): 40.0, (1, 3): 80.0}
    assert nd.parse_rtt(None) == {} and nd.parse_rtt([]) == {}


def test_parse_rtt_star_fills_unnamed_pairs():
    got = nd.parse_rtt(["*=10ms", "node-2=40ms", "node-2:node-3=0ms"], nodes=3)
    assert got == {(1, 2): 40.0, (1, 3): 10.0, (2, 3): 0.0}


def test_parse_rtt_same_pair_same_value_is_fine():
    assert nd.parse_rtt(["node-2=40ms", "node-1:node-2=0.04s"]) == {(1, 2): 40.0}


@pytest.mark.parametrize("values, nodes, match", [
    (["node-2"], None, r"--rtt: 'node-2' has no '='.*NODE=RTT"),
    (["node-2=40"], None, r"--rtt 'node-2=40': '40' is not a duration with a unit"),
    (["node-2=fast"], None, r"not a duration"),
    (["node-1=40ms"], None, r"pairs node-1 with itself; NODE=RTT alone means node-1:NODE"),
    (["node-2:node-2=40ms"], None, r"pairs node-2 with itself"),
    (["node-4=40ms"], 3, r"node-4 does not exist in a 3-node cluster"),
    (["host-2=40ms"], None, r"'host-2' is not a node; want NODE=RTT"),
    (["node-0=40ms"], None, r"is not a node"),
    (["node-1:node-2:node-3=4ms"], None, r"more than two nodes"),
    (["node-2=20s"], None, r"between 0 and 10000 ms"),
    (["node-2=40ms", "node-2=50ms"], None, r"node-1:node-2 given twice \(40ms and 50ms\)"),
    (["*=10ms"], None, r"'\*' needs the number of nodes"),
    (["*=10ms", "*=20ms"], 3, r"'\*' given twice"),
])
def test_parse_rtt_errors_name_option_and_format(values, nodes, match):
    with pytest.raises(nd.RttOptionError, match=match) as info:
        nd.parse_rtt(values, nodes=nodes)
    assert str(info.value).startswith("--rtt")
    assert isinstance(info.value, ValueError)


def test_parse_rtt_option_name_is_used():
    with pytest.raises(nd.RttOptionError, match=r"^--latency"):
        nd.parse_rtt(["x=1ms"], option="--latency")


def test_format_rtt_round_trips():
    rtts = {(1, 2): 40.0, (2, 3): 2.5}
    assert nd.format_rtt(rtts) == "node-1:node-2=40ms,node-2:node-3=2.5ms"
    assert nd.parse_rtt(nd.format_rtt(rtts)) == rtts


# ---------------------------------------------------------------------- plan

def test_plan_splits_rtt_over_both_egresses():
    got = nd.plan({(1, 2): 40.0, (2, 3): 10.0}, nodes())
    assert got == {
        1: [nd.QueueRule(2, 102, 20_000, ("10.213.0.12/32", "10.214.2.0/24"))],
        2: [nd.QueueRule(1, 101, 20_000, ("10.213.0.11/32", "10.214.1.0/24")),
            nd.QueueRule(3, 103, 5_000, ("10.213.0.13/32", "10.214.3.0/24"))],
        3: [nd.QueueRule(2, 102, 5_000, ("10.213.0.12/32", "10.214.2.0/24"))],
    }


def test_plan_zero_rtt_needs_nothing():
    assert nd.plan({(1, 2): 0.0}, nodes()) == {}
    assert nd.plan({}, nodes()) == {}


def test_plan_odd_microseconds_round():
    (rule,) = nd.plan({(1, 2): 0.003}, nodes(2))[1]
    assert rule.delay_us == 2  # 1.5 us rounds to even


def test_plan_node_without_pod_cidr():
    bare = [nd.NodeAddr(1, "a", "10.219.0.11"), nd.NodeAddr(2, "b", "10.219.0.12")]
    assert nd.plan({(1, 2): 4.0}, bare)[1][0].addresses == ("10.219.0.12/32",)


@pytest.mark.parametrize("rtts, match", [
    ({(1, 4): 10.0}, "node-4 is not one of the nodes"),
    ({(2, 2): 10.0}, "paired with itself"),
    ({(1, 2): -1.0}, "outside"),
    ({(1, 2): 20_000.0}, "outside"),
])
def test_plan_errors(rtts, match):
    with pytest.raises(nd.NetDelayError, match=match):
        nd.plan(rtts, nodes())


# ------------------------------------------------------------ iptables, argv

def test_iptables_ingress_fills_chain_before_jump():
    node = nodes()[0]
    rules = nd.plan({(1, 2): 40.0, (1, 3): 80.0}, nodes())[1]
    cmds = [" ".join(c) for c in nd.iptables_install_cmds(node, rules)]
    assert cmds == [
        "iptables -w -t mangle -N RAP-NETDELAY",
        "iptables -w -t mangle -A RAP-NETDELAY -s 10.213.0.12/32 -j NFQUEUE --queue-num 102 --queue-bypass",
        "iptables -w -t mangle -A RAP-NETDELAY -s 10.214.2.0/24 -j NFQUEUE --queue-num 102 --queue-bypass",
        "iptables -w -t mangle -A RAP-NETDELAY -s 10.213.0.13/32 -j NFQUEUE --queue-num 103 --queue-bypass",
        "iptables -w -t mangle -A RAP-NETDELAY -s 10.214.3.0/24 -j NFQUEUE --queue-num 103 --queue-bypass",
        "iptables -w -t mangle -A PREROUTING -i eth0 -j RAP-NETDELAY",
    ]


def test_iptables_egress_matches_destination():
    node = nodes()[0]
    rules = nd.plan({(1, 2): 40.0}, nodes())[1]
    cmds = [" ".join(c) for c in nd.iptables_install_cmds(node, rules, direction="egress")]
    assert cmds[1] == "iptables -w -t mangle -A RAP-NETDELAY -d 10.213.0.12/32 -j NFQUEUE --queue-num 102 --queue-bypass"
    assert cmds[-1] == "iptables -w -t mangle -A POSTROUTING -o eth0 -j RAP-NETDELAY"
    with pytest.raises(nd.NetDelayError, match="direction 'sideways'"):
        nd.iptables_install_cmds(node, rules, direction="sideways")


def test_iptables_fail_closed_has_no_bypass_and_other_dev():
    node = nd.NodeAddr(1, "n", "10.219.0.11", dev="veth7")
    rules = nd.plan({(1, 2): 4.0}, [node, nd.NodeAddr(2, "m", "10.219.0.12")])[1]
    cmds = nd.iptables_install_cmds(node, rules, bypass=False)
    assert all("--queue-bypass" not in c for c in cmds)
    assert cmds[-1][-4:] == ["-i", "veth7", "-j", "RAP-NETDELAY"]


def test_iptables_remove_undoes_either_direction():
    node = nodes()[1]
    assert [" ".join(c) for c in nd.iptables_remove_cmds(node)] == [
        "iptables -w -t mangle -D PREROUTING -i eth0 -j RAP-NETDELAY",
        "iptables -w -t mangle -D POSTROUTING -o eth0 -j RAP-NETDELAY",
        "iptables -w -t mangle -F RAP-NETDELAY",
        "iptables -w -t mangle -X RAP-NETDELAY",
    ]


def test_delayer_argv():
    rules = nd.plan({(1, 2): 40.0, (2, 3): 0.5}, nodes())[2]
    assert nd.delayer_argv(rules, "/x/netdelay", max_queue=128) == [
        "/x/netdelay", "--max-queue", "128",
        "--rule", "queue=101,delay=20000us", "--rule", "queue=103,delay=250us",
    ]


# --------------------------------------------------------------------- build

def test_go_env_uses_project_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RAP_CACHE", str(tmp_path))
    env = nd.go_env()
    assert env["GOMODCACHE"] == str(tmp_path / "go" / "mod")
    assert env["GOCACHE"] == str(tmp_path / "go" / "build")
    assert nd.binary_path() == tmp_path / "bin" / "netdelay"


def test_source_digest_follows_sources_not_tests(tmp_path):
    for name in ("go.mod", "go.sum", "main.go", "main_test.go"):
        (tmp_path / name).write_text(name)
    first = nd.source_digest(tmp_path)
    (tmp_path / "main_test.go").write_text("changed")
    assert nd.source_digest(tmp_path) == first
    (tmp_path / "main.go").write_text("changed")
    assert nd.source_digest(tmp_path) != first


def test_real_sources_are_there():
    names = {p.name for p in nd.SOURCE_DIR.iterdir()}
    assert {"go.mod", "go.sum", "main.go"} <= names


def test_stop_delayer_leaves_foreign_pid_alone():
    import os
    assert nd.stop_delayer(os.getpid()) is None  # this pytest is not a netdelay process


@pytest.mark.slow
def test_go_tests_and_cached_build():
    """`go test` of netdelay (rule parser, FIFO ring), then a build that a second call reuses."""
    import shutil
    import subprocess
    import time

    if shutil.which("go") is None and not __import__("os").path.exists("/usr/local/go/bin/go"):
        pytest.skip("Go toolchain not installed (./scripts/install.sh installs it)")
    proc = subprocess.run([nd._find_go(), "test", "./..."], cwd=nd.SOURCE_DIR, env=nd.go_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = nd.build_netdelay()
    mtime = first.stat().st_mtime_ns
    t0 = time.monotonic()
    assert nd.build_netdelay() == first and first.stat().st_mtime_ns == mtime
    assert time.monotonic() - t0 < 5
    out = subprocess.run([str(first), "--rule", "queue=1"], capture_output=True, text=True)
    assert out.returncode == 2 and "both queue and delay are required" in out.stderr
