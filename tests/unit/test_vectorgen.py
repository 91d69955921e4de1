"""Fast tests of rap.vectorgen: its vectors are valid, replay on the reference, and cover every rule.

Replaying on Python matches by construction (every expect is the reference's
answer), so most tests here check the other half: that the generator really
produces each situation the differential test is meant to stress, counted
from the vectors' JSON, not from the generator's own bookkeeping.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from rap import vectorgen
from rap.config import RapConfig
from rap.errors import OptionError
from rap.paths import REPO
from rap.vectors import load_all, load_vector, run_all, run_vector

SAMPLE_SEED = 7
SAMPLE_SIZE = 120


@pytest.fixture(scope="module")
def sample() -> list[dict]:
    rng = random.Random(SAMPLE_SEED)
    return [vectorgen.generate_vector(rng, f"sample-{i:04d}") for i in range(SAMPLE_SIZE)]


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / f"{data['name']}.json"
    path.write_text(json.dumps(data))
    return path


# A vector is large by nature (at least 5 requests over a cluster), so hypothesis' size checks do not apply.
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example, HealthCheck.data_too_large])
@given(vectorgen.vectors())
def test_generated_vectors_validate_and_replay_on_the_reference(tmp_path_factory, data):
    path = _write(tmp_path_factory.mktemp("hyp"), data)
    vector = load_vector(path)  # the schema and the semantic checks
    assert run_vector(vector) == []


def test_sample_validates_and_replays(tmp_path, sample):
    for data in sample:
        _write(tmp_path, data)
    report = run_all(tmp_path)
    assert report.vectors == SAMPLE_SIZE
    assert report.mismatches == []


def test_a_wrong_expect_is_caught_by_the_python_runner(sample):
    data = next(d for d in sample if len({s.get("expect") for s in d["steps"]} - {None}) >= 2)
    requests = [s for s in data["steps"] if "request" in s]
    k = next(i for i, s in enumerate(requests) if "expect" in s)
    right = requests[k]["expect"]
    wrong = next(s["expect"] for s in requests if s.get("expect") not in (None, right))
    corrupt = json.loads(json.dumps(data))
    [s for s in corrupt["steps"] if "request" in s][k]["expect"] = wrong
    mismatches = run_vector(vectorgen._vector(corrupt["name"], corrupt))
    assert [(m.request_index, m.expected, m.actual) for m in mismatches] == [(k, wrong, right)]


def test_same_seed_writes_the_same_files(tmp_path):
    a = vectorgen.write_vectors(tmp_path / "a", 150, seed=3)
    b = vectorgen.write_vectors(tmp_path / "b", 150, seed=3)
    assert a.decisions >= 150 and (a.vectors, a.decisions) == (b.vectors, b.decisions)
    for path in sorted((tmp_path / "a").glob("*.json")):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()


def test_the_command_writes_valid_vectors_and_a_summary(tmp_path, capsys):
    assert vectorgen.main(["--out", str(tmp_path), "--decisions", "200", "--seed", "11"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    vectors = load_all(tmp_path)
    requests = sum(vectorgen.count_requests(v.data) for v in vectors)
    assert line.startswith(f"{len(vectors)} vectors, {requests} decisions (seed 11)")
    assert requests >= 200
    assert run_all(tmp_path).mismatches == []


def test_the_module_runs_as_a_command_with_help():
    out = subprocess.run([sys.executable, "-m", "rap.vectorgen", "--help"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    for option in ("--out", "--decisions", "--seed"):
        assert option in out


# ---- coverage: what the sample contains, read from the JSON ----

def _requests(data: dict) -> list[dict]:
    return [s for s in data["steps"] if "request" in s]


def _src(req: dict, step_index: int) -> tuple[str, int, str]:
    return req["client"], req.get("src_port", 40000 + step_index), req.get("port_name", "http")


def _retries(data: dict) -> Counter:
    """Retries by how long after the same source's previous request they come."""
    seen: dict[tuple, float] = {}
    out: Counter = Counter()
    for i, step in enumerate(data["steps"]):
        req = step.get("request")
        if req is None:
            continue
        src = _src(req, i)
        if req.get("affinity_reset"):
            if src not in seen:
                out["reset-without-earlier-dial"] += 1
            else:
                gap = req["at"] - seen[src]
                out["within-20s" if gap < 20 else "at-20s" if gap == 20 else "beyond-20s"] += 1
        seen[src] = req["at"]
    return out


