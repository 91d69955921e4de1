"""The delay check made before a benchmark measures: a missing delayer, missing rules or a fast
connect are refused with a clear message; the runner measures nothing after a refusal."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest

from rap.bench import runner
from rap.bench.progress import Progress
from rap.bench.scenarios import SCENARIOS
from rap.localcluster import netdelay as nd
from rap.localcluster.netdelay import check
from tests.unit.test_bench_runner import FakeTarget

NODES = [nd.NodeAddr(i, f"rap-node-{i}", f"10.213.0.{10 + i}", f"10.214.{i}.0/24") for i in (1, 2, 3)]
RULES = "-A PREROUTING -i eth0 -j RAP-NETDELAY\n-A RAP-NETDELAY -s 10.213.0.12/32 -j NFQUEUE --queue-num 102\n"


@pytest.fixture
def world(monkeypatch):
    w = {"delayers": {"rap-node-1": [7], "rap-node-2": [8]}, "rules": RULES, "ms": 41.0, "probes": []}
    monkeypatch.setattr(check, "find_delayers", lambda ns: w["delayers"].get(ns, []))
    monkeypatch.setattr(check.sh, "run", lambda cmd, netns=None, check=True: w["rules"])

    def connect(ns, ip, port):
        w["probes"].append((ns, ip, port))
        if isinstance(w["ms"], Exception):
            raise w["ms"]
        return w["ms"]

    monkeypatch.setattr(check, "connect_ms", connect)
    return w


def test_an_active_delay_passes_and_is_measured_between_the_pair(world):
    assert check.verify({(1, 2): 40.0}, NODES, 10250) == {(1, 2): 41.0}
    assert world["probes"] == [("rap-node-1", "10.213.0.12", 10250)]


def test_a_missing_delayer_is_refused(world):
    world["delayers"].pop("rap-node-2")
    with pytest.raises(nd.NetDelayError, match="no netdelay process runs in rap-node-2"):
        check.verify({(1, 2): 40.0}, NODES, 10250)


def test_missing_rules_are_refused(world):
    world["rules"] = "*mangle\nCOMMIT\n"
    with pytest.raises(nd.NetDelayError, match="RAP-NETDELAY rules are missing in rap-node-1"):
        check.verify({(1, 2): 40.0}, NODES, 10250)


def test_a_connect_far_below_the_rtt_is_refused(world):
    world["ms"] = 0.4
    with pytest.raises(nd.NetDelayError, match="asked 40 ms, a TCP connect takes 0.4 ms"):
        check.verify({(1, 2): 40.0}, NODES, 10250)


def test_a_failed_connect_is_refused(world):
    world["ms"] = nd.NetDelayError("a TCP connect from rap-node-1 to 10.213.0.12:10250 failed (timed out)")
    with pytest.raises(nd.NetDelayError, match=r"RTT node-1:node-2=40ms: a TCP connect .* failed"):
        check.verify({(1, 2): 40.0}, NODES, 10250)


def test_the_runner_measures_nothing_when_the_delay_check_refuses(tmp_path):
    class Undelayed(FakeTarget):
        def check_delay(self, s):
            self.log.append(("check", s.name))
            raise RuntimeError("the inter-node delay is not active")

        def load(self, s, rate):
            self.log.append(("load", s.name))
            return super().load(s, rate)

    target = Undelayed()
    scenarios = [replace(SCENARIOS["geo"], warmup_s=0, duration_s=1)]
    res = runner.run(target, scenarios, 1, tmp_path, Progress(3, 1, out=io.StringIO()))
    assert res.records == []
    assert res.failures == ["geo: cluster: RuntimeError: the inter-node delay is not active"]
    assert ("check", "geo") in target.log and not [e for e in target.log if e[0] == "load"]
