"""`invoke deploy` / `invoke rollback` against a real kube-apiserver (v1.21.14, built by the project).

The module starts only etcd and kube-apiserver, on 127.0.0.1 with free ports
and a temporary runtime folder of its own (it never touches the local
cluster's bridge or /run/rap-local), and creates in it what kubeadm 1.21
creates for kube-proxy: the ServiceAccount, the ConfigMap (config.conf in
iptables mode, kubeconfig.conf) and the DaemonSet.

There is no kubelet and no DaemonSet controller, so a stand-in (FakeNodes)
does their part in the DaemonSet status: for each new generation it marks the
pods updated and available node by node, as a real rollout would, unless the
image is one the test declares unpullable, in which case one node stays
updated but unavailable forever. No pod runs either, so FakeNodes also marks
the aggregator's Deployment (``--monitor aggregator``) available, as its
controller would once the pod is up: what deploy waits for is the status a
real cluster writes, but whether the aggregator really starts is not tested
here. That is how the wait, the progress output and the automatic rollback
are exercised.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from rap import deploy as rap_deploy
from rap.deploy import spec
from rap.deploy.kube import Cluster
from rap.paths import REPO

pytestmark = pytest.mark.e2e

STOCK_IMAGE = "k8s.gcr.io/kube-proxy:v1.21.14"
RAP_IMAGE = "registry.example/rap/kube-proxy:v1.21.14-rap"
BROKEN_IMAGE = "registry.example/rap/kube-proxy:does-not-exist"
AGGREGATOR_IMAGE = "registry.example/rap/aggregator:v1"
NODES = 3
NS = "kube-system"

# What kubeadm 1.21 writes into kube-system/kube-proxy's config.conf.
KUBE_PROXY_CONFIG = (REPO / "tests" / "data" / "kubeadm-kube-proxy-config.conf").read_text()

KUBE_PROXY_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
    server: https://10.0.0.2:6443
  name: default
contexts:
- context:
    cluster: default
    namespace: default
    user: default
  name: default
current-context: default
users:
- name: default
  user:
    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
"""


def kubeadm_daemonset() -> dict:
    """kube-system/kube-proxy as kubeadm 1.21 writes it (cmd/kubeadm/app/phases/addons/proxy/manifests.go)."""
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "kube-proxy", "namespace": NS, "labels": {"k8s-app": "kube-proxy"}},
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": {"k8s-app": "kube-proxy"}},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "containers": [{
                        "name": "kube-proxy", "image": STOCK_IMAGE, "imagePullPolicy": "IfNotPresent",
                        "command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                                    "--hostname-override=$(NODE_NAME)"],
                        "securityContext": {"privileged": True},
                        "volumeMounts": [
                            {"mountPath": "/var/lib/kube-proxy", "name": "kube-proxy"},
                            {"mountPath": "/run/xtables.lock", "name": "xtables-lock", "readOnly": False},
                            {"mountPath": "/lib/modules", "name": "lib-modules", "readOnly": True},
                        ],
                        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                    }],
                    "hostNetwork": True,
                    "serviceAccountName": "kube-proxy",
                    "volumes": [
                        {"name": "kube-proxy", "configMap": {"name": "kube-proxy"}},
                        {"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}},
                        {"name": "lib-modules", "hostPath": {"path": "/lib/modules"}},
                    ],
                    "tolerations": [{"operator": "Exists"}],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                },
            },
        },
    }


