"""rap.bench.crosscheck and rap.bench.vegeta without a cluster: vegeta's output parsed, the verdict, the table,
bad options, the pinned build."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rap.bench import crosscheck as cc
from rap.bench import vegeta as vg
from rap.errors import OptionError

ROOT = Path(__file__).resolve().parents[2]


def _result(seq: int, ms: float, code: int = 200, node: str = "node-2", *, at: str, error: str = "") -> str:
    return json.dumps({"attack": "", "seq": seq, "code": code, "timestamp": at, "latency": int(ms * 1e6),
                       "bytes_out": 0, "bytes_in": 0, "error": error, "body": None, "method": "GET",
                       "url": "http://10.215.0.10:80/",
                       "headers": {"X-Node": [node], "X-Pod": [f"web-{node[-1]}-1"]} if code else {}})


# vegeta encode -to=json, as v12.13.0 writes it (nanosecond timestamps, latency in ns), out of order.
ENCODED = "\n".join([
    _result(1, 41.0, at="2026-12-03T13:49:23.102083888Z"),
    _result(0, 45.04498, at="2026-12-03T13:49:23.077083888Z"),
    _result(2, 3.5, node="node-1", at="2026-12-03T13:49:23.129083888Z"),
    _result(3, 10000.0, code=0, node="", at="2026-12-03T13:49:23.152083888Z",
            error="Get \"http://10.215.0.10:80/\": context deadline exceeded"),
]) + "\n"

REPORT = json.dumps({
    "latencies": {"total": 21623049, "mean": 2162304, "50th": 41700000, "90th": 44000000, "95th": 45000000,
                  "99th": 45000000, "max": 10000000000, "min": 3500000},
    "bytes_in": {"total": 0, "mean": 0}, "bytes_out": {"total": 0, "mean": 0},
    "earliest": "2026-12-03T13:49:23.077083888Z", "latest": "2026-12-03T13:49:23.152083888Z",
    "end": "2026-12-03T13:49:33.152083888Z", "duration": 75000000, "wait": 10000000000, "requests": 4,
    "rate": 40.0, "throughput": 0.3, "success": 0.75, "status_codes": {"0": 1, "200": 3},
    "errors": ["context deadline exceeded"]})


def test_encoded_results_become_samples_in_schedule_order():
    samples = vg.parse_encoded(ENCODED)
    assert [s["seq"] for s in samples] == [0, 1, 2, 3]
    first, second, local, failed = samples
    assert first["latency_ms"] == pytest.approx(45.04498) and first["start"] == 0.0
    assert second["start"] == pytest.approx(0.025)  # nanosecond timestamps, not truncated to seconds
    assert (local["node"], local["pod"], local["status"]) == ("node-1", "web-1-1", 200)
    assert failed["status"] == 0 and "deadline" in failed["error"] and failed["node"] == ""


def test_an_empty_attack_has_no_samples():
    assert vg.parse_encoded("\n") == []


@pytest.mark.parametrize("line", ['{"seq": 0}', "not json", '{"seq": "x", "timestamp": "t", "latency": 1, "code": 200}'])
def test_a_line_that_is_not_a_vegeta_result_is_one_clear_error(line):
    with pytest.raises(vg.VegetaError, match="vegeta encode, line 1: not a vegeta result"):
        vg.parse_encoded(line)


def test_vegeta_report_in_milliseconds():
    rep = vg.parse_report(REPORT)
    assert rep == {"requests": 4, "success": 0.75, "p50_ms": pytest.approx(41.7), "p95_ms": pytest.approx(45.0)}
    with pytest.raises(vg.VegetaError, match="not a vegeta JSON report"):
        vg.parse_report('{"requests": 4}')


def test_measures_are_over_successful_requests_with_p50_by_node():
    m = cc.measures(vg.parse_encoded(ENCODED))
    assert (m["requests"], m["ok"], m["success"]) == (4, 3, 0.75)
    assert m["p50_ms"] == pytest.approx(41.0)  # the 10 s timeout is not a latency
    assert m["by_node"] == {"node-1": {"ok": 1, "p50_ms": 3.5},
                            "node-2": {"ok": 2, "p50_ms": pytest.approx((41.0 + 45.04498) / 2)}}
    assert cc.measures([])["success"] is None


def test_start_lag_is_against_vegeta_own_schedule():
    lag = vg.start_lag_ms(vg.parse_encoded(ENCODED), rate=40)  # due every 25 ms; seq 2 started 2 ms late
    assert lag["max"] == pytest.approx(2.0) and lag["p50"] == pytest.approx(0.0, abs=1e-6)


def _runs(loadgen_p50s, vegeta_p50s):
    runs = []
    for i, (a, b) in enumerate(zip(loadgen_p50s, vegeta_p50s), 1):
        for tool, p50 in (("loadgen", a), ("vegeta", b)):
            runs.append({"round": i, "tool": tool, "requests": 600, "ok": 600, "success": 1.0, "p50_ms": p50,
                         "p95_ms": None if p50 is None else p50 * 1.5,
                         "by_node": {} if p50 is None else {"node-2": {"ok": 600, "p50_ms": p50}}, "cpu_s": 1.5,
                         **({"report": {"p50_ms": p50, "p95_ms": p50}, "start_lag_ms": {"p50": 0.2, "max": 2.0}}
                            if tool == "vegeta" else {})})
    return runs


def test_verdict_compares_medians_over_rounds():
    v = cc.verdict(_runs([68.3, 67.2, 90.0], [65.9, 64.4, 68.4]))  # one slow loadgen round does not decide
    assert v["medians"]["loadgen"]["p50_ms"] == 68.3 and v["medians"]["vegeta"]["p50_ms"] == 65.9
    assert v["p50_ratio"] == pytest.approx(68.3 / 65.9) and v["within"] is True
    assert v["medians"]["vegeta"]["p50_ms_by_node"] == {"node-2": 65.9}


@pytest.mark.parametrize("loadgen, vegeta, within", [
    ([55.0], [50.0], True),     # exactly 10% above: within
    ([45.0], [50.0], True),     # exactly 10% below
    ([55.1], [50.0], False),
    ([44.9], [50.0], False),
    ([None], [50.0], False),    # no successful loadgen request: no ratio, not within
])
def test_verdict_tolerance_is_ten_percent_either_way(loadgen, vegeta, within):
    v = cc.verdict(_runs(loadgen, vegeta))
    assert v["within"] is within and v["tolerance"] == 0.10


def test_rounds_that_disagree_more_than_the_tolerance_are_called_out():
    steady = cc.verdict(_runs([45.4, 45.5], [44.6, 44.8]))
    assert steady["noisy"] == [] and steady["medians"]["vegeta"]["p50_spread"] == pytest.approx(0.2 / 44.7)
    queueing = _runs([51.7, 58.8], [59.0, 57.5])  # stock kube-proxy at 40 req/s: its accept loop queues
    v = cc.verdict(queueing)
    assert v["noisy"] == ["loadgen"] and v["within"] is True
    assert "caution: loadgen's p50 varied 13% between its own rounds" in cc.table(queueing, v)
    assert "caution" not in cc.table(_runs([45.4], [44.6]), cc.verdict(_runs([45.4], [44.6])))


def test_table_shows_every_run_the_medians_and_the_verdict():
    runs = _runs([68.3, 67.2], [65.9, 64.4])
    text = cc.table(runs, cc.verdict(runs))
    lines = text.splitlines()
    assert len(lines) == 1 + 4 + 2 + 1
    assert "vegeta's own report: p50 65.9" in lines[2] and "start lag p50 0.2, max 2.0 ms" in lines[2]
    assert lines[-1] == f"p50 ratio loadgen/vegeta {(68.3 + 67.2) / (65.9 + 64.4):.3f}: within 10%"
    assert "p50 by serving node: node-2 67.8" in lines[-3]
    far = _runs([90.0], [50.0])
    assert cc.table(far, cc.verdict(far)).endswith("NOT within 10%")


def test_rounds_alternate_which_tool_goes_first():
    assert [cc.round_order(i) for i in range(3)] == [("loadgen", "vegeta"), ("vegeta", "loadgen"),
                                                      ("loadgen", "vegeta")]


def test_attack_is_open_loop_with_a_new_connection_per_request_and_bounded(tmp_path, monkeypatch):
    calls = []

    def fake_vegeta(cmd, timeout):
        calls.append((cmd, timeout))
        return {"encode": ENCODED, "report": REPORT}.get(cmd[1], "")

    monkeypatch.setattr(vg, "_vegeta", fake_vegeta)
    samples, report, cpu = vg.attack(Path("/c/vegeta"), "rap-node-1", "http://10.215.0.10:80/", tmp_path / "r.bin",
                                     rate=40, duration_s=15, timeout_s=10)
    (attack, timeout), encode, rep = calls
    assert attack[:6] == ["ip", "netns", "exec", "rap-node-1", "/c/vegeta", "attack"] and timeout == 55
    for flag in ("-rate=40/1s", "-duration=15s", "-timeout=10s", "-keepalive=false", "-http2=false",
                 "-max-workers=410", f"-output={tmp_path / 'r.bin'}", f"-targets={tmp_path / 'r.targets'}"):
        assert flag in attack
    assert (tmp_path / "r.targets").read_text() == "GET http://10.215.0.10:80/\n"
    assert encode[0][1:] == ["encode", "-to=json", str(tmp_path / "r.bin")] and rep[0][1] == "report"
    assert len(samples) == 4 and report["requests"] == 4 and cpu >= 0


def test_defaults_parse_and_name_a_new_results_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opts = cc.parse_options()
    assert (opts.scenario, opts.policy, opts.rate, opts.duration_s, opts.rounds) == ("rates", "round-robin",
                                                                                     20, 15.0, 3)
    assert opts.out.startswith("results/crosscheck-")
    assert cc.parse_options(rate="80", duration="5", rounds="2", policy="rap", scenario="geo").rate == 80


@pytest.mark.parametrize("options, message", [
    ({"rate": "2.5"}, "--rate: '2.5' is not a whole number"),
    ({"rate": "0"}, "--rate: must be 1..500"),
    ({"rate": "forty"}, "--rate: 'forty' is not a whole number"),
    ({"duration": "0"}, "--duration: 0s outside (0, 120]"),
    ({"duration": "600"}, "--duration: 600s outside"),
    ({"rate": "2", "duration": "5"}, "--rate x --duration: 10 requests per run are too few"),
    ({"rounds": "0"}, "--rounds: must be 1..10"),
    ({"warmup": "-1"}, "--warmup: -1s outside"),
    ({"timeout": "0"}, "--timeout: 0s outside"),
    ({"scenario": "mars"}, "--scenario: unknown 'mars'; choose balanced, geo"),
    ({"policy": "random"}, "--policy: unknown 'random'; choose round-robin, rap"),
])
def test_bad_options(options, message):
    with pytest.raises(cc.CrossCheckOptionError) as err:
        cc.parse_options(**options)
    assert str(err.value).startswith(message) and isinstance(err.value, OptionError)
    assert err.value.exit_code == 2


def test_out_folder_must_be_new_or_empty(tmp_path):
    assert cc.parse_options(out=str(tmp_path)).out == str(tmp_path)
    (tmp_path / "old.json").write_text("{}")
    with pytest.raises(cc.CrossCheckOptionError, match="exists and is not an empty folder"):
        cc.parse_options(out=str(tmp_path))


def test_task_rejects_a_bad_option_in_one_line_before_any_cluster():
    proc = subprocess.run([sys.executable, "-m", "invoke", "bench-crosscheck", "--rounds", "99"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 2 and lines == ["error: --rounds: must be 1..10, got 99"]


def test_help_explains_every_option():
    out = subprocess.run([sys.executable, "-m", "invoke", "--help", "bench-crosscheck"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60).stdout
    for opt in ("--scenario", "--policy", "--rate", "--duration", "--rounds", "--warmup", "--timeout", "--out"):
        assert opt in out
    assert "(default 20)" in out and "(default round-robin)" in out


class _FakeGo:
    """run_go stand-in: records the commands; `install` drops a binary into GOBIN."""

    def __init__(self, checksum: str = vg.SUM) -> None:
        self.calls: list[list[str]] = []
        self.checksum = checksum

    def __call__(self, args, cwd, env, what, capture=False):
        self.calls.append(args)
        if args[:2] == ["mod", "download"]:
            return json.dumps({"Path": vg.MODULE, "Version": vg.VERSION, "Sum": self.checksum})
        bin_dir = Path(env["GOBIN"])
        bin_dir.mkdir(parents=True, exist_ok=True)
        (bin_dir / "vegeta").write_text("#!/bin/sh\n")
        return ""


@pytest.fixture
def fake_go(tmp_path, monkeypatch):
    from rap.build import toolchain

    monkeypatch.setenv("RAP_CACHE", str(tmp_path))
    monkeypatch.setattr(toolchain, "go_version", lambda env: "go1.26.8")
    go = _FakeGo()
    monkeypatch.setattr(toolchain, "run_go", go)
    return go


def test_vegeta_is_built_once_pinned_into_the_cache(fake_go, tmp_path):
    path = vg.build()
    assert path == tmp_path / "bin" / "vegeta" and path.is_file()
    install = fake_go.calls[1]
    assert install[0] == "install" and install[-1] == "github.com/tsenart/vegeta/v12@v12.13.0"
    assert vg.build() == path and len(fake_go.calls) == 2  # the stamp matches: no second build
    assert not list((tmp_path / "tmp").iterdir())  # the build folder is gone


def test_a_checksum_other_than_the_pinned_one_is_refused(fake_go, tmp_path):
    fake_go.checksum = "h1:somethingelse="
    with pytest.raises(vg.VegetaError, match="not the pinned h1:J/UiNS3f"):
        vg.build()
    assert not (tmp_path / "bin" / "vegeta").exists() and len(fake_go.calls) == 1
