import json
from pathlib import Path

import pytest

from rap.paths import VECTORS_DIR
from rap.vectors import VectorError, load_all, load_vector, run_all, run_vector

VECTOR_FILES = sorted(VECTORS_DIR.glob("*.json"))


def test_there_are_enough_vectors_covering_every_rule():
    vectors = load_all(VECTORS_DIR)
    assert len(vectors) >= 40
    covered = {rule for v in vectors for rule in v.data["rules"]}
    required = {
        "affinity", "blind", "local", "local-pod-overloaded", "local-node-overloaded",
        "scoring", "tie-break", "unmeasured", "stale", "all-overloaded", "churn",
        "adaptive", "cost", "spread", "hysteresis", "active", "retry", "ejection", "partial-metrics",
        "selectorless", "multi-port", "endpoints-add", "usage-above-1", "aggregated",
    }
    assert required <= covered, sorted(required - covered)
    modes = {v.data.get("config", {}).get("mode", "adaptive") for v in vectors}
    assert modes == {"classic", "adaptive"}


@pytest.mark.parametrize("path", VECTOR_FILES, ids=[p.stem for p in VECTOR_FILES])
def test_reference_matches_vector(path):
    mismatches = run_vector(load_vector(path))
    assert not mismatches, "\n".join(map(str, mismatches))


def _write(tmp_path: Path, name: str, data) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def _valid() -> dict:
    return json.loads((VECTORS_DIR / "local-preference-basic.json").read_text())


def test_schema_violation_names_file_and_field(tmp_path):
    data = _valid()
    data["endpoints"][1]["port"] = "eighty"
    path = _write(tmp_path, data["name"], data)
    with pytest.raises(VectorError) as err:
        load_vector(path)
    assert str(path) in str(err.value)
    assert "$.endpoints[1].port" in str(err.value)


def test_unknown_step_kind_is_rejected(tmp_path):
    data = _valid()
    data["steps"].append({"sleep": 3})
    path = _write(tmp_path, data["name"], data)
    with pytest.raises(VectorError, match=r"\$\.steps\[4\]"):
        load_vector(path)


def test_out_of_range_config_is_rejected_with_field(tmp_path):
    data = _valid()
    data["config"] = {"cpu_threshold": 1.5}
    path = _write(tmp_path, data["name"], data)
    with pytest.raises(VectorError, match=r"\$\.config\.cpu_threshold: must be in \(0, 1\]"):
        load_vector(path)


def test_time_going_back_is_rejected(tmp_path):
    data = _valid()
    data["steps"][2]["request"]["at"] = 0.5
    path = _write(tmp_path, data["name"], data)
    with pytest.raises(VectorError, match=r"\$\.steps\[2\]\.request\.at"):
        load_vector(path)


def test_name_must_match_file(tmp_path):
    path = _write(tmp_path, "other-name", _valid())
    with pytest.raises(VectorError, match=r"\$\.name"):
        load_vector(path)


