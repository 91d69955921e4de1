"""rap.bench.runner with a fake target: interleaving, one cluster per shape, failures, Ctrl-C teardown."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import replace

import pytest

from rap.bench import runner
from rap.bench.progress import Progress
from rap.bench.scenarios import SCENARIOS


class FakeTarget:
    policies = ["round-robin", "rap", "least-request"]  # the runner runs the target's policies, in order

    def __init__(self, fail_on=None, interrupt_on=None):
        self.log = []
        self.fail_on, self.interrupt_on = fail_on, interrupt_on
        self.current = None

    @contextlib.contextmanager
    def cluster(self, s, say=print):
        self.log.append(("up", s.name))
        self.current = "round-robin"
        try:
            yield
        finally:
            self.log.append(("down", s.name))

    def switch(self, policy):
        if policy != self.current:
            self.log.append(("switch", policy))
        self.current = policy

    @contextlib.contextmanager
    def overloaded(self, s, seconds):
        self.log.append(("overload on", s.name))
        yield
        self.log.append(("overload off", s.name))

    def load(self, s, rate):
        if (s.name, self.current) == self.fail_on:
            raise RuntimeError("boom")
        if (s.name, self.current) == self.interrupt_on:
            raise KeyboardInterrupt
        node = "node-1" if self.current == "rap" else "node-2"
        return [{"start": 0.0, "latency_ms": 5.0, "status": 200, "pod": "p", "node": node, "error": "",
                 "client": "node-1"} for _ in range(10)]


def _fast(*names):
    return [replace(SCENARIOS[n], warmup_s=0, duration_s=1) for n in names]


def _quiet(total):
    return Progress(total, 1, out=io.StringIO())


def test_interleaved_rotated_one_cluster_per_shape(tmp_path):
    t = FakeTarget()
    res = runner.run(t, _fast("geo", "rates", "overload"), 2, tmp_path, _quiet(18))
    ups = [e for e in t.log if e[0] == "up"]
    assert ups == [("up", "geo"), ("up", "overload")]  # geo and rates share their cluster
    geo = [(r.rep, r.policy) for r in res.records if r.scenario == "geo"]
    assert geo == [(1, "round-robin"), (1, "rap"), (1, "least-request"),
                   (2, "rap"), (2, "least-request"), (2, "round-robin")]
    rates = [r for r in res.records if r.scenario == "rates"]
    assert rates[0].policy == "round-robin"  # chained: no switch between geo's last run and rates' first
    assert len(rates) == 2 * 3 * len(SCENARIOS["rates"].rates)
    assert ("overload on", "overload") in t.log and t.log[-1] == ("down", "overload")
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 10 * len(res.records)
    first = json.loads(lines[0])
    assert first["scenario"] == "geo" and first["policy"] == "round-robin" and first["rep"] == 1
    rap = next(r for r in res.records if r.policy == "rap")
    assert rap.measures["local_share"] == 1.0 and rap.measures["throughput_rps"] == 10


def test_a_failed_run_is_recorded_and_the_rest_goes_on(tmp_path):
    t = FakeTarget(fail_on=("geo", "rap"))
    res = runner.run(t, _fast("geo"), 1, tmp_path, _quiet(3))
    assert [r.policy for r in res.records] == ["round-robin", "least-request"]
    assert res.failures == ["geo rep 1/1 rap: RuntimeError: boom"]


def test_ctrl_c_tears_the_cluster_down_and_keeps_what_was_measured(tmp_path):
    t = FakeTarget(interrupt_on=("geo", "rap"))
    res = runner.run(t, _fast("geo", "balanced"), 1, tmp_path, _quiet(6))
    assert res.interrupted and [r.policy for r in res.records] == ["round-robin"]
    assert t.log[-1] == ("down", "geo") and ("up", "balanced") not in t.log


def test_a_cluster_that_fails_to_start_skips_its_group(tmp_path):
    class Broken(FakeTarget):
        @contextlib.contextmanager
        def cluster(self, s, say=print):
            if s.name == "balanced":
                raise RuntimeError("no binaries")
            with super().cluster(s, say):
                yield

    res = runner.run(Broken(), _fast("balanced", "geo"), 1, tmp_path, _quiet(6))
    assert res.failures == ["balanced: cluster: RuntimeError: no binaries"]
    assert {r.scenario for r in res.records} == {"geo"}


@pytest.mark.parametrize("last", [0, 1, 2])
def test_next_rotation(last):
    assert runner.next_rotation(last, 3) == (last + 2) % 3


def test_each_step_is_measured_with_the_scenarios_timeout_and_its_end(tmp_path):
    class Mixed(FakeTarget):
        def load(self, s, rate):
            ok = {"status": 200, "pod": "p", "node": "node-1", "error": "", "client": "node-1"}
            return [{**ok, "start": 0.1, "latency_ms": 5.0},
                    {**ok, "start": s.duration_s - 0.001, "latency_ms": 50.0},  # answered after the step
                    {**ok, "start": 0.2, "latency_ms": 3.0, "status": 0, "error": "ConnectionResetError"}]

    s = replace(_fast("geo")[0], timeout_s=4.0)
    res = runner.run(Mixed(), [s], 1, tmp_path, _quiet(3))
    m = res.records[0].measures
    assert m["throughput_rps"] == 1 / s.duration_s and m["late"] == 1 and m["failed"] == 1
    assert m["p95_ms"] == pytest.approx(50 + (4000 - 50) * 0.9)  # the failure counts as the 4 s timeout
    o = res.records[0].outcomes
    assert o is not None and len(o) == 3 and o.latency_ms.tolist() == [5.0, 50.0, 4000.0]
    assert "outcomes" not in m  # measures go to summary.json; the arrays do not
