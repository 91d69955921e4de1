"""Where each client's requests were served: stats.served / served_by, the runner's record, the report's tables."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest

from rap.bench import report, runner, stats
from rap.bench.progress import Progress
from rap.bench.runner import RunRecord
from rap.bench.scenarios import SCENARIOS


def _req(client: str, node: str, ok: bool = True) -> dict:
    return {"start": 0.1, "latency_ms": 5.0, "status": 200 if ok else 0, "pod": "p", "node": node if ok else "",
            "error": "" if ok else "ConnectionRefusedError", "client": client}


# Two clients of the contested shape: node-1 keeps 6 of 10 and forwards to node-3 and node-4;
# node-2 keeps 3 of 5, sends 1 to node-4, and one of its requests failed.
SAMPLES = ([_req("node-1", "node-1")] * 6 + [_req("node-1", "node-3")] * 1 + [_req("node-1", "node-4")] * 3
           + [_req("node-2", "node-2")] * 3 + [_req("node-2", "node-4")] + [_req("node-2", "", ok=False)])


def test_served_counts_per_client_and_leaves_failures_unserved():
    assert stats.served(SAMPLES) == {
        "node-1": {"requests": 10, "nodes": {"node-1": 6, "node-3": 1, "node-4": 3}},
        "node-2": {"requests": 5, "nodes": {"node-2": 3, "node-4": 1}}}


def test_a_failed_answer_from_a_node_is_not_served_by_it():
    bad = {**_req("node-1", "node-2"), "status": 503}
    assert stats.served([bad]) == {"node-1": {"requests": 1, "nodes": {}}}


def test_served_by_sums_the_repetitions_and_gives_shares_of_the_served():
    other_rep = stats.served([_req("node-1", "node-4")] * 10)
    out = stats.served_by([stats.served(SAMPLES), other_rep])
    assert list(out) == ["node-1", "node-2"]
    assert out["node-1"]["requests"] == out["node-1"]["served"] == 20
    assert out["node-1"]["share"] == {"node-1": 0.3, "node-3": 0.05, "node-4": 0.65}
    assert out["node-2"] == {"requests": 5, "served": 4, "share": {"node-2": 0.75, "node-4": 0.25}}
    assert sum(out["node-1"]["share"].values()) == pytest.approx(1.0)


def test_nodes_sort_by_number_and_other_names_by_name():
    assert sorted(["node-10", "node-2", "node-1"], key=stats.node_order) == ["node-1", "node-2", "node-10"]
    assert sorted(["worker-b", "worker-a"], key=stats.node_order) == ["worker-a", "worker-b"]


class _Target:
    policies = ["round-robin", "rap-adaptive"]
    current = None

    def cluster(self, s, say=print):
        import contextlib

        return contextlib.nullcontext()

    def switch(self, policy):
        self.current = policy

    def overloaded(self, s, seconds):
        import contextlib

        return contextlib.nullcontext()

    def load(self, s, rate):
        return [dict(d) for d in SAMPLES]


def test_the_runner_records_where_every_run_was_served(tmp_path):
    s = replace(SCENARIOS["contested"], warmup_s=0, duration_s=1)
    res = runner.run(_Target(), [s], 1, tmp_path, Progress(2, 1, out=io.StringIO()))
    assert [r.served for r in res.records] == [stats.served(SAMPLES)] * 2


def test_summary_and_report_show_the_spread_per_policy(tmp_path):
    from tests.unit import test_bench_report as tr

    s = SCENARIOS["contested"]
    o = stats.outcomes(SAMPLES, s.duration_s, s.timeout_s, closed=False)
    local = stats.served([_req("node-1", "node-1")] * 4)  # round robin served locally only, from node-1
    recs = [RunRecord("contested", p, rep, 60, 0, 0.0, stats.measures(o), o,
                      local if p == "round-robin" else stats.served(SAMPLES))
            for p in ("round-robin", "rap-adaptive") for rep in (1, 2)]
    doc = tr._doc(tmp_path, records=recs, policies=["round-robin", "rap-adaptive"], names=("contested",))
    served = doc["scenarios"]["contested"]["steps"]["60"]["policies"]["rap-adaptive"]["served_by"]
    assert served["node-1"] == {"requests": 20, "served": 20, "share": {"node-1": 0.6, "node-3": 0.1, "node-4": 0.3}}
    md = report.markdown(doc, [])
    section = md[md.index("## Where each client's requests were served"):]
    assert "### round-robin" in section and "### rap-adaptive" in section
    header = "| scenario, step | from | node-1 | node-2 | node-3 | node-4 | served |"
    assert section.count(header) == 2  # the same columns in every policy's table
    assert "| contested @60 | node-1 | 100% | – | – | – | 8 of 8 |" in section
    assert "| contested @60 | node-1 | 60% | – | 10% | 30% | 20 of 20 |" in section
    assert "| contested @60 | node-2 | – | 75% | – | 25% | 8 of 10 |" in section