def test_invalid_json_is_rejected(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{")
    with pytest.raises(VectorError, match="not valid JSON"):
        load_vector(path)


def test_runner_reports_a_wrong_expectation(tmp_path):
    data = _valid()
    data["steps"][1]["expect"] = "10.0.3.1:8080"
    _write(tmp_path, data["name"], data)
    report = run_all(tmp_path)
    assert not report.ok
    [mismatch] = report.mismatches
    assert str(mismatch) == (
        "local-preference-basic: request 1 (step 1): expected 10.0.3.1:8080, got 10.0.1.2:8080"
    )


def test_empty_directory_is_an_error(tmp_path):
    with pytest.raises(VectorError, match="no \\*.json vectors"):
        run_all(tmp_path)


# ---- the extended format: modes, bookkeeping steps, ports ----

def _vector(steps, endpoints=None, metrics=None, **extra) -> dict:
    return {
        "name": "extended", "description": "a test's vector", "rules": ["adaptive"], "local_node": "node-a",
        "service": {"affinity": "None"},
        "endpoints": endpoints if endpoints is not None else [
            {"ip": "10.0.1.1", "port": 80, "node": "node-a"}, {"ip": "10.0.2.1", "port": 80, "node": "node-b"}],
        "metrics": metrics if metrics is not None else {
            "pods": {"10.0.1.1": {"cpu": 0, "mem": 0, "at": 0}}, "rtt_ms": {"node-b": {"ms": 10, "at": 0}}},
        "steps": steps, **extra,
    }


def _req(at, expect, **request):
    return {"request": {"client": "10.9.0.1", "at": at, **request}, "expect": expect}


def _run(tmp_path, data):
    return run_vector(load_vector(_write(tmp_path, data["name"], data)))


def test_the_default_mode_is_adaptive_and_classic_is_asked_for(tmp_path):
    # adaptive: local 1, 2 (tie with the remote's 1 + 10/10, lower RTT), then the remote at 3 > 2
    spill = [_req(1, "10.0.1.1:80"), _req(1, "10.0.1.1:80"), _req(1, "10.0.2.1:80")]
    assert _run(tmp_path, _vector(spill)) == []
    [mismatch] = _run(tmp_path, _vector(spill, config={"mode": "classic"}))  # classic stays local
    assert (mismatch.request_index, mismatch.actual) == (2, "10.0.1.1:80")


def test_done_ends_a_connection(tmp_path):
    steps = [_req(1, "10.0.1.1:80"), _req(1, "10.0.1.1:80"), {"done": {"endpoint": "10.0.1.1:80"}},
             {"done": {"endpoint": "10.0.1.1:80"}}, _req(1, "10.0.1.1:80"), _req(1, "10.0.1.1:80")]
    assert _run(tmp_path, _vector(steps)) == []


def test_src_port_defaults_to_40000_plus_the_step_index(tmp_path):
    # step 0 from port 40000 gets 10.0.1.1; its retry names that port and reports the failed dial
    steps = [_req(1, "10.0.1.1:80"), _req(2, "10.0.2.1:80", affinity_reset=True, src_port=40000),
             _req(3, "10.0.2.1:80"), {"done": {"endpoint": "10.0.2.1:80"}}, {"done": {"endpoint": "10.0.2.1:80"}},
             _req(12, "10.0.2.1:80"), _req(12.5, "10.0.1.1:80")]
    assert _run(tmp_path, _vector(steps)) == []  # ejected until 2 + eject_s (10), inclusive
    # from another port it is not a retry: nothing ejected, and local's 2 ties the remote's 2 on cost
    other_port = [_req(1, "10.0.1.1:80"), _req(2, "10.0.1.1:80", affinity_reset=True, src_port=40001)]
    assert _run(tmp_path, _vector(other_port)) == []


def test_each_port_name_is_its_own_service_with_shared_metrics(tmp_path):
    endpoints = [{"ip": "10.0.1.1", "port": 80, "node": "node-a"}, {"ip": "10.0.1.2", "port": 80, "node": "node-a"},
                 {"ip": "10.0.1.1", "port": 9000, "node": "node-a", "port_name": "admin"},
                 {"ip": "10.0.1.2", "port": 9000, "node": "node-a", "port_name": "admin"}]
    metrics = {"pods": {"10.0.1.1": {"cpu": 0.9, "mem": 0, "at": 0}, "10.0.1.2": {"cpu": 0, "mem": 0, "at": 0}}}
    steps = [_req(1, "10.0.1.2:80"), _req(1, "10.0.1.2:9000", port_name="admin"),
             {"set_endpoints": [endpoints[0], endpoints[1]]},  # the admin port is left out: emptied
             {"request": {"client": "10.9.0.1", "at": 2, "port_name": "admin"}, "expect_error": "no-endpoints"},
             {"add_endpoints": [endpoints[3]]},  # OnEndpointsAdd of the admin port alone: http is left alone
             _req(3, "10.0.1.2:9000", port_name="admin"), _req(3, "10.0.1.2:80"),
             {"request": {"client": "10.9.0.1", "at": 3, "port_name": "dns"}, "expect_error": "no-endpoints"}]
    assert _run(tmp_path, _vector(steps, endpoints, metrics, config={"mode": "classic"})) == []


def test_add_endpoints_replaces_the_same_set(tmp_path):
    eps = [{"ip": f"10.0.1.{i}", "port": 80, "node": "node-a"} for i in (1, 2, 3)]
    steps = [_req(1, "10.0.1.1:80"), {"set_endpoints": eps},
             _req(2, "10.0.1.2:80"),  # update path, same set: the round robin goes on
             {"add_endpoints": eps},
             _req(3, "10.0.1.1:80")]  # add path: replaced, index back to 0
    assert _run(tmp_path, _vector(steps, eps, metrics={})) == []


def test_a_retry_names_the_source_port_of_the_connection_it_repeats(tmp_path):
    # blind round robin: step 0 (port 40000) gets .1, step 1 (port 40001) .2; the retry of step 0
    # ejects .1, so the round robin, back at .1, skips it
    steps = [_req(1, "10.0.1.1:80"), _req(1, "10.0.2.1:80"),
             _req(2, "10.0.2.1:80", affinity_reset=True, src_port=40000), _req(3, "10.0.2.1:80")]
    assert _run(tmp_path, _vector(steps, metrics={})) == []


def test_a_selectorless_endpoint_has_an_empty_node(tmp_path):
    endpoints = [{"ip": "192.0.2.10", "port": 80, "node": ""}, {"ip": "10.0.2.1", "port": 80, "node": "node-b"}]
    metrics = {"pods": {"192.0.2.10": {"cpu": 0, "mem": 0, "at": 0}, "10.0.2.1": {"cpu": 0, "mem": 0, "at": 0}},
               "rtt_ms": {"node-b": {"ms": 5, "at": 0}, "node-c": {"ms": 30, "at": 0}}}
    data = _vector([_req(1, "10.0.2.1:80")], endpoints, metrics, rules=["selectorless", "cost"])
    assert _run(tmp_path, data) == []  # 1 + 5/10 beats 1 + rtt_max/10


@pytest.mark.parametrize("edit, where", [
    (lambda d: d["endpoints"][0].update(port_name=""), r"\$\.endpoints\[0\]\.port_name"),
    (lambda d: d["steps"][0]["request"].update(src_port=0), r"\$\.steps\[0\]"),
    (lambda d: d["steps"].append({"done": {"endpoint": "10.0.1.1"}}), r"\$\.steps\[1\]"),
    (lambda d: d["steps"].append({"done": {}}), r"\$\.steps\[1\]"),
    (lambda d: d.update(rules=["adaptive", "magic"]), r"\$\.rules\[1\]"),
])
def test_the_extended_format_is_checked(tmp_path, edit, where):
    data = _vector([_req(1, "10.0.1.1:80")])
    edit(data)
    with pytest.raises(VectorError, match=where):
        load_vector(_write(tmp_path, data["name"], data))


def test_a_bad_mode_names_the_field_and_the_choices(tmp_path):
    data = _vector([_req(1, "10.0.1.1:80")], config={"mode": "fast"})
    with pytest.raises(VectorError, match=r"\$\.config\.mode: must be one of adaptive, classic, got 'fast'"):
        load_vector(_write(tmp_path, data["name"], data))


def test_every_new_rule_name_is_accepted(tmp_path):
    rules = ["adaptive", "cost", "spread", "hysteresis", "active", "retry", "ejection", "partial-metrics",
             "selectorless", "multi-port", "endpoints-add", "usage-above-1"]
    data = _vector([_req(1, "10.0.1.1:80")], rules=rules)
    assert load_vector(_write(tmp_path, data["name"], data)).data["rules"] == rules


# ---- published: the aggregator's objects instead of the snapshot ----

def _published(node_a_pods, with_node_a=True, lease=None):
    maps = {"rap-load-node-b": {"node": '{"name":"node-b","ip":"10.1.0.2"}', "pods": '{"10.0.2.1":{"cpu":0,"mem":0}}'}}
    if with_node_a:
        maps["rap-load-node-a"] = {"node": '{"name":"node-a"}', "pods": json.dumps(node_a_pods)}
    return {"configmaps": maps, "lease": lease or {"metrics_timestamp": "2027-01-15T08:00:00Z"},
            "rtt_ms": {"node-b": {"ms": 10, "at": 0}}}


def _published_vector(steps, **published):
    data = _vector(steps, published=_published({"10.0.1.1": {"cpu": 0.95, "mem": 0.1}}, **published),
                   wall_clock_at_0="2027-01-15T08:00:00Z")
    del data["metrics"]
    return data


def test_set_published_deletes_the_configmaps_it_leaves_out(tmp_path):
    # a1 hot (0.95) -> b1; node-a's ConfigMap deleted: a1 unmeasured, cost 1 < b1's (1+1) + 1 -> a1.
    # The Go harness replays the same vector (TestRAPVectorPublishedFormat).
    steps = [_req(1, "10.0.2.1:80"), {"set_published": _published({}, with_node_a=False)}, _req(2, "10.0.1.1:80")]
    assert _run(tmp_path, _published_vector(steps)) == []


def test_published_goes_through_the_proxys_own_reader(tmp_path, monkeypatch):
    from rap import vectors
    from rap.pyproxy import aggmonitor

    calls = []
    monkeypatch.setattr(vectors, "published_samples", lambda *a: calls.append(a) or aggmonitor.published_samples(*a))
    assert vectors.published_samples is not aggmonitor.published_samples
    assert _run(tmp_path, _published_vector([_req(1, "10.0.2.1:80")])) == []
    [(records, heartbeat, _, now, wall, stale_after_s)] = calls
    assert [r.node for r in records] == ["node-b", "node-a"] and heartbeat == "2027-01-15T08:00:00Z"
    assert (now, wall, stale_after_s) == (0.0, 1_800_000_000.0, 15.0)


@pytest.mark.parametrize("edit, where", [
    (lambda d: d.update(metrics={}), r"\$: keys .* exactly one of: metrics \| published"),
    (lambda d: d.pop("published"), r"\$: keys .* exactly one of: metrics \| published"),
    (lambda d: d.pop("wall_clock_at_0"), r"\$: 'wall_clock_at_0' is a required property"),
    (lambda d: d.update(wall_clock_at_0="2027-01-15T08:00:00"), r"\$\.wall_clock_at_0: .* is not an RFC 3339"),
    (lambda d: d["published"]["configmaps"].update(other={}), r"\$\.published\.configmaps: 'other' does not match"),
    (lambda d: d["published"]["lease"].update(holder="x"), r"\$\.published\.lease: Additional properties"),
])
def test_the_published_format_is_checked(tmp_path, edit, where):
    data = _published_vector([_req(1, "10.0.2.1:80")])
    edit(data)
    with pytest.raises(VectorError, match=where):
        load_vector(_write(tmp_path, data["name"], data))


def test_a_wall_clock_without_published_is_refused(tmp_path):
    data = _vector([_req(1, "10.0.1.1:80")], wall_clock_at_0="2027-01-15T08:00:00Z")
    with pytest.raises(VectorError, match=r"\$\.wall_clock_at_0: only a vector with published"):
        load_vector(_write(tmp_path, data["name"], data))
    data["steps"].append({"set_published": _published({})})  # a step that publishes needs it, and may have it
    assert _run(tmp_path, data) == []
