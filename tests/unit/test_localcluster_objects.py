"""The objects the local cluster writes in place of the controllers: the EndpointSlice and the traffic policy."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rap.localcluster import objects

PODS = [objects.PodSpec("web-1-1", "node-1", "10.214.1.11", 0.25, 256),
        objects.PodSpec("web-2-1", "node-2", "10.214.2.11", 0.25, 256)]


def test_the_endpoint_slice_is_labelled_so_that_kube_proxy_finds_it_for_the_service():
    body = objects.endpoint_slice(PODS)
    assert body.metadata.name == "web-local"
    assert body.metadata.labels["kubernetes.io/service-name"] == "web"
    assert body.metadata.labels["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    assert body.address_type == "IPv4"


def test_each_pod_is_one_ready_endpoint_on_its_node():
    body = objects.endpoint_slice(PODS)
    got = [(e.addresses, e.node_name, e.conditions.ready, e.target_ref.name) for e in body.endpoints]
    # nodeName is what makes an endpoint "local" to kube-proxy (internalTrafficPolicy: Local).
    assert got == [(["10.214.1.11"], "node-1", True, "web-1-1"), (["10.214.2.11"], "node-2", True, "web-2-1")]
    [port] = body.ports
    assert (port.name, port.port, port.protocol) == ("http", objects.TARGET_PORT, "TCP")


def test_the_slice_serializes_as_discovery_v1():
    from kubernetes import client

    wire = client.ApiClient().sanitize_for_serialization(objects.endpoint_slice(PODS[:1]))
    assert wire["addressType"] == "IPv4"
    assert wire["endpoints"] == [{"addresses": ["10.214.1.11"], "conditions": {"ready": True}, "nodeName": "node-1",
                                  "targetRef": {"kind": "Pod", "name": "web-1-1", "namespace": "default"}}]


def test_no_pods_is_an_empty_slice_not_a_missing_one():
    assert objects.endpoint_slice([]).endpoints == []


class _FakeCore:
    def __init__(self, stored=None):
        self.stored, self.patches = stored, []

    def read_namespaced_service(self, name, namespace):
        from types import SimpleNamespace
        return SimpleNamespace(spec=SimpleNamespace(internal_traffic_policy=self.stored))

    def patch_namespaced_service(self, name, namespace, body):
        self.patches.append((name, namespace, body))


@pytest.fixture
def core(monkeypatch):
    fake = _FakeCore()
    monkeypatch.setattr(objects.client, "CoreV1Api", lambda api: fake)
    return fake


def test_the_traffic_policy_patch_sets_only_the_field(core):
    objects.set_traffic_policy(None, "Local")
    assert core.patches == [("web", "default", {"spec": {"internalTrafficPolicy": "Local"}})]


def test_an_unknown_traffic_policy_is_refused_before_the_api_is_called(core):
    with pytest.raises(ValueError, match="'local': want one of Cluster, Local"):
        objects.set_traffic_policy(None, "local")
    assert core.patches == []


@pytest.mark.parametrize("stored, seen", [(None, "Cluster"), ("Cluster", "Cluster"), ("Local", "Local")])
def test_an_unset_traffic_policy_reads_as_cluster(core, stored, seen):
    core.stored = stored
    assert objects.traffic_policy(None) == seen


def _specs(n):
    return [objects.PodSpec(f"p{i}", f"node-{i % 3 + 1}", f"10.0.{i // 250}.{i % 250}", 0.25, 64) for i in range(n)]


def test_a_large_service_is_split_into_slices_the_api_server_accepts():
    slices = objects.endpoint_slices(_specs(2000))
    assert [s.metadata.name for s in slices[:3]] == ["web-local", "web-local-2", "web-local-3"]
    assert len(slices) == 20 and all(len(s.endpoints) == objects.MAX_ENDPOINTS_PER_SLICE for s in slices)
    assert [e.addresses[0] for s in slices for e in s.endpoints] == [p.ip for p in _specs(2000)]
    assert [s.metadata.name for s in objects.endpoint_slices([])] == ["web-local"]  # one, empty


class _Discovery:
    def __init__(self, names):
        self.names, self.deleted = set(names), []

    def replace_namespaced_endpoint_slice(self, name, ns, body):
        if name not in self.names:
            raise objects.client.ApiException(status=404)

    def create_namespaced_endpoint_slice(self, ns, body):
        self.names.add(body.metadata.name)

    def list_namespaced_endpoint_slice(self, ns, label_selector):
        assert "kubernetes.io/service-name=web" in label_selector
        return SimpleNamespace(items=[SimpleNamespace(metadata=SimpleNamespace(name=n)) for n in sorted(self.names)])

    def delete_namespaced_endpoint_slice(self, name, ns):
        self.names.discard(name)
        self.deleted.append(name)


def test_a_shrinking_service_loses_its_extra_slices(monkeypatch):
    fake = _Discovery(["web-local", "web-local-2", "web-local-3"])
    monkeypatch.setattr(objects.client, "DiscoveryV1Api", lambda api: fake)
    objects.set_endpoint_slice(None, _specs(150))
    assert sorted(fake.deleted) == ["web-local-3"] and fake.names == {"web-local", "web-local-2"}
    objects.set_endpoint_slice(None, _specs(0))
    assert fake.names == {"web-local"}
