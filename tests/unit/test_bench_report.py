"""rap.bench.report: summary.json, report.md, plots and the end screen from made-up runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rap.bench import report
from rap.bench.runner import RunRecord
from rap.bench.scenarios import POLICIES as ALL_POLICIES
from rap.bench.scenarios import SCENARIOS
from tests.unit import bench_samples as fake

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


def _meta(policies, failures=()):
    return {"started": "2026-01-01T00:00:00+00:00", "seconds": 100.0, "target": "local", "quick": False,
            "reps": 3, "policies": list(policies), "host": {"cpus": 2, "load_before": "1.0", "load_after": "2.0"},
            "interrupted": False, "failures": list(failures), "runs": []}


def _doc(tmp_path, failures=(), records=None, policies=POLICIES, names=("balanced", "geo", "rates")):
    scen = [SCENARIOS[n] for n in names]
    summary = report.summarize(scen, _records() if records is None else records, list(policies))
    return report.write_summary(tmp_path / "summary.json", _meta(policies, failures), summary)


# median p50 (ms) and requests per run of each policy in the synthetic full run; haproxy buys its low p50
# with a long tail (sigma 1.2), local-only has the tightest tail, least-request the most answers
SYNTHETIC = {"round-robin": (40.0, 150, 0.5), "rap": (10.0, 400, 0.5), "rap-adaptive": (7.0, 420, 0.5),
             "rap-5s": (12.0, 380, 0.5),
             "least-request": (14.0, 700, 0.5), "iptables": (30.0, 250, 0.5), "local-only": (25.0, 300, 0.1),
             "haproxy": (6.0, 200, 1.2), "haproxy-leastconn": (16.0, 350, 0.5)}


def _synthetic(policies=tuple(SYNTHETIC), names=("geo", "rates"), fail=None):
    rng = np.random.default_rng(2022)
    recs = []
    for name in names:
        s = SCENARIOS[name]
        for rate in s.steps():
            for p in policies:
                p50, n, sigma = SYNTHETIC[p]
                for rep in (1, 2, 3):
                    data = fake.samples(rng, n, p50, sigma=sigma, duration_s=s.duration_s,
                                        fail_share=0.1 if p == fail else 0.0)
                    recs.append(fake.record(name, p, rep, rate, data, duration_s=s.duration_s,
                                            timeout_s=s.timeout_s, closed=s.mode == "closed"))
    return recs


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
    assert "**rap/round-robin** (ratio of medians, 95% interval): throughput 2.84× [" in md
    assert "| scenario | target | ratio | verdict | against the best peer |" in md
    assert "**rap / best peer**: p50 1.14× [" in md and "against least-request (35.0)" in md
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


def test_summary_has_the_best_peer_rap_against_it_and_failures_apart(tmp_path):
    _doc(tmp_path, records=_synthetic(fail="haproxy-leastconn"), policies=SYNTHETIC, names=("geo", "rates"))
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["statistics"]["rap_variants"] == ["rap", "rap-adaptive", "rap-5s"]
    assert doc["statistics"]["level"] == 0.95
    peers_of = doc["statistics"]["peers_of"]
    assert peers_of["rap-adaptive"] == peers_of["rap"] + ["rap"] and "rap" not in peers_of["rap-5s"]
    for key in ("closed",):
        step = doc["scenarios"]["geo"]["steps"][key]
        assert {m: b["policy"] for m, b in step["best_peer"].items()} == {
            "p50_ms": "haproxy", "p95_ms": "local-only", "throughput_rps": "least-request",
            "error_rate": "iptables"}  # haproxy-leastconn fails 10%, no other peer any: the first listed
        assert set(step["vs_best_peer"]) == {"rap", "rap-adaptive", "rap-5s"}
        rap = step["vs_best_peer"]["rap"]
        assert rap["p50_ms"]["verdict"] == "LOSS" and rap["p50_ms"]["ratio"] == pytest.approx(10 / 6, rel=0.15)
        assert rap["p95_ms"]["verdict"] == "WIN" and rap["throughput_rps"]["verdict"] == "LOSS"
        lo, hi = rap["throughput_rps"]["ci95"]
        assert lo <= rap["throughput_rps"]["ratio"] <= hi < 1
        assert step["ratios_ci95"]["rap/round-robin"]["p50_ms"][1] < 1  # RAP's p50 is a quarter of RR's
        failed = step["policies"]["haproxy-leastconn"]["failed_requests"]
        assert failed == {"count": 105, "requests": 1050, "share": 0.1}
        assert step["policies"]["rap"]["failed_requests"] == {"count": 0, "requests": 1200, "share": 0.0}
    rates = doc["scenarios"]["rates"]["steps"]
    assert set(rates) == {f"{r:g}" for r in SCENARIOS["rates"].rates}
    assert all(set(st["vs_best_peer"]["rap"]) == {"p50_ms", "p95_ms", "throughput_rps", "error_rate"}
               for st in rates.values())
    [target] = [t for t in doc["scenarios"]["geo"]["targets"] if t["metric"] == "p50_ms"]
    assert target["met"] is True and target["ci95"][1] < 0.7  # the old verdict stays, with its interval
    assert target["best_peer"]["peer"] == "haproxy" and target["best_peer"]["verdict"] == "LOSS"


def test_the_screen_says_where_rap_wins_and_loses_against_the_best_peer(tmp_path):
    names = [n for n in SCENARIOS if n not in ("overload-prod", "rates-prod")]
    recs = _synthetic(policies=ALL_POLICIES, names=names)
    doc = _doc(tmp_path, records=recs, policies=list(ALL_POLICIES), names=names)
    text = report.screen(doc, tmp_path)
    lines = text.splitlines()
    assert len(lines) <= 40 and max(map(len, lines)) <= 120
    geo = next(line for line in lines if line.strip().startswith("geo "))
    assert "p50 1." in geo and "LOSS" in geo and "WIN" in geo and "[" in geo
    assert any("peers" in line and "haproxy" in line and "least-request" in line for line in lines)
    assert any(line.startswith("rap against the best peer:") and "WIN" in line for line in lines)
    assert "targets (RAP / round robin):" in text and "report:" in text
    md = report.markdown(doc, [])
    assert "## RAP against the best peer" in md and "| geo | closed | rap | " in md


def test_failed_requests_are_listed_apart_on_the_screen_and_in_the_tables(tmp_path):
    doc = _doc(tmp_path, records=_synthetic(fail="iptables", names=("geo",)), policies=SYNTHETIC, names=("geo",))
    assert ("failed requests (in the percentiles at the timeout): iptables 75 (10.0%; worst geo 10.0%)"
            in report.screen(doc, tmp_path).splitlines())
    row = next(line for line in report.markdown(doc, []).splitlines() if line.startswith("| iptables |"))
    assert "| 75 (10.0%) |" in row and "| 10000.0 | 10000.0 |" in row  # p95 and p99 at the 10 s timeout


def test_missing_peers_and_a_missing_rap_are_reported_not_raised(tmp_path):
    only = _synthetic(policies=("round-robin", "rap"), names=("geo",))
    doc = _doc(tmp_path, records=only, policies=("round-robin", "rap"), names=("geo",))
    step = doc["scenarios"]["geo"]["steps"]["closed"]
    assert step["best_peer"] == {} and step["vs_best_peer"] == {"rap": {}}
    assert all(t["best_peer"] is None for t in doc["scenarios"]["geo"]["targets"])
    assert "no peer ran" in report.markdown(doc, []) and "**rap / best peer**: no peer ran" in report.markdown(doc, [])
    assert "report:" in report.screen(doc, tmp_path)
    peers = _synthetic(policies=("round-robin", "haproxy"), names=("geo",))
    doc = _doc(tmp_path, records=peers, policies=("round-robin", "haproxy"), names=("geo",))
    assert doc["scenarios"]["geo"]["steps"]["closed"]["vs_best_peer"] == {}
    assert "no RAP variant and peer ran side by side" in report.markdown(doc, [])