# ---------------------------------------------------------------------------
# etcd + kube-apiserver on loopback


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _ports() -> tuple[int, int]:
    """A free API port and a free etcd client port whose peer port (+10) is free too."""
    rnd = random.Random()
    for _ in range(200):
        etcd = rnd.randint(30000, 60000)
        if _port_free(etcd) and _port_free(etcd + 10):
            api = _free_port()
            if api not in (etcd, etcd + 10):
                return api, etcd
    raise RuntimeError("no free ports on 127.0.0.1")


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory):
    """A real kube-apiserver v1.21.14 with its own etcd; yields its admin kubeconfig path."""
    from rap.build.binaries import build_apiserver
    from rap.localcluster import config as lc_config
    from rap.localcluster import controlplane, pki, procs

    if not Path("/usr/bin/etcd").exists() and not _which("etcd"):
        pytest.fail("etcd is not installed: apt-get install etcd-server")
    binary = build_apiserver()  # cached: quick when already built
    runtime = tmp_path_factory.mktemp("deploy-apiserver")
    api_port, etcd_port = _ports()
    c = lc_config.ClusterConfig(api_port=api_port, etcd_port=etcd_port)
    url = controlplane.apiserver_url(c, "127.0.0.1")
    keys = pki.create(runtime / "pki", ["127.0.0.1"], url)
    try:
        controlplane.start_etcd(runtime, c)
        # kubeadm's API server allows privileged containers, which kube-proxy is
        controlplane.start_apiserver(runtime, c, binary, keys, host="127.0.0.1",
                                     extra_args=["--allow-privileged=true"])
        yield str(keys.kubeconfig)
    finally:
        procs.stop_all(runtime)


def _which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


@pytest.fixture(scope="module")
def api(apiserver):
    client = k8s_config.new_client_from_config(config_file=apiserver, persist_config=False)
    deadline = time.monotonic() + 60
    while True:  # the API server makes kube-system and the system priority classes just after it is ready
        try:
            k8s.CoreV1Api(client).read_namespace(NS)
            k8s.SchedulingV1Api(client).read_priority_class("system-node-critical")
            break
        except ApiException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    yield client
    client.close()


# ---------------------------------------------------------------------------
# what kubeadm made, and a stand-in for the kubelets and the DaemonSet controller


def _delete(fn, *args):
    try:
        fn(*args)
    except ApiException as exc:
        if exc.status != 404:
            raise


class FakeNodes:
    """Plays kubelet + DaemonSet controller in the DaemonSet status, one node per tick."""

    def __init__(self, api, broken_images=(), tick: float = 0.4):
        self.tick = tick
        self.apps = k8s.AppsV1Api(api)
        self.broken = set(broken_images)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)
        assert not self.errors, self.errors

    def _run(self):
        rolled: dict[int, int] = {}  # generation -> nodes updated so far
        try:
            while not self.stop.wait(self.tick):
                self._aggregator()
                try:
                    ds = self.apps.read_namespaced_daemon_set("kube-proxy", NS)
                except ApiException as exc:
                    if exc.status == 404:
                        continue
                    raise
                gen = ds.metadata.generation
                image = ds.spec.template.spec.containers[0].image
                if image in self.broken:
                    mark_status(self.apps, gen, updated=1, available=NODES - 1)
                    continue
                n = rolled[gen] = min(NODES, rolled.get(gen, 0) + 1)
                mark_status(self.apps, gen, updated=n, available=NODES if n == NODES else NODES - 1)
        except BaseException as exc:  # reported by __exit__
            self.errors.append(exc)

    def _aggregator(self):
        """The Deployment controller's status of the aggregator: its one replica up, unless its image is broken."""
        ref = spec.AGGREGATOR_DEPLOYMENT
        try:  # a Deployment deleted (by rollback) between the read and the write is no error
            dep = self.apps.read_namespaced_deployment(ref.name, ref.namespace)
            up = 0 if dep.spec.template.spec.containers[0].image in self.broken else 1
            self.apps.patch_namespaced_deployment_status(ref.name, ref.namespace, {"status": {
                "observedGeneration": dep.metadata.generation, "replicas": 1, "updatedReplicas": 1,
                "readyReplicas": up, "availableReplicas": up, "unavailableReplicas": 1 - up}})
        except ApiException as exc:
            if exc.status != 404:
                raise


def mark_status(apps, generation: int, updated: int = NODES, available: int = NODES) -> None:
    """Write the DaemonSet status as the controller would: by default all updated and available."""
    apps.patch_namespaced_daemon_set_status("kube-proxy", NS, {"status": {
        "observedGeneration": generation, "desiredNumberScheduled": NODES, "currentNumberScheduled": NODES,
        "numberMisscheduled": 0, "numberReady": available, "numberAvailable": available,
        "numberUnavailable": NODES - available, "updatedNumberScheduled": updated}})


