"""Fast tests of rap.localcluster.netdelay.rules: the per-node plan, iptables rules, argv."""

from __future__ import annotations

import pytest

from rap.localcluster import netdelay as nd


def nodes(n: int = 3) -> list[nd.NodeAddr]:
    return [nd.NodeAddr(i, f"rap-node-{i}", f"10.213.0.{10 + i}", f"10.214.{i}.0/24") for i in range(1, n + 1)]


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
    cmds = [" ".join(c) for c in nd.iptables_install_cmds(node, rules, bypass=True)]
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
    cmds = [" ".join(c) for c in nd.iptables_install_cmds(node, rules, direction="egress", bypass=True)]
    assert cmds[1] == "iptables -w -t mangle -A RAP-NETDELAY -d 10.213.0.12/32 -j NFQUEUE --queue-num 102 --queue-bypass"
    assert cmds[-1] == "iptables -w -t mangle -A POSTROUTING -o eth0 -j RAP-NETDELAY"
    with pytest.raises(nd.NetDelayError, match="direction 'sideways'"):
        nd.iptables_install_cmds(node, rules, direction="sideways")


def test_iptables_fail_closed_by_default_has_no_bypass_and_other_dev():
    node = nd.NodeAddr(1, "n", "10.219.0.11", dev="veth7")
    rules = nd.plan({(1, 2): 4.0}, [node, nd.NodeAddr(2, "m", "10.219.0.12")])[1]
    cmds = nd.iptables_install_cmds(node, rules)
    assert [c[-2:] for c in cmds if "NFQUEUE" in c] == [["--queue-num", "102"]]
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