def _at_bounds(data: dict) -> Counter:
    """Requests that fall exactly on a rule's bound: an ejection's end, a sample's freshness, an affinity's expiry."""
    cfg = RapConfig.from_mapping(data.get("config"))
    ttl = data["service"].get("affinity_timeout_s", 0) if data["service"]["affinity"] == "ClientIP" else 0
    out: Counter = Counter()
    ejections, stale_at, last_by_client = set(), set(), {}
    seen: dict[tuple, float] = {}
    snap = data["metrics"]
    for i, step in enumerate(data["steps"]):
        snap = step.get("set_metrics", snap)
        req = step.get("request")
        if req is None:
            continue
        at, src = req["at"], _src(req, i)
        stale_at = {u["at"] + cfg.stale_after_s for table in snap.values() for u in table.values()}
        out["request at a sample's freshness bound"] += at in stale_at
        out["request at an ejection's end"] += at in ejections
        out["request at an affinity's expiry"] += bool(ttl) and last_by_client.get(req["client"], -1) + ttl == at
        if req.get("affinity_reset") and src in seen and at - seen[src] <= 20:
            ejections.add(at + cfg.eject_s)
        seen[src] = last_by_client[req["client"]] = at
    return out


def _endpoint_changes(data: dict) -> Counter:
    out: Counter = Counter()
    current = data["endpoints"]
    for step in data["steps"]:
        for kind in ("set_endpoints", "add_endpoints"):
            if kind not in step:
                continue
            new = step[kind]
            addrs = lambda eps: sorted((e["ip"], e["port"]) for e in eps)  # noqa: E731
            if not new:
                out[f"{kind}:empty"] += 1
            elif addrs(new) == addrs(current):
                same_nodes = sorted(map(json.dumps, new)) == sorted(map(json.dumps, current))
                out[f"{kind}:same-set{'' if same_nodes else '-new-nodes'}"] += 1
                if [(e["ip"], e["port"]) for e in new] != [(e["ip"], e["port"]) for e in current]:
                    out[f"{kind}:reordered"] += 1
            else:
                out[f"{kind}:changed"] += 1
            current = new
    return out


def _metric_features(data: dict) -> Counter:
    out: Counter = Counter()
    cfg = RapConfig.from_mapping(data.get("config"))
    first = _requests(data)[0]["request"]["at"]
    snaps = [data["metrics"], *(s["set_metrics"] for s in data["steps"] if "set_metrics" in s)]
    for snap in snaps:
        usages = [*snap.get("pods", {}).values(), *snap.get("nodes", {}).values()]
        out["usage>1"] += any(max(u["cpu"], u["mem"]) > 1 for u in usages)
        out["usage=threshold"] += any(u["cpu"] == cfg.cpu_threshold for u in usages)
        out["usage=threshold-hysteresis"] += cfg.hysteresis > 0 and any(
            u["cpu"] == cfg.cpu_threshold - cfg.hysteresis for u in usages)
        out["off-grid float"] += any(round(u["cpu"], 2) != u["cpu"] for u in usages)
        pairs = Counter((u["cpu"], u["mem"]) for u in snap.get("pods", {}).values())
        out["equal pod samples"] += any(n > 1 for n in pairs.values())
        out["rtt 0"] += any(r["ms"] == 0 for r in snap.get("rtt_ms", {}).values())
        out["rtt to local node"] += data["local_node"] in snap.get("rtt_ms", {})
    snap = data["metrics"]
    ats = [u["at"] for table in snap.values() for u in table.values()]
    out["stale at first request"] += any(first - at > cfg.stale_after_s for at in ats)
    out["at exactly stale_after"] += any(first - at == cfg.stale_after_s for at in ats)
    nodes = {e["node"] for e in data["endpoints"]} - {"", data["local_node"]}
    out["rtt missing"] += bool(nodes - set(snap.get("rtt_ms", {})))
    out["pod metric missing"] += any(e["ip"] not in snap.get("pods", {}) for e in data["endpoints"])
    return out