@pytest.fixture
def cluster(apiserver):
    """deploy's own client of the API server, to read and delete the monitors' objects by spec.Ref."""
    c = Cluster(apiserver, say=lambda _: None)
    yield c
    c.close()


@pytest.fixture
def kubeadm(api, cluster):
    """Fresh kubeadm kube-proxy objects (ready on every node), and no trace of an earlier deploy."""
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    for fn, args in ((apps.delete_namespaced_daemon_set, ("kube-proxy", NS)),
                     (core.delete_namespaced_config_map, ("kube-proxy", NS)),
                     (core.delete_namespaced_config_map, ("rap-rollback", NS)),
                     (core.delete_namespaced_service_account, ("kube-proxy", NS))):
        _delete(fn, *args)
    for ref in [*spec.all_monitor_refs(), *published(cluster)]:
        cluster.delete_object(ref)
    core.create_namespaced_service_account(NS, {"metadata": {"name": "kube-proxy", "namespace": NS}})
    core.create_namespaced_config_map(NS, {
        "metadata": {"name": "kube-proxy", "namespace": NS, "labels": {"app": "kube-proxy"}},
        "data": {"config.conf": KUBE_PROXY_CONFIG, "kubeconfig.conf": KUBE_PROXY_KUBECONFIG}})
    ds = apps.create_namespaced_daemon_set(NS, kubeadm_daemonset())
    mark_status(apps, ds.metadata.generation)
    return api


def snapshot(api) -> dict:
    """Everything deploy may touch, as plain JSON."""
    core, apps, rbac = k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.RbacAuthorizationV1Api(api)

    def raw(fn, *args):
        try:
            return json.loads(fn(*args, _preload_content=False).data)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    ds = raw(apps.read_namespaced_daemon_set, "kube-proxy", NS)
    container = ds["spec"]["template"]["spec"]["containers"][0]
    return {
        "container": {f: container.get(f) for f in ("image", "command", "args", "env", "volumeMounts", "readinessProbe")},
        "pod_spec": {k: v for k, v in ds["spec"]["template"]["spec"].items() if k != "containers"},
        "annotations": ds["spec"]["template"]["metadata"].get("annotations") or {},
        "configmap": raw(core.read_namespaced_config_map, "kube-proxy", NS)["data"],
        "record": raw(core.read_namespaced_config_map, "rap-rollback", NS),
        "role": raw(rbac.read_cluster_role, "rap-monitor"),
        "binding": raw(rbac.read_cluster_role_binding, "rap-monitor"),
    }


def published(cluster) -> list[spec.Ref]:
    """What an aggregator has written in kube-system: its rap-load-<node> ConfigMaps and its Lease, if any."""
    lease = [spec.AGGREGATOR_LEASE] if cluster.read_object(spec.AGGREGATOR_LEASE) else []
    return cluster.configmaps_labelled(spec.PUBLISHED_SELECTOR) + lease


def service_account_may(api, account: str, verb: str, resource: str, group: str = "",
                        namespace: str | None = None) -> bool:
    """Whether kube-system's ServiceAccount ``account`` may, by a SubjectAccessReview; namespace None: cluster-wide."""
    attributes = {"verb": verb, "resource": resource, "group": group}
    if namespace:
        attributes["namespace"] = namespace
    review = k8s.AuthorizationV1Api(api).create_subject_access_review({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": f"system:serviceaccount:{NS}:{account}",
                 "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NS}"],
                 "resourceAttributes": attributes}})
    return review.status.allowed


def kube_proxy_may(api, verb: str, resource: str, group: str = "", namespace: str | None = None) -> bool:
    return service_account_may(api, "kube-proxy", verb, resource, group, namespace)


def invoke(*args, timeout=120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env)


def env_of(snap) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in snap["container"]["env"]}


# ---------------------------------------------------------------------------


