"""rap.bench.report: summary.json, report.md, plots and the end screen from made-up runs."""

from __future__ import annotations

import json

import pytest

from rap.bench import report
from rap.bench.runner import RunRecord
from rap.bench.scenarios import SCENARIOS

POLICIES = ["round-robin", "rap", "least-request"]


def _m(tput, p50, local=0.5, err=0.0):
    return {"requests": 10, "ok": 10, "throughput_rps": tput, "p50_ms": p50, "p95_ms": p50 * 2,
            "p99_ms": p50 * 3, "error_rate": err, "local_share": local}


def _records():
    recs = []
    for rep in (1, 2, 3):
        for policy, (tput, p50) in {"round-robin": (50, 150), "rap": (140 + rep, 40), "least-request": (200, 35)}.items():
            recs.append(RunRecord("geo", policy, rep, None, 0, 0.0, _m(tput, p50)))
            recs.append(RunRecord("balanced", policy, rep, None, 0, 0.0, _m(400, 10 if policy != "rap" else 12)))
            for rate in SCENARIOS["rates"].rates:
                recs.append(RunRecord("rates", policy, rep, rate, 0, 0.0, _m(rate, p50 + rate)))
    return recs


def _doc(tmp_path, failures=()):
    scen = [SCENARIOS[n] for n in ("balanced", "geo", "rates")]
    summary = report.summarize(scen, _records(), POLICIES)
    meta = {"started": "2026-01-01T00:00:00+00:00", "seconds": 100.0, "target": "local", "quick": False,
            "reps": 3, "policies": POLICIES, "host": {"cpus": 2, "load_before": "1.0", "load_after": "2.0"},
            "interrupted": False, "failures": list(failures), "runs": []}
    return report.write_summary(tmp_path / "summary.json", meta, summary)


def test_summary_medians_spread_ratios_and_targets(tmp_path):
    doc = _doc(tmp_path)
    again = json.loads((tmp_path / "summary.json").read_text())
    assert again == json.loads(json.dumps(doc))
    geo = again["scenarios"]["geo"]["steps"]["closed"]
    assert geo["policies"]["rap"]["throughput_rps"]["median"] == 142
    assert geo["policies"]["rap"]["throughput_rps"]["min"] == 141 and geo["policies"]["rap"]["runs"] == 3
    r = geo["ratios"]["rap/round-robin"]
    assert r["throughput_rps"] == pytest.approx(142 / 50) and r["p50_ms"] == pytest.approx(40 / 150)
    verdicts = {v["metric"]: v["met"] for v in again["scenarios"]["geo"]["targets"]}
    assert verdicts == {"p50_ms": True, "throughput_rps": True}
    bal = {v["metric"]: v["met"] for v in again["scenarios"]["balanced"]["targets"]}
    assert bal == {"p50_ms": False, "throughput_rps": True}  # 12/10 = 1.2: a miss is reported as a miss
    assert set(again["scenarios"]["rates"]["steps"]) == {f"{r:g}" for r in SCENARIOS["rates"].rates}


def test_markdown_has_tables_ratios_misses_and_the_paper_section(tmp_path):
    doc = _doc(tmp_path, failures=["geo rep 2/3 rap: RuntimeError: boom"])
    md = report.markdown(doc, ["throughput.png"])
    assert "## Geo-distributed nodes (`geo`)" in md and "| policy | throughput (req/s) |" in md
    assert "**rap/round-robin** (ratio of medians): throughput 2.84×, p50 0.27×" in md
    assert "**MISSED**" in md and "**met**" in md
    assert "## Compared with the paper" in md and "could not" in md
    assert "boom" in md and "![throughput.png](throughput.png)" in md
    assert "### 20 req/s per client" in md
    assert "closed loop, 1 worker per client pausing 30 ms after each answer" in md  # balanced
    assert "closed loop, 8 workers per client," in md  # geo: no think time


def test_plots_are_pngs(tmp_path):
    doc = _doc(tmp_path)
    names = report.plots(doc, tmp_path)
    assert {"throughput.png", "local_share.png", "latency_p50.png", "latency_vs_rate_rates.png"} <= set(names)
    for n in names:
        assert (tmp_path / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_screen_is_one_screen(tmp_path):
    doc = _doc(tmp_path)
    text = report.screen(doc, tmp_path)
    assert len(text.splitlines()) <= 40
    assert "MISSED" in text and "report:" in text


def test_missing_baseline_gives_no_ratio_and_no_verdict(tmp_path):
    recs = [r for r in _records() if r.policy != "round-robin"]
    summary = report.summarize([SCENARIOS["geo"]], recs, POLICIES)
    assert summary["geo"]["steps"]["closed"]["ratios"] == {}
    assert all(v["met"] is None for v in summary["geo"]["targets"])
