"""rap.aggregator.publish: the objects of docs/scale.md's contract, and the changes-only rule with hysteresis."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from rap.aggregator import publish
from rap.aggregator.publish import Rule, changed, plan
from rap.aggregator.usage import Load, NodeRecord
from rap.config import RapConfig

RULE = Rule.of(RapConfig())  # step 0.05; cpu 0.8 and 0.7, mem 0.9 and 0.8


def rec(node=Load(0.3, 0.4), pods=None, ip="10.213.0.11", name="node-1"):
    return NodeRecord(name, ip, node, {"10.214.1.11": Load(0.2, 0.3)} if pods is None else pods)


def test_the_rule_reads_the_thresholds_and_each_minus_the_hysteresis():
    assert RULE.step == 0.05
    assert RULE.cpu == (0.8, 0.8 - 0.1) and RULE.mem == (0.9, 0.9 - 0.1)
    assert not changed(rec(Load(0.69, 0.1)), rec(Load(0.70, 0.1)), RULE)  # both below 0.7000000000000001
    other = Rule.of(RapConfig(cpu_threshold=0.6, mem_threshold=0.7, hysteresis=0.2), 0.1)
    assert (other.step, other.cpu, other.mem) == (0.1, (0.6, 0.6 - 0.2), (0.7, 0.7 - 0.2))


def test_steady_state_writes_nothing():
    published = {"node-1": rec(), "node-2": rec(name="node-2", ip="10.213.0.12")}
    assert len(plan(published, dict(published), RULE)) == 0
    # small moves under the step, on the same side of every threshold, are not written either
    wobble = {"node-1": rec(Load(0.34, 0.44), {"10.214.1.11": Load(0.16, 0.26)}),
              "node-2": rec(name="node-2", ip="10.213.0.12")}
    assert len(plan(published, wobble, RULE)) == 0


@pytest.mark.parametrize("old, new", [
    (0.30, 0.35), (0.35, 0.30),  # a whole step, despite 0.35 - 0.3 being 0.04999... in floats
    (0.79, 0.80), (0.80, 0.79),  # cpu_threshold crossed, up or down, by 0.01
    # cpu_threshold - hysteresis crossed: 0.8 - 0.1 is 0.7000000000000001, so the decision (which
    # subtracts the same way) sees 0.70 below it and 0.71 above, and so does the rule
    (0.70, 0.71), (0.71, 0.70),
])
def test_a_step_or_a_threshold_crossing_rewrites_the_cpu(old, new):
    assert changed(rec(Load(old, 0.1)), rec(Load(new, 0.1)), RULE)
    assert changed(rec(pods={"10.214.1.11": Load(old, 0.1)}), rec(pods={"10.214.1.11": Load(new, 0.1)}), RULE)


@pytest.mark.parametrize("old, new, write", [
    (0.89, 0.90, True), (0.90, 0.89, True), (0.79, 0.80, True), (0.81, 0.89, True),
    (0.81, 0.84, False), (0.91, 0.96, True), (0.91, 0.95, False),
])
def test_memory_has_its_own_thresholds(old, new, write):
    assert changed(rec(Load(0.1, old)), rec(Load(0.1, new)), RULE) is write


def test_a_crossing_is_written_even_with_a_large_step():
    coarse = Rule.of(RapConfig(), 1.0)
    assert not changed(rec(Load(0.1, 0.1)), rec(Load(0.6, 0.1)), coarse)
    assert changed(rec(Load(0.79, 0.1)), rec(Load(0.8, 0.1)), coarse)


def test_a_step_of_zero_writes_every_change():
    fine = Rule.of(RapConfig(), 0.0)
    assert changed(rec(Load(0.3, 0.1)), rec(Load(0.31, 0.1)), fine)
    assert not changed(rec(Load(0.3, 0.1)), rec(Load(0.3, 0.1)), fine)


def test_a_change_of_pods_ip_or_sample_presence_is_written():
    base = rec()
    assert changed(base, rec(pods={}), RULE)  # pod gone
    assert changed(base, rec(pods={"10.214.1.11": Load(0.2, 0.3), "10.214.1.12": Load(0, 0)}), RULE)  # pod added
    assert changed(base, rec(pods={"10.214.1.12": Load(0.2, 0.3)}), RULE)  # same count, another pod
    assert changed(base, rec(ip="10.213.0.99"), RULE)
    assert changed(base, rec(node=None), RULE) and changed(rec(node=None), base, RULE)
    assert changed(None, base, RULE)  # unreadable ConfigMap: rewritten


def test_plan_creates_new_nodes_replaces_changed_ones_and_deletes_gone_ones():
    published = {"node-1": rec(), "node-2": rec(name="node-2"), "node-3": None}
    current = {"node-1": rec(), "node-2": rec(Load(0.9, 0.4), name="node-2"), "node-3": rec(name="node-3"),
               "node-4": rec(name="node-4")}
    del current["node-1"]
    p = plan(published, current, RULE)
    assert [r.name for r in p.create] == ["node-4"]
    assert [r.name for r in p.replace] == ["node-2", "node-3"]
    assert p.delete == ["node-1"] and len(p) == 4


def test_a_node_whose_configmap_name_would_be_too_long_is_left_out():
    long = "n" * (publish.MAX_NAME - len(publish.PREFIX) + 1)
    assert not publish.publishable(long) and publish.publishable("n" * (publish.MAX_NAME - len(publish.PREFIX)))
    assert len(plan({}, {long: rec(name=long)}, RULE)) == 0


def test_the_configmap_is_the_contracts():
    cm = publish.configmap(rec(), "kube-system")
    assert cm["metadata"]["name"] == "rap-load-node-1" and cm["metadata"]["namespace"] == "kube-system"
    assert cm["metadata"]["labels"]["rap.io/load"] == "true"
    assert set(cm["data"]) == {"node", "pods"}
    assert json.loads(cm["data"]["node"]) == {"name": "node-1", "ip": "10.213.0.11", "cpu": 0.3, "mem": 0.4}
    assert json.loads(cm["data"]["pods"]) == {"10.214.1.11": {"cpu": 0.2, "mem": 0.3}}
    # no sample: the node key has no cpu or mem (rap.go's parseRAPLoad then publishes no node usage)
    assert json.loads(publish.data(rec(node=None, pods={}))["node"]) == {"name": "node-1", "ip": "10.213.0.11"}


def test_a_record_is_labelled_with_its_node_id_whatever_the_name():
    assert publish.configmap(rec(), "kube-system")["metadata"]["labels"]["rap.io/node-id"] == publish.node_id("node-1")
    assert publish.node_id("node-a") == "66570ff05a207404"  # rap.go's rapNodeID gives the same
    long = "n" * 253  # a valid node name, far too long for a label value
    assert len(publish.labels(long)["rap.io/node-id"]) == 16 and publish.labels(long)["rap.io/load"] == "true"


@pytest.mark.parametrize("record", [rec(), rec(node=None, pods={}), rec(ip="")])
def test_what_is_written_reads_back_as_the_same_record(record):
    assert publish.read(publish.data(record)) == record


@pytest.mark.parametrize("data", [None, {}, {"node": "{"}, {"node": "[]", "pods": "{}"},
                                  {"node": '{"name": "n"}', "pods": '{"10.0.0.1": {"cpu": "x", "mem": 0}}'},
                                  {"node": '{"name": "n", "cpu": 0.1}', "pods": "{}"}])
def test_a_configmap_that_does_not_read_is_none(data):
    assert publish.read(data) is None


def test_the_lease_carries_the_metrics_timestamp_in_rfc3339():
    ts = datetime(2026, 1, 1, 0, 0, 5, tzinfo=timezone.utc)
    now = datetime(2026, 1, 1, 0, 0, 6, 250000, tzinfo=timezone.utc)
    lease = publish.lease("kube-system", "me", 15, ts, now)
    assert lease["metadata"]["name"] == "rap-aggregator"
    assert lease["metadata"]["annotations"] == {"rap.io/metrics-timestamp": "2026-01-01T00:00:05Z"}
    assert lease["spec"] == {"holderIdentity": "me", "leaseDurationSeconds": 15,
                             "acquireTime": "2026-01-01T00:00:06.250000Z", "renewTime": "2026-01-01T00:00:06.250000Z"}
    assert publish.rfc3339(now) == "2026-01-01T00:00:06.25Z"