def test_deploy_then_rollback_through_invoke(kubeadm, apiserver):
    api = kubeadm
    before = snapshot(api)
    assert before["container"]["image"] == STOCK_IMAGE and before["record"] is None
    assert not kube_proxy_may(api, "list", "pods")

    with FakeNodes(api):
        out = invoke("deploy", "--image", RAP_IMAGE, "--kubeconfig", apiserver, "--timeout", "60",
                     "--cpu-threshold", "0.7", "--period", "2", "--rtt-port", "10255")
    assert out.returncode == 0, out.stdout + out.stderr
    progress = [line for line in out.stdout.splitlines() if line.startswith("[deploy]   kube-proxy: ")]
    assert progress and progress[-1].startswith("[deploy]   kube-proxy: 3/3 nodes updated, 3/3 available"), out.stdout
    assert f"RAP kube-proxy {RAP_IMAGE} runs on every node (3)" in out.stdout

    after = snapshot(api)
    assert after["container"]["image"] == RAP_IMAGE
    assert after["container"]["command"] == before["container"]["command"]
    assert after["container"]["volumeMounts"] == before["container"]["volumeMounts"]
    assert after["pod_spec"] == before["pod_spec"]
    assert after["container"]["env"][0] == before["container"]["env"][0]  # NODE_NAME kept first
    assert env_of(after) == {
        "NODE_NAME": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}},
        "RAP_PERIOD_S": "2.0", "RAP_STALE_AFTER_S": "6.0", "RAP_CPU_THRESHOLD": "0.7",
        "RAP_MEM_THRESHOLD": "0.9", "RAP_W_CPU": "0.5", "RAP_W_MEM": "0.2", "RAP_W_NET": "0.3",
        "RAP_NODE_NAME": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}},
        "RAP_RTT_PORT": "10255", "RAP_MONITOR": "node", "RAP_RTT_PROBES": "16", "RAP_VIEW_NODES": "32",
        "RAP_KUBECONFIG": "/var/lib/kube-proxy/kubeconfig.conf", "RAP_MODE": "adaptive", "RAP_HYSTERESIS": "0.1", "RAP_RTT_PER_CONN_MS": "10.0", "RAP_EJECT_S": "10.0"}
    assert spec.RESTARTED_AT in after["annotations"]
    conf = yaml.safe_load(after["configmap"]["config.conf"])
    assert conf == {**yaml.safe_load(KUBE_PROXY_CONFIG), "mode": "userspace"}
    assert after["configmap"]["config.conf"] == KUBE_PROXY_CONFIG.replace("mode: iptables", "mode: userspace")
    assert after["configmap"]["kubeconfig.conf"] == KUBE_PROXY_KUBECONFIG
    assert after["role"]["rules"] == spec.cluster_role()["rules"]
    assert after["binding"]["subjects"] == [{"kind": "ServiceAccount", "name": "kube-proxy", "namespace": NS}]
    record = json.loads(after["record"]["data"]["record.json"])
    assert record["daemonset"]["image"] == STOCK_IMAGE
    assert record["daemonset"]["env"] == before["container"]["env"]
    assert record["configmap"]["config.conf"] == KUBE_PROXY_CONFIG
    # what RAP's monitor reads, as the kube-proxy ServiceAccount, is now allowed by the API server
    for resource in ("pods", "nodes"):  # the monitor lists; it never gets one object
        assert kube_proxy_may(api, "list", resource)
        assert kube_proxy_may(api, "list", resource, "metrics.k8s.io")
        assert not kube_proxy_may(api, "get", resource, "metrics.k8s.io")
    assert not kube_proxy_may(api, "delete", "pods")
    assert after["container"]["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 10256, "scheme": "HTTP"}

    with FakeNodes(api):
        out = invoke("rollback", "--kubeconfig", apiserver, "--timeout", "60")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"rolled back: {STOCK_IMAGE} runs on every node (3)" in out.stdout

    back = snapshot(api)
    assert back["container"] == before["container"]
    assert back["pod_spec"] == before["pod_spec"]
    assert back["configmap"] == before["configmap"]  # byte for byte
    assert back["record"] is None and back["role"] is None and back["binding"] is None
    assert not kube_proxy_may(api, "list", "pods")

    out = invoke("rollback", "--kubeconfig", apiserver)
    assert out.returncode == 1
    assert out.stderr.startswith("error: nothing to roll back: there is no record ConfigMap kube-system/rap-rollback")
    assert out.stderr.count("\n") == 1


def test_not_ready_in_time_rolls_back_by_itself(kubeadm, apiserver):
    api = kubeadm
    before = snapshot(api)
    lines: list[str] = []
    opts = rap_deploy.parse_options(BROKEN_IMAGE, timeout="3")
    with FakeNodes(api, broken_images={BROKEN_IMAGE}):
        with pytest.raises(rap_deploy.DeployError) as exc:
            rap_deploy.deploy(opts, apiserver, say=lines.append)
    msg = str(exc.value)
    assert msg.startswith(f"RAP kube-proxy {BROKEN_IMAGE} was not running on every node within 3s "
                          "(1/3 nodes updated, 2/3 available)")
    assert f"rolled back to {STOCK_IMAGE}, which runs on every node again" in msg
    assert any("rolling back" in line for line in lines)
    back = snapshot(api)
    assert back["container"] == before["container"]
    assert back["configmap"] == before["configmap"]
    assert back["record"] is None and back["role"] is None and back["binding"] is None

    # and through invoke: non-zero, one message
    with FakeNodes(api, broken_images={BROKEN_IMAGE}):
        out = invoke("deploy", "--image", BROKEN_IMAGE, "--kubeconfig", apiserver, "--timeout", "2")
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: RAP kube-proxy {BROKEN_IMAGE} was not running on every node within 2s")
    assert snapshot(api)["container"] == before["container"]


def test_deploy_twice_updates_in_place_and_rollback_still_restores_the_original(kubeadm, apiserver):
    api = kubeadm
    before = snapshot(api)
    quiet = [].append
    with FakeNodes(api, broken_images={BROKEN_IMAGE}):
        rap_deploy.deploy(rap_deploy.parse_options(RAP_IMAGE, timeout="30"), apiserver, say=quiet)
        first = snapshot(api)
        lines: list[str] = []
        rap_deploy.deploy(rap_deploy.parse_options(RAP_IMAGE + "-2", w_net="0.6", timeout="30"), apiserver,
                          say=lines.append)
        assert any("already deployed" in line and "updating it in place" in line for line in lines)
        second = snapshot(api)
        assert second["container"]["image"] == RAP_IMAGE + "-2"
        assert env_of(second)["RAP_W_NET"] == "0.6"
        assert [e["name"] for e in second["container"]["env"]] == [e["name"] for e in first["container"]["env"]]
        record = json.loads(second["record"]["data"]["record.json"])
        assert record["daemonset"] == json.loads(first["record"]["data"]["record.json"])["daemonset"]
        assert record["deployedImage"] == RAP_IMAGE + "-2"

        # a failed update goes back to the RAP that ran before it, and keeps the record and RBAC
        with pytest.raises(rap_deploy.DeployError, match="was not running on every node within 2s"):
            rap_deploy.deploy(rap_deploy.parse_options(BROKEN_IMAGE, timeout="2"), apiserver, say=quiet)
        failed = snapshot(api)
        assert failed["container"] == second["container"]
        assert failed["record"]["data"] == second["record"]["data"]
        assert failed["role"] is not None and failed["binding"] is not None

        rap_deploy.rollback(apiserver, 30, say=quiet)
    back = snapshot(api)
    assert back["container"] == before["container"]
    assert back["configmap"] == before["configmap"]
    assert back["record"] is None and back["role"] is None and back["binding"] is None


def test_clear_errors_and_nothing_left_behind(kubeadm, apiserver):
    api = kubeadm
    apps = k8s.AppsV1Api(api)
    quiet = [].append
    opts = rap_deploy.parse_options(RAP_IMAGE, timeout="5")

    # the ConfigMap's config.conf is not a KubeProxyConfiguration: nothing is changed
    core = k8s.CoreV1Api(api)
    core.patch_namespaced_config_map("kube-proxy", NS, {"data": {"config.conf": "kind: Something\n"}})
    with pytest.raises(rap_deploy.DeployError, match="does not hold a KubeProxyConfiguration"):
        rap_deploy.deploy(opts, apiserver, say=quiet)
    snap = snapshot(api)
    assert snap["record"] is None and snap["role"] is None and snap["container"]["image"] == STOCK_IMAGE

    # no kube-proxy DaemonSet
    apps.delete_namespaced_daemon_set("kube-proxy", NS)
    with pytest.raises(rap_deploy.DeployError, match=r"no DaemonSet kube-system/kube-proxy .*is this a kubeadm cluster\?"):
        rap_deploy.deploy(opts, apiserver, say=quiet)
    assert core.list_namespaced_config_map(NS, field_selector="metadata.name=rap-rollback").items == []

    out = invoke("deploy", "--image", RAP_IMAGE, "--kubeconfig", apiserver)
    assert out.returncode == 1 and "is this a kubeadm cluster?" in out.stderr

    with pytest.raises(rap_deploy.DeployError, match="nothing to roll back"):
        rap_deploy.rollback(apiserver, 5, say=quiet)


def test_deploy_with_the_aggregator_then_rollback(kubeadm, apiserver, cluster):
    api = kubeadm
    before = snapshot(api)
    quiet = [].append
    with FakeNodes(api):
        rap_deploy.deploy(rap_deploy.parse_options(RAP_IMAGE, timeout="30"), apiserver, say=quiet)
        assert snapshot(api)["role"] is not None  # the per-node monitor's, which the switch below removes
        out = invoke("deploy", "--image", RAP_IMAGE, "--kubeconfig", apiserver, "--timeout", "60",
                     "--monitor", "aggregator", "--aggregator-image", AGGREGATOR_IMAGE,
                     "--period", "2", "--cpu-threshold", "0.7")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[deploy]   aggregator: 1/1 replicas updated, 1/1 available" in out.stdout, out.stdout
    assert f"fed by the aggregator {AGGREGATOR_IMAGE}" in out.stdout

    after = snapshot(api)
    assert env_of(after)["RAP_MONITOR"] == "aggregator" and after["container"]["image"] == RAP_IMAGE
    assert after["role"] is None and after["binding"] is None  # no cluster-wide role for the kube-proxies
    for ref in spec.monitor_refs("aggregator"):
        assert cluster.read_object(ref) is not None, f"no {ref}"
    dep = cluster.read_object(spec.AGGREGATOR_DEPLOYMENT)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == AGGREGATOR_IMAGE
    assert container["command"][:3] == ["python3", "-m", "rap.aggregator"]
    assert {"--period": "2.0", "--cpu-threshold": "0.7"}.items() <= dict(zip(container["command"][3::2],
                                                                               container["command"][4::2])).items()
    # the kube-proxies read the aggregator's objects in kube-system, and nothing cluster-wide
    for resource, group in (("configmaps", ""), ("leases", "coordination.k8s.io")):
        for verb in ("get", "list", "watch"):
            assert kube_proxy_may(api, verb, resource, group, namespace=NS), (verb, resource)
        assert not kube_proxy_may(api, "update", resource, group, namespace=NS)
        assert not kube_proxy_may(api, "list", resource, group)
    for resource, group in (("pods", ""), ("nodes", ""), ("pods", "metrics.k8s.io")):
        assert not kube_proxy_may(api, "list", resource, group), resource
    # the aggregator reads the cluster and writes only its objects in kube-system
    assert service_account_may(api, "rap-aggregator", "watch", "pods")
    assert service_account_may(api, "rap-aggregator", "list", "nodes", "metrics.k8s.io")
    assert service_account_may(api, "rap-aggregator", "update", "configmaps", namespace=NS)
    assert service_account_may(api, "rap-aggregator", "update", "leases", "coordination.k8s.io", namespace=NS)
    assert not service_account_may(api, "rap-aggregator", "update", "configmaps", namespace="default")
    assert not service_account_may(api, "rap-aggregator", "get", "secrets", namespace=NS)

    # what a running aggregator would have written (no pod runs here), which rollback removes too
    k8s.CoreV1Api(api).create_namespaced_config_map(NS, {
        "metadata": {"name": "rap-load-node-1", "labels": {"rap.io/load": "true"}}, "data": {}})
    k8s.CoordinationV1Api(api).create_namespaced_lease(NS, {
        "metadata": {"name": spec.AGGREGATOR_LEASE.name}, "spec": {"holderIdentity": "rap-aggregator-0"}})
    with FakeNodes(api):
        out = invoke("rollback", "--kubeconfig", apiserver, "--timeout", "60")
    assert out.returncode == 0, out.stdout + out.stderr
    back = snapshot(api)
    assert back["container"] == before["container"] and back["configmap"] == before["configmap"]
    assert back["record"] is None
    left = [str(ref) for ref in [*spec.all_monitor_refs(), *published(cluster)] if cluster.read_object(ref)]
    assert left == []
    assert not kube_proxy_may(api, "list", "configmaps", namespace=NS)
    assert cluster.read_object(spec.Ref("ServiceAccount", "kube-proxy", NS)) is not None  # kubeadm's stays


# ---------------------------------------------------------------------------
# RAP's ClusterRole, by behaviour: the API server's RBAC authorizer decides.

PROBE_USER = "rap-role-probe"  # bound to RAP's role and nothing else


def _as_probe(api, method: str, path: str, body=None) -> int:
    """The HTTP status the API server gives PROBE_USER (impersonated by the admin)."""
    content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
    try:
        resp = api.call_api(method, api.configuration.host + path, body=body,
                            header_params={"Impersonate-User": PROBE_USER, "Content-Type": content_type,
                                           "Accept": "application/json"})
    except ApiException as exc:
        return exc.status
    return resp.status


@pytest.fixture
def probe_binding(api):
    rbac = k8s.RbacAuthorizationV1Api(api)
    role = spec.cluster_role()
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": PROBE_USER},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": role["metadata"]["name"]},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": PROBE_USER}]}
    _delete(rbac.delete_cluster_role_binding, PROBE_USER)
    _delete(rbac.delete_cluster_role, role["metadata"]["name"])
    rbac.create_cluster_role(role)
    rbac.create_cluster_role_binding(binding)
    deadline = time.monotonic() + 20  # the authorizer's informer sees the binding a moment later
    while _as_probe(api, "GET", "/api/v1/nodes") == 403 and time.monotonic() < deadline:
        time.sleep(0.2)
    yield
    _delete(rbac.delete_cluster_role_binding, PROBE_USER)
    _delete(rbac.delete_cluster_role, role["metadata"]["name"])


