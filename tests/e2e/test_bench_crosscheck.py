"""`invoke bench-crosscheck`, short, on the local cluster: rap.loadgen's p50 within 10% of vegeta's.

Two rounds of 5 s at 20 req/s (the default rate; rap/bench/crosscheck.py says
why not 40) from node-1 through the stock kube-proxy, on the geo shape (node-2
20 ms away, node-3 40 ms). Needs root, the built
kube-apiserver and stock kube-proxy, and the Go toolchain (vegeta is built on
first use). Run under the cluster lock:

    flock /work/cluster.lock -c 'python3 -m pytest -q -m e2e tests/e2e/test_bench_crosscheck.py -s'
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.clusters import need_root_and_builds

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
RATE, DURATION, ROUNDS = 20, 5, 2


@pytest.fixture(scope="module")
def short_check(tmp_path_factory):
    need_root_and_builds(rap=False)
    out = tmp_path_factory.mktemp("crosscheck") / "results"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "invoke", "bench-crosscheck", "--rate", str(RATE),
                           "--duration", str(DURATION), "--rounds", str(ROUNDS), "--warmup", "2", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=400)
    print(proc.stdout[-2500:], f"\ninvoke bench-crosscheck took {time.monotonic() - t0:.0f}s")
    doc = json.loads((out / "crosscheck.json").read_text()) if (out / "crosscheck.json").exists() else None
    return proc, out, doc


def test_both_tools_p50_within_ten_percent(short_check):
    proc, _, doc = short_check
    assert doc is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    m = doc["medians"]
    assert doc["within"] is True and abs(doc["p50_ratio"] - 1) <= 0.10, (m["loadgen"], m["vegeta"])
    assert proc.returncode == 0 and proc.stdout.rstrip().splitlines()[-2].endswith("within 10%")


def test_every_run_sent_its_requests_and_all_were_answered(short_check):
    _, out, doc = short_check
    assert [(r["round"], r["tool"]) for r in doc["runs"]] == [(1, "loadgen"), (1, "vegeta"),
                                                               (2, "vegeta"), (2, "loadgen")]
    for r in doc["runs"]:
        assert abs(r["requests"] - RATE * DURATION) <= 2 and r["success"] == 1.0, r
        assert r["cpu_s"] > 0, r  # each tool's own CPU time is measured
        # The geo shape's latency is one mode per serving node: both tools met all three.
        assert set(r["by_node"]) == {"node-1", "node-2", "node-3"}, r
        lines = (out / f"{r['tool']}-{r['round']}.jsonl").read_text().splitlines()
        assert len(lines) == r["requests"]


def test_latency_is_not_the_millisecond_of_a_local_hop(short_check):
    _, _, doc = short_check
    for tool in ("loadgen", "vegeta"):
        assert doc["medians"][tool]["p50_ms"] > 20, doc["medians"][tool]  # node-2's 20 ms round trip at least


def test_vegeta_own_report_agrees_with_the_parsed_results(short_check):
    _, _, doc = short_check
    assert doc["vegeta"]["version"] == "v12.13.0" and "-keepalive=false" in doc["vegeta"]["flags"]
    for r in doc["runs"]:
        if r["tool"] == "vegeta":
            assert r["report"]["requests"] == r["requests"] and r["report"]["success"] == r["success"]
            # vegeta's report estimates quantiles (a t-digest); the exact p50 is near it.
            assert abs(r["report"]["p50_ms"] / r["p50_ms"] - 1) <= 0.10, r
            assert r["start_lag_ms"]["p50"] < 5, r  # vegeta starts requests on time


def test_no_cluster_is_left_behind(short_check):
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "rap-node-" not in names
