"""`invoke bench --quick` end to end on the local cluster: the output files exist and are well-formed.

It does not assert the performance targets: those are benchmark figures,
stated (met or missed) in the report, not timed tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rap.bench.compare import COMPARED
from rap.bench.scenarios import BARS, PEERS, POLICIES, SCENARIOS, peers_of
from rap.bench.stats import MEASURES

from tests.e2e.clusters import need_root_and_builds

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
QUICK = [n for n, s in SCENARIOS.items() if s.in_quick]  # --quick leaves the production cadence out


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    need_root_and_builds()
    out = tmp_path_factory.mktemp("bench") / "results"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "invoke", "bench", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    return proc, out, time.monotonic() - t0


def test_quick_run_succeeds_and_prints_progress_and_a_summary(quick_run):
    proc, out, seconds = quick_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = len(QUICK) * len(POLICIES)
    assert f"{runs}/{runs}" in proc.stdout  # the progress lines
    assert "targets (RAP / round robin):" in proc.stdout and f"report: {out / 'report.md'}" in proc.stdout
    assert "bar for rap-adaptive: " in proc.stdout
    print(f"invoke bench --quick took {seconds:.0f}s")


def test_summary_json_is_complete(quick_run):
    _, out, _ = quick_run
    doc = json.loads((out / "summary.json").read_text())
    assert doc["quick"] is True and doc["reps"] == 1 and doc["policies"] == list(POLICIES)
    assert doc["failures"] == [] and doc["interrupted"] is False and "statistics" in doc
    assert set(doc["scenarios"]) == set(QUICK)
    for name, sc in doc["scenarios"].items():
        for step in sc["steps"].values():
            assert set(step["policies"]) == set(POLICIES), name
            for m in step["policies"].values():
                assert set(MEASURES) <= set(m)
                assert m["throughput_rps"]["median"] > 0
                assert m["p50_ms"]["median"] is not None
            assert set(step["ratios"]) == {f"{p}/round-robin" for p in POLICIES if p != "round-robin"}
            assert {"p50_ms", "p95_ms", "throughput_rps"} <= set(step["best_peer"]), name
            assert step["best_peer"]["p50_ms"]["policy"] in PEERS
            for variant in ("rap", "rap-adaptive"):
                assert set(COMPARED) == set(step["vs_best_peer"][variant]), (name, variant)
                for metric, v in step["vs_best_peer"][variant].items():
                    assert v["peer"] in peers_of(variant)
                    if metric == "error_rate" and v["ratio"] is None:  # the best peer failed no request
                        assert v["peer_value"] == 0
                        continue
                    assert v["verdict"] in ("WIN", "LOSS", "TIE") and v["ci95"][0] <= v["ratio"]
            for p, m in step["policies"].items():  # every client's requests, and where they were served
                assert set(m["served_by"]) == set(sc["load"]["clients"]), (name, p)
                assert all(sum(c["share"].values()) == pytest.approx(1.0) for c in m["served_by"].values())
            if SCENARIOS[name].bar:  # judged in every step, with every policy there: nothing unmeasured
                checks = step["bar"]["checks"]
                assert len(checks) == len(BARS[SCENARIOS[name].bar].conditions)
                assert {c["verdict"] for c in checks} <= {"MET", "MISSED"}, (name, checks)
        for v in sc["targets"]:  # stated, whatever they are
            assert v["ratio"] is not None and v["met"] in (True, False)
    t = doc["bar_tally"]
    assert t["not_measured"] == 0 and t["met"] + t["missed"] == sum(
        len(BARS[SCENARIOS[n].bar].conditions) * len(sc["steps"]) for n, sc in doc["scenarios"].items()
        if SCENARIOS[n].bar)


def test_raw_samples_cover_every_run(quick_run):
    _, out, _ = quick_run
    seen = set()
    with open(out / "samples.jsonl") as f:
        for line in f:
            s = json.loads(line)
            assert {"scenario", "policy", "rep", "rate", "client", "node", "pod", "latency_ms", "status"} <= set(s)
            seen.add((s["scenario"], s["policy"]))
    assert seen == {(n, p) for n in QUICK for p in POLICIES}


def test_report_and_plots(quick_run):
    _, out, _ = quick_run
    md = (out / "report.md").read_text()
    assert "## Targets (RAP / round robin, same run)" in md and "## Compared with the paper" in md
    assert "## The bar for rap-adaptive" in md and "**Bar: " in md
    assert "## Where each client's requests were served" in md and "### rap-adaptive" in md
    for name in QUICK:
        assert f"(`{name}`)" in md
    for png in ("throughput.png", "local_share.png", "latency_p50.png", "latency_vs_rate_rates.png"):
        assert (out / png).read_bytes()[:8] == PNG
        assert f"]({png})" in md


def test_the_cluster_is_gone(quick_run):
    from rap.localcluster import netns, state

    assert netns.existing_namespaces() == []
    assert state.load(state.runtime_dir()) is None
