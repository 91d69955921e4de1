"""Fast tests of rap.localcluster.netdelay.rtt: --rtt parsing and its error messages."""

from __future__ import annotations

import pytest

from rap.localcluster import netdelay as nd


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