def _features(data: dict) -> Counter:
    out: Counter = Counter()
    cfg = data.get("config", {})
    out[f"mode:{cfg.get('mode', 'default')}"] += 1
    out["config beyond mode"] += bool(set(cfg) - {"mode"})
    svc = data["service"]
    out[f"affinity:{svc['affinity']}"] += 1
    out["affinity timeout <= 5 s"] += 0 < svc.get("affinity_timeout_s", 0) <= 5
    nodes = {e["node"] for e in data["endpoints"]}
    out["selectorless endpoint"] += "" in nodes
    out["endpoints on >= 5 nodes"] += len(nodes - {""}) >= 5
    out["endpoints on 1 node"] += len(nodes) == 1
    out["local node without endpoints"] += data["local_node"] not in nodes
    out["multi-port"] += len({e.get("port_name", "http") for e in data["endpoints"]}) > 1
    out["12 endpoints"] += len(data["endpoints"]) >= 12
    out["no-endpoints answer"] += any("expect_error" in s for s in data["steps"])
    out["done"] += sum("done" in s for s in data["steps"])
    answered = {s["expect"] for s in data["steps"] if "expect" in s}
    out["done of an answered endpoint"] += sum(
        s["done"]["endpoint"] in answered for s in data["steps"] if "done" in s)
    out["done of a never-answered address"] += sum(
        s["done"]["endpoint"] not in answered for s in data["steps"] if "done" in s)
    out["set_metrics"] += sum("set_metrics" in s for s in data["steps"])
    out["same-time requests"] += any(a["request"]["at"] == b["request"]["at"]
                                     for a, b in zip(_requests(data), _requests(data)[1:]))
    return out + _retries(data) + _at_bounds(data) + _endpoint_changes(data) + _metric_features(data)


# Each must occur in the sample at least this often.
EXPECTED_AT_LEAST = {
    "mode:adaptive": 20, "mode:classic": 20, "mode:default": 20, "config beyond mode": 30,
    "affinity:None": 20, "affinity:ClientIP": 20, "affinity timeout <= 5 s": 10,
    "selectorless endpoint": 10, "endpoints on >= 5 nodes": 5, "endpoints on 1 node": 5,
    "local node without endpoints": 5, "multi-port": 10,
    "12 endpoints": 3, "no-endpoints answer": 2,
    "done": 200, "done of an answered endpoint": 150, "done of a never-answered address": 5,
    "set_metrics": 50, "same-time requests": 30,
    "within-20s": 100, "at-20s": 10, "beyond-20s": 20, "reset-without-earlier-dial": 20,
    "request at a sample's freshness bound": 20, "request at an ejection's end": 10,
    "request at an affinity's expiry": 5,
    "set_endpoints:reordered": 5, "set_endpoints:same-set-new-nodes": 5, "set_endpoints:changed": 20,
    "set_endpoints:empty": 2, "add_endpoints:changed": 5, "add_endpoints:same-set": 2,
    "usage>1": 30, "usage=threshold": 30, "usage=threshold-hysteresis": 10, "off-grid float": 20,
    "equal pod samples": 30, "rtt 0": 30, "rtt to local node": 5, "stale at first request": 20,
    "at exactly stale_after": 10, "rtt missing": 10, "pod metric missing": 30,
}


def test_the_sample_covers_every_situation(sample):
    total = sum((_features(d) for d in sample), Counter())
    short = {k: total[k] for k, n in EXPECTED_AT_LEAST.items() if total[k] < n}
    assert not short, f"too rare in {SAMPLE_SIZE} vectors: {short}"


