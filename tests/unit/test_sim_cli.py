"""python3 -m rap.sim end to end: --quick writes its report, and the validation's verdicts are computed right."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from rap.sim import validate


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    out = tmp_path / "sim"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "rap.sim", "--quick", "--out", str(out)], capture_output=True,
                          text=True, timeout=120)
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert seconds < 30
    doc = json.loads((out / "summary.json").read_text())
    assert set(doc["scenarios"]) == {"bench-rates", "large-100"}
    large = doc["scenarios"]["large-100"]
    assert list(large["policies"]) == ["round-robin", "rap", "rap-adaptive", "least-request", "rap-view",
                                      "rap-adaptive-view"]
    for p in large["policies"].values():
        after = p["windows"]["after"]
        assert after["requests"] > 1000 and after["p50_ms"] > 0
        assert after["spread"]["eligible_nodes"] == 100
        assert "settle_s" in p["settle"]
    # round robin spreads by construction: no node far above its fair share
    assert large["policies"]["round-robin"]["windows"]["after"]["spread"]["max_over_fair"] < 2
    for png in ("latency_cdf_large-100.png", "forwarded_share_large-100.png", "latency_over_time_large-100.png"):
        assert (out / png).stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "largest share of forwarded traffic" in report
    assert "[sim] 12/12" in proc.stdout  # progress through rap.status


def _measured(p50s: dict) -> dict:
    return {"scenarios": {"rates": {"steps": {step: {"policies": {
        policy: {"p50_ms": {"median": v}, "p95_ms": {"median": v * 2}, "local_share": {"median": 1.0}}
        for policy, v in by_policy.items()}} for step, by_policy in p50s.items()}}}}


def _simulated(p50s: dict) -> dict:
    policies = {}
    for step, by_policy in p50s.items():
        for policy, v in by_policy.items():
            policies.setdefault(policy, {"windows": {}})["windows"][step] = {"p50_ms": v, "p95_ms": v,
                                                                           "local_share": 1.0}
    return {"scenarios": {"bench-rates": {"bench": "rates", "policies": policies}}}


def test_validation_met_and_missed_at_25_percent():
    measured = _measured({"20": {"rap": 10.0, "round-robin": 40.0}, "80": {"rap": 10.0}})
    simulated = _simulated({"20": {"rap": 12.5, "round-robin": 29.0}, "80": {"rap": 7.4},
                            "160": {"rap": 5.0}})  # 160 was not measured: left out
    v = validate.compare(simulated, measured, "results/x")
    verdicts = {(r["policy"], r["step"]): r["within"] for r in v["rows"]}
    assert verdicts == {("rap", "20"): True, ("rap", "80"): False, ("round-robin", "20"): False}
    assert (v["met"], v["missed"], v["within"]) == (1, 2, False)
