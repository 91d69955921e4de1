"""Fast tests of the delayer-cost measurement (rap.localcluster.netdelay.cost and .costfigures): no cluster needed."""

from __future__ import annotations

import pytest

from rap.localcluster.netdelay import cost
from rap.localcluster.netdelay.costfigures import NONE, Round, go_duration_ms, per_variant, report


@pytest.mark.parametrize("text,ms", [("-38µs", -0.038), ("1.2ms", 1.2), ("0s", 0.0), ("1m2s", 62000.0),
                                      ("250ns", 0.00025), ("3us", 0.003)])
def test_go_duration_ms(text, ms):
    assert go_duration_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("bad", ["", "12", "1.2xs", "ms", "1ms junk"])
def test_go_duration_ms_refuses_other_text(bad):
    with pytest.raises(ValueError, match="not a Go duration"):
        go_duration_ms(bad)


def _round(label, user, sys_, packets, late="50µs", seconds=10.0, cluster=2.0):
    nodes = ("rap-node-1", "rap-node-2")
    return Round(label, 0, seconds, 100, 100, 60, 40.0, [20.5, 20.7, 21.0], {},
                 {ns: user for ns in nodes} if user else {}, {ns: sys_ for ns in nodes} if user else {},
                 {ns: packets for ns in nodes}, 5.0, cluster,
                 [f"rap-node-1 queue=102 delay=10ms seen=9 released=9 overflow=0 errors=0 max_held=1 "
                  f"late_avg={late} late_max=2ms"] if user else [])


def test_per_variant_pools_rounds_per_node_and_per_packet():
    rounds = [_round("before", 0.1, 0.3, 1000, late="100µs"), _round("after", 0.05, 0.05, 1000),
              _round("before", 0.1, 0.3, 1000, late="-20µs"), _round(NONE, 0, 0, 0, cluster=1.5)]
    s = per_variant(rounds)
    assert list(s) == ["before", "after", NONE]
    b = s["before"]
    assert b["rounds"] == 2 and b["seconds"] == 20.0
    assert b["delayer_cpu_per_s_per_node"] == pytest.approx(0.04)       # (0.4 s x 2 nodes x 2 rounds) / 20 s / 2
    assert b["delayer_sys_per_s_per_node"] == pytest.approx(0.03)
    assert b["delayer_cpu_s_per_1000_packets"] == pytest.approx(0.4)    # 1.6 s over 4000 packets
    assert b["packets_per_s_per_node"] == pytest.approx(100)
    assert b["late_avg_ms_mean"] == pytest.approx(0.04) and b["late_max_ms"] == 2.0
    assert b["connect_ms_median"] == pytest.approx(20.7)
    assert b["delayer_cpu_per_s_by_node"] == {"rap-node-1": pytest.approx(0.04), "rap-node-2": pytest.approx(0.04)}
    assert s[NONE]["delayer_cpu_per_s_per_node"] == 0.0 and s[NONE]["cluster_cores"] == pytest.approx(0.15)


def test_report_gives_ratios_to_the_first_and_differences_from_none():
    s = per_variant([_round("before", 0.1, 0.3, 1000), _round("after", 0.05, 0.05, 1000),
                     _round(NONE, 0, 0, 0, cluster=1.5)])
    text = report(s, "before")
    assert "after / before: delayer CPU x0.250, per packet x0.250" in text
    assert "before - none: cluster +0.050 cores" in text
    assert text.splitlines()[0].split()[0] == "variant"


def test_queued_packets_sums_the_nfqueue_rules(monkeypatch):
    listing = """Chain RAP-NETDELAY (1 references)
    pkts      bytes target     prot opt in     out     source               destination
     120     9000 NFQUEUE    all  --  *      *       10.213.0.12          0.0.0.0/0            NFQUEUE num 102 bypass
       7      500 NFQUEUE    all  --  *      *       10.214.2.0/24        0.0.0.0/0            NFQUEUE num 102 bypass
"""
    seen = []
    monkeypatch.setattr(cost.sh, "run", lambda cmd, check=True, netns=None: seen.append((cmd, netns)) or listing)
    node = cost.NodeAddr(1, "rap-node-1", "10.213.0.11")
    assert cost.queued_packets(node) == 127
    assert seen[0][1] == "rap-node-1" and cost.CHAIN in seen[0][0]


def test_exit_lines_reads_only_what_the_round_printed(tmp_path):
    log = tmp_path / "after" / "netdelay-rap-node-1.log"
    log.parent.mkdir()
    log.write_text("queue=102 delay=10ms seen=1 (an earlier round)\n")
    offset = log.stat().st_size
    with log.open("a") as f:
        f.write("ready pid=1 queues=1\nqueue=102 delay=10ms seen=5 released=5\nexit signal=terminated\n")
    assert cost.exit_lines(tmp_path, "after", {"rap-node-1": offset}) == [
        "rap-node-1 queue=102 delay=10ms seen=5 released=5"]


def test_no_cluster_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RAP_LOCAL_DIR", str(tmp_path / "none-here"))
    with pytest.raises(cost.CostError, match="no local cluster is up.*local-up"):
        cost.main(["--none"])


@pytest.mark.parametrize("argv,match", [
    (["--rate", "0", "--none"], "--rate"),
    (["--rounds", "11", "--none"], "--rounds"),
])
def test_bad_options_are_clear_errors(argv, match):
    with pytest.raises(cost.CostError, match=match):
        cost.main(argv)


@pytest.mark.parametrize("spec", ["before", "=HEAD", "none=HEAD", "x="])
def test_variant_labels_are_checked(spec):
    with pytest.raises(cost.CostError, match="LABEL=VALUE"):
        cost._labelled(spec, "--rev")


def test_unknown_revision_is_a_clear_error(tmp_path):
    with pytest.raises(cost.CostError, match="--rev no-such-rev: git archive failed"):
        cost.build_revision("no-such-rev", tmp_path)


def test_a_missing_binary_is_a_clear_error(tmp_path):
    with pytest.raises(cost.CostError, match="no such file"):
        cost.copy_binary(tmp_path / "nope", tmp_path / "x")
