"""rap.aggregator.rbac and the Lease's renewal in rap.aggregator.kube.

The roles are proven by behaviour against the real API server in tests/e2e/test_aggregator.py; here, what
cannot be: the Deployment's command is one the aggregator accepts, and the Lease is renewed with its
resourceVersion (kube-apiserver refuses an update of a Lease without one: 422).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from kubernetes import client

from rap.aggregator import rbac
from rap.aggregator.kube import Kube
from rap.aggregator.options import parse
from rap.config import RapConfig


def test_the_aggregator_reads_cluster_wide_and_writes_only_in_its_namespace():
    objs = rbac.aggregator_rbac([rbac.user_subject("me")], "rap")
    kinds = {o["kind"]: o for o in objs}
    cluster_verbs = {v for rule in kinds["ClusterRole"]["rules"] for v in rule["verbs"]}
    assert cluster_verbs == {"list", "watch"}
    assert {r for rule in kinds["ClusterRole"]["rules"] for r in rule["resources"]} == {"nodes", "pods"}
    assert kinds["Role"]["metadata"]["namespace"] == "rap" and kinds["RoleBinding"]["metadata"]["namespace"] == "rap"
    assert {r for rule in kinds["Role"]["rules"] for r in rule["resources"]} == {"configmaps", "leases"}
    assert kinds["ClusterRoleBinding"]["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                                       "name": "me"}]


def test_the_aggregated_kube_proxy_only_reads_in_that_namespace():
    role, binding = rbac.proxy_rbac([rbac.service_account_subject("kube-system", "kube-proxy")])
    assert role["kind"] == "Role" and all(rule["verbs"] == ["get", "list", "watch"] for rule in role["rules"])
    assert binding["roleRef"]["name"] == role["metadata"]["name"] == rbac.PROXY_ROLE


def test_the_deployment_runs_the_image_with_a_command_the_aggregator_accepts(tmp_path, monkeypatch):
    config = RapConfig(period_s=2, cpu_threshold=0.7, hysteresis=0.05)
    dep = rbac.deployment("registry.example/rap:1", config, "kube-system", 0.1)
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example/rap:1" and pod["serviceAccountName"] == rbac.NAME
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    assert container["command"][:3] == ["python3", "-m", "rap.aggregator"]
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")  # in a pod: the service account
    o = parse(container["command"][3:])
    assert o.kubeconfig is None and o.config == config and o.publish_step == 0.1 and o.namespace == "kube-system"
    assert "priorityClassName" not in rbac.deployment("i", config, "rap")["spec"]["template"]["spec"]


def test_manifests_are_everything_in_apply_order():
    kinds = [o["kind"] for o in rbac.manifests("i", RapConfig())]
    assert kinds == ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                     "Role", "RoleBinding", "Deployment"]


class Resp:
    def __init__(self, doc):
        self.data = json.dumps(doc).encode()

    def release_conn(self):
        pass


class FakeLeases:
    """CoordinationV1Api's Lease calls over one stored Lease, as kube-apiserver checks resourceVersions."""

    def __init__(self):
        self.lease, self.rv, self.calls = None, 0, []

    def _store(self, body):
        self.rv += 1
        self.lease = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.rv)}}
        return Resp(self.lease)

    def read_namespaced_lease(self, name, ns, **_):
        self.calls.append("read")
        if self.lease is None:
            raise client.ApiException(status=404, reason="Not Found")
        return Resp(self.lease)

    def create_namespaced_lease(self, ns, body, **_):
        self.calls.append("create")
        if self.lease is not None:
            raise client.ApiException(status=409, reason="Conflict")
        return self._store(body)

    def replace_namespaced_lease(self, name, ns, body, **_):
        self.calls.append("replace")
        given = body["metadata"].get("resourceVersion")
        if not given:
            raise client.ApiException(status=422, reason="Unprocessable Entity")
        if given != str(self.rv):
            raise client.ApiException(status=409, reason="Conflict")
        return self._store(body)


@pytest.fixture
def kube():
    k = Kube(client.ApiClient(), "kube-system", holder="agg-1")
    k.coordination = FakeLeases()
    return k


T = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_the_lease_is_created_then_renewed_in_one_request_each(kube):
    leases = kube.coordination
    kube.renew(T, 15, T)
    kube.renew(T, 15, T)
    kube.renew(T, 15, T)
    assert leases.calls == ["read", "create", "replace", "replace"]
    assert leases.lease["spec"]["holderIdentity"] == "agg-1"
    assert leases.lease["metadata"]["annotations"]["rap.io/metrics-timestamp"] == "2026-01-01T00:00:00Z"


def test_a_lease_written_by_someone_else_is_read_again_and_renewed(kube):
    leases = kube.coordination
    kube.renew(T, 15, T)
    leases._store(leases.lease)  # another writer
    kube.renew(T, 15, T)
    assert leases.calls == ["read", "create", "replace", "read", "replace"]  # the conflict, the read, the retry


def test_a_restarted_aggregator_renews_the_lease_it_finds(kube):
    kube.renew(T, 15, T)
    again = Kube(client.ApiClient(), "kube-system", holder="agg-1")
    again.coordination = kube.coordination
    again.renew(T, 15, T)
    assert kube.coordination.calls[-2:] == ["read", "replace"]
