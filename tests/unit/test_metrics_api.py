"""rap.localcluster.metrics.api: the paths of metrics.k8s.io/v1beta1 answered as metrics-server does."""

from __future__ import annotations

import pytest

from rap.localcluster import metrics as m

from .metrics_fakes import ALL, api, fake, run  # noqa: F401 (api and fake are fixtures)


def test_node_metrics_list_fields(api, fake):
    fake.cpu = {name: 0 for name in ALL}
    run(fake, api.sampler, 6, ALL, mem={"rap/node-1": 300 << 20})
    code, body = api.get(m.PREFIX + "/nodes", {})
    assert code == 200
    assert set(body) == {"kind", "apiVersion", "metadata", "items"}
    assert body["kind"] == "NodeMetricsList" and body["apiVersion"] == "metrics.k8s.io/v1beta1"
    item = body["items"][0]
    assert set(item) == {"metadata", "timestamp", "window", "usage"}
    assert set(item["metadata"]) == {"name", "creationTimestamp"}
    assert item["usage"] == {"cpu": "600m", "memory": "300Mi"} and item["window"] == "5s"


def test_pod_metrics_list_fields(api, fake):
    fake.cpu = {name: 0 for name in ALL}
    run(fake, api.sampler, 6, ALL)
    code, body = api.get(m.PREFIX + "/pods", {})
    assert body["kind"] == "PodMetricsList"
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in body["items"]] == [
        ("default", "pod-1-1"), ("default", "pod-2-1"), ("other", "pod-1-2")]
    item = body["items"][0]
    assert set(item) == {"metadata", "timestamp", "window", "containers"}
    assert item["metadata"]["labels"] == {"app": "web", "tier": "a"}
    assert item["containers"] == [{"name": "web", "usage": {"cpu": "500m", "memory": "8Mi"}}]
    assert body["items"][1]["containers"][0]["name"] == m.DEFAULT_CONTAINER


def test_namespaced_single_and_selected_pods(api, fake):
    fake.cpu = {name: 0 for name in ALL}
    run(fake, api.sampler, 3, ALL)
    _, body = api.get(m.PREFIX + "/namespaces/other/pods", {})
    assert [i["metadata"]["name"] for i in body["items"]] == ["pod-1-2"]
    code, one = api.get(m.PREFIX + "/namespaces/default/pods/pod-2-1", {})
    assert code == 200 and one["kind"] == "PodMetrics" and one["apiVersion"] == m.GROUP_VERSION
    code, node = api.get(m.PREFIX + "/nodes/node-2", {})
    assert code == 200 and node["kind"] == "NodeMetrics" and node["usage"]["cpu"] == "100m"
    _, sel = api.get(m.PREFIX + "/pods", {"labelSelector": ["app=web,tier!=a"]})
    assert [i["metadata"]["name"] for i in sel["items"]] == ["pod-2-1"]


@pytest.mark.parametrize("selector, labels, matches", [
    ("", {}, True), ("app=web", {"app": "web"}, True), ("app==web", {"app": "db"}, False),
    ("app!=web", {}, True), ("app", {"app": ""}, True), ("!app", {"app": "web"}, False),
    ("app=web, tier", {"app": "web"}, False),
])
def test_label_selectors(selector, labels, matches):
    assert m.match_labels(selector, labels) is matches


def test_unknown_objects_are_404_status(api):
    code, body = api.get(m.PREFIX + "/nodes/node-9", {})
    assert code == 404 and body["kind"] == "Status" and body["reason"] == "NotFound"
    assert api.get(m.PREFIX + "/services", {})[0] == 404
    assert api.get("/apis/other.k8s.io/v1", {})[0] == 404


def test_failing_source_is_503_but_discovery_answers(api):
    api.failing = True
    code, body = api.get(m.PREFIX + "/pods", {})
    assert code == 503 and body["reason"] == "ServiceUnavailable"
    assert api.get(m.PREFIX, {})[0] == 200


def test_discovery_documents(api):
    _, groups = api.get("/apis", {})
    assert groups["kind"] == "APIGroupList"
    assert groups["groups"][0]["preferredVersion"] == {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}
    _, group = api.get("/apis/metrics.k8s.io", {})
    assert group["kind"] == "APIGroup" and group["name"] == "metrics.k8s.io"
    _, resources = api.get("/apis/metrics.k8s.io/v1beta1", {})
    assert resources["kind"] == "APIResourceList" and resources["groupVersion"] == "metrics.k8s.io/v1beta1"
    assert {(r["name"], r["kind"], r["namespaced"]) for r in resources["resources"]} == {
        ("nodes", "NodeMetrics", False), ("pods", "PodMetrics", True)}