# Exactly the requests rap_patch/rap_monitor.go makes.
MONITOR_REQUESTS = ["/api/v1/nodes", "/api/v1/pods?fieldSelector=status.phase=Running",
                    "/apis/metrics.k8s.io/v1beta1/pods", "/apis/metrics.k8s.io/v1beta1/nodes"]


def test_rap_role_allows_the_monitor_and_nothing_else(api, probe_binding):
    for path in MONITOR_REQUESTS:
        # No metrics API is served here: a 404 after authorization still means allowed.
        assert _as_probe(api, "GET", path) in (200, 404, 503), f"the monitor's GET {path} is refused"
    refused = [
        ("GET", f"/api/v1/namespaces/{NS}/secrets", None),
        ("GET", f"/api/v1/namespaces/{NS}/secrets/anything", None),
        ("POST", f"/api/v1/namespaces/{NS}/configmaps", {"metadata": {"name": "rap-probe"}}),
        ("PATCH", "/api/v1/nodes/anything", {"metadata": {"labels": {"x": "y"}}}),
        ("DELETE", f"/api/v1/namespaces/{NS}/pods/anything", None),
        ("GET", "/api/v1/nodes/anything", None),  # the monitor only lists
        ("GET", "/apis/apps/v1/daemonsets", None),
    ]
    for method, path, body in refused:
        assert _as_probe(api, method, path, body) == 403, f"RAP's role lets {method} {path} through"


def test_without_the_binding_the_monitor_is_refused(api):
    # The probe user's 200s above come from RAP's role, not from some default grant.
    _delete(k8s.RbacAuthorizationV1Api(api).delete_cluster_role_binding, PROBE_USER)
    for path in MONITOR_REQUESTS[:2]:
        assert _as_probe(api, "GET", path) == 403