def test_the_sample_exercises_the_rules_of_the_schema(sample):
    rules = Counter(r for d in sample for r in d["rules"])
    for rule in ("adaptive", "scoring", "affinity", "retry", "active", "churn", "endpoints-add",
                 "config", "multi-port", "selectorless"):
        assert rules[rule] >= 5, (rule, rules)


def test_answers_are_spread_and_sometimes_sticky(sample):
    # A generator whose requests all got the same endpoint would test little.
    distinct = [len({s["expect"] for s in d["steps"] if "expect" in s}) for d in sample]
    assert sum(n >= 3 for n in distinct) >= SAMPLE_SIZE // 3


# ---- coverage: what the reference meets when it replays the sample ----

@pytest.fixture(scope="module")
def decisions(sample) -> Counter:
    """What kinds of decision the reference makes over the sample, counted by wrapping its steps."""
    from rap.policies import adaptive, classic

    seen: Counter = Counter()
    scores: list[float] = []
    orig_costs, orig_choose, orig_decide, orig_best, orig_score = (
        adaptive.costs, adaptive.choose, classic.decide, classic._best_remote, classic._score)

    # The wrappers pass their arguments through untouched: only what they return is read.
    def costs(t, *args):
        cost = orig_costs(t, *args)
        tied = [k for k, c in enumerate(cost) if c - min(cost) <= adaptive.COST_EPSILON]
        seen["adaptive: cost tie"] += len(tied) > 1
        seen["adaptive: cost and rtt tie"] += len({t.rtt[k] for k in tied}) < len(tied)
        return cost

    def choose(t, *args):
        i = orig_choose(t, *args)
        rtt = t.rtt[t.candidates.index(i)]
        # rtt 0: a local endpoint (or a remote one measured at 0 ms)
        seen["adaptive: " + ("rtt-0" if rtt == 0 else "farther") + " winner"] += 1
        seen["adaptive: spill past an rtt-0 candidate"] += rtt > 0 and 0 in t.rtt
        return i

    def decide(*args, **kwargs):
        plan = orig_decide(*args, **kwargs)
        seen["classic: " + plan.reason.split(":")[0].split(";")[0]] += 1
        return plan

    def best_remote(*args):
        scores.clear()
        best = orig_best(*args)
        seen["classic: score tie"] += sum(max(scores) - s <= classic.SCORE_EPSILON for s in scores) > 1
        return best

    def score(*args):
        scores.append(orig_score(*args))
        return scores[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(adaptive, "costs", costs)
        mp.setattr(adaptive, "choose", choose)
        mp.setattr(classic, "decide", decide)
        mp.setattr(classic, "_best_remote", best_remote)
        mp.setattr(classic, "_score", score)
        for data in sample:
            assert run_vector(vectorgen._vector(data["name"], data)) == []
    return seen


DECISIONS_AT_LEAST = {
    "adaptive: cost tie": 50, "adaptive: cost and rtt tie": 30, "adaptive: rtt-0 winner": 100,
    "adaptive: farther winner": 100, "adaptive: spill past an rtt-0 candidate": 20,
    "classic: blind": 5, "classic: local": 20, "classic: forward": 20, "classic: all endpoints overloaded": 5,
    "classic: score tie": 5,
}


def test_replaying_the_sample_meets_ties_and_every_kind_of_decision(decisions):
    short = {k: decisions[k] for k, n in DECISIONS_AT_LEAST.items() if decisions[k] < n}
    assert not short, f"too rare over the sample's replay: {short} (all: {dict(decisions)})"


def test_the_differential_task_refuses_a_folder_with_other_vectors(tmp_path):
    # The Go harness replays every *.json it finds, so stale files would be replayed too.
    (tmp_path / "old.json").write_text("{}")
    with pytest.raises(OptionError, match="is not an empty folder"):
        vectorgen.differential(10, seed=1, out=tmp_path)
