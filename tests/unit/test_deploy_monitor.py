"""`invoke deploy --monitor node|aggregator` and `invoke rollback`: what each monitor gets, switching, undo.

deploy and rollback run here over a fake of the kubernetes client (FakeApi: one object store behind the
CoreV1Api, AppsV1Api, RbacAuthorizationV1Api and CoordinationV1Api calls they make, checking
resourceVersions as kube-apiserver does, with rollouts that finish at once unless an image is declared
broken). What the roles allow is proven against a real kube-apiserver in tests/e2e/test_deploy.py.
"""

from __future__ import annotations

import copy
import itertools
import json

import pytest
import yaml
from kubernetes.client.rest import ApiException

from rap.aggregator import rbac as aggregator_rbac
from rap.aggregator.options import parse as parse_aggregator
from rap.deploy import kube, rollout, spec
from rap.deploy.spec import DeployError, parse_options
from tests.unit.test_deploy import configmap, daemonset

AGG_IMAGE = "registry.example/rap/aggregator:v1"
NODES = 3
NS = "kube-system"

# kind <- the client's method stem (read_namespaced_<stem>, create_<stem>, ...)
STEMS = {"config_map": "ConfigMap", "service_account": "ServiceAccount", "daemon_set": "DaemonSet",
         "deployment": "Deployment", "cluster_role": "ClusterRole", "cluster_role_binding": "ClusterRoleBinding",
         "role": "Role", "role_binding": "RoleBinding", "lease": "Lease", "pod": "Pod"}


class Resp:
    def __init__(self, doc):
        self.data = json.dumps(doc).encode()


def _error(status: int, reason: str) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps({"message": reason})
    return exc


def _matches(obj: dict, selector: str | None) -> bool:
    labels = obj["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, _, v in (term.partition("=") for term in (selector or "").split(",") if term))


class FakeApi:
    """The API calls deploy and rollback make, over one store, as kube-apiserver answers them.

    A write without the stored resourceVersion is a 409 (stricter than the server, which takes an
    unconditional PUT for some kinds: deploy never sends one). A write of a DaemonSet or Deployment bumps
    its generation when its spec changed and plays the controllers: every node (replica) updated and
    available at once, or, for an image in ``broken``, one updated and never available. The pods of a
    deleted Deployment are still listed ``pod_lists`` times, then gone.
    """

    def __init__(self, broken=(), pod_lists: int = 2):
        self.store: dict[tuple[str, str | None, str], dict] = {}
        self.broken = set(broken)
        self.pod_lists = pod_lists
        self.stopping: dict[tuple, int] = {}  # pod key -> lists left before it is gone
        self.calls: list[tuple[str, str, str]] = []  # (verb, kind, name)
        self._rv = itertools.count(100)

    # ---- seeding and looking

    def put(self, obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        obj["metadata"].setdefault("generation", 1)
        self.store[(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj
        self._control(obj)
        return obj

    def get(self, kind: str, name: str, namespace: str | None = NS) -> dict | None:
        return self.store.get((kind, namespace, name))

    def names(self, kind: str) -> set[str]:
        return {name for (k, _, name) in self.store if k == kind}

    # ---- the client's methods, by name

    def __getattr__(self, method: str):
        verb, _, rest = method.partition("_")
        namespaced = rest.startswith("namespaced_")
        kind = STEMS[rest.removeprefix("namespaced_")]

        def call(*args, label_selector=None, **_):
            args = list(args)
            if verb == "list":
                ns = args[0]
                return Resp({"items": self._list(kind, ns, label_selector)})
            if verb == "create":
                ns = args.pop(0) if namespaced else None
                return Resp(self._create(kind, ns, args[0]))
            name = args.pop(0)
            ns = args.pop(0) if namespaced else None
            self.calls.append((verb, kind, name))
            key = (kind, ns, name)
            if key not in self.store:
                raise _error(404, f"{kind} {name} not found")
            if verb == "read":
                return Resp(self.store[key])
            if verb == "replace":
                return Resp(self._replace(key, args[0]))
            if verb == "delete":
                self._delete(key)
                return {"status": "Success"}
            raise AssertionError(f"FakeApi: no {method}")
        return call

    def _list(self, kind, ns, selector):
        self.calls.append(("list", kind, selector or ""))
        if kind == "Pod":
            for key, left in list(self.stopping.items()):
                if left == 0:
                    del self.stopping[key], self.store[key]
                else:
                    self.stopping[key] = left - 1
        return [o for (k, n, _), o in sorted(self.store.items()) if k == kind and n == ns and _matches(o, selector)]

    def _create(self, kind, ns, body):
        self.calls.append(("create", kind, body["metadata"]["name"]))
        assert body["kind"] == kind and body["metadata"].get("namespace") == ns
        if (kind, ns, body["metadata"]["name"]) in self.store:
            raise _error(409, "already exists")
        return self.put(body)

    def _replace(self, key, body):
        stored = self.store[key]
        if body["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]:
            raise _error(409, "the object has been modified")
        new = copy.deepcopy(body)
        new["status"] = stored.get("status")  # a PUT of the object leaves its status alone
        gen = stored["metadata"]["generation"]
        new["metadata"]["generation"] = gen + 1 if new.get("spec") != stored.get("spec") else gen
        new["metadata"]["resourceVersion"] = str(next(self._rv))
        self.store[key] = new
        self._control(new)
        return new

    def _delete(self, key):
        obj = self.store.pop(key)
        if key[0] == "Deployment":
            for pkey, pod in self.store.items():
                if pkey[0] == "Pod" and _matches(pod, ",".join(
                        f"{k}={v}" for k, v in obj["spec"]["selector"]["matchLabels"].items())):
                    self.stopping[pkey] = self.pod_lists

    def _control(self, obj):
        """The DaemonSet and Deployment controllers' and kubelets' part, at once."""
        if obj["kind"] not in ("DaemonSet", "Deployment"):
            return
        image = obj["spec"]["template"]["spec"]["containers"][0]["image"]
        want = NODES if obj["kind"] == "DaemonSet" else obj["spec"].get("replicas", 1)
        updated, available = (1, want - 1) if image in self.broken else (want, want)
        gen = obj["metadata"]["generation"]
        obj["status"] = ({"observedGeneration": gen, "desiredNumberScheduled": want,
                          "updatedNumberScheduled": updated, "numberAvailable": available}
                         if obj["kind"] == "DaemonSet" else
                         {"observedGeneration": gen, "replicas": want, "updatedReplicas": updated,
                          "availableReplicas": available})


def kubeadm_objects() -> list[dict]:
    ds = {**daemonset(), "kind": "DaemonSet"}
    cm = {**configmap(), "kind": "ConfigMap"}
    sa = {"kind": "ServiceAccount", "metadata": {"name": "kube-proxy", "namespace": NS},
          "secrets": [{"name": "kube-proxy-token-abcde"}]}
    return [ds, cm, sa]


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A Cluster over FakeApi holding what kubeadm makes; ``fake.cluster``, ``fake.lines``."""
    monkeypatch.setattr(kube, "POLL_S", 0.01)
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "x", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}]}))
    api = FakeApi()
    for obj in kubeadm_objects():
        api.put(obj)
    api.lines = []
    api.cluster = kube.Cluster(str(path), say=api.lines.append)
    api.cluster.core = api.cluster.apps = api.cluster.rbac = api.cluster.coordination = api
    return api


def deploy(fake, *, timeout="5", **options):
    return rollout._deploy(fake.cluster, parse_options(options.pop("image", "rap:v1"), timeout=timeout, **options),
                           fake.lines.append)


def aggregated(fake, **options):
    return deploy(fake, monitor="aggregator", aggregator_image=options.pop("aggregator_image", AGG_IMAGE), **options)


def container(fake) -> dict:
    return spec.find_container(fake.get("DaemonSet", "kube-proxy"))


def env(fake) -> dict:
    return {e["name"]: e.get("value") for e in container(fake)["env"]}


def monitor_objects_left(fake) -> list[str]:
    return sorted(str(r) for r in spec.all_monitor_refs() if fake.get(r.kind, r.name, r.namespace) is not None)


def published(fake, node: str) -> None:
    """What a running aggregator writes: its node's ConfigMap and the Lease, and its pod."""
    fake.put({"kind": "ConfigMap", "metadata": {"name": f"rap-load-{node}", "namespace": NS,
                                                "labels": {"rap.io/load": "true"}}, "data": {}})
    fake.put({"kind": "Lease", "metadata": {"name": "rap-aggregator", "namespace": NS}, "spec": {}})
    fake.put({"kind": "Pod", "metadata": {"name": "rap-aggregator-7d9-x", "namespace": NS,
                                          "labels": {"app.kubernetes.io/name": "rap-aggregator"}}})


# ---- options ----

def test_the_aggregated_monitor_needs_the_aggregators_image():
    with pytest.raises(DeployError) as exc:
        parse_options("rap:v1", monitor="aggregator")
    assert str(exc.value).startswith("--aggregator-image: required with --monitor aggregator")
    assert "or deploy with --monitor node" in str(exc.value) and "\n" not in str(exc.value)
    assert parse_options("rap:v1", monitor="aggregator", aggregator_image=AGG_IMAGE).aggregator_image == AGG_IMAGE


def test_the_aggregators_image_is_refused_with_the_per_node_monitor():
    with pytest.raises(DeployError, match=r"^--aggregator-image: only with --monitor aggregator \(--monitor node "):
        parse_options("rap:v1", aggregator_image=AGG_IMAGE)
    assert parse_options("rap:v1").aggregator_image is None


@pytest.mark.parametrize("image", ["", "aggregator", "agg: 1"])
def test_a_bad_aggregator_image_names_its_option(image):
    with pytest.raises(DeployError, match="^--aggregator-image"):
        parse_options("rap:v1", monitor="aggregator", aggregator_image=image)


# ---- each monitor's objects ----

def test_the_per_node_monitor_gets_its_cluster_role_as_before():
    assert spec.deployed_objects(parse_options("rap:v1")) == [spec.cluster_role(), spec.cluster_role_binding()]


def test_aggregated_kube_proxies_get_only_a_role_in_kube_system():
    objs = spec.deployed_objects(parse_options("rap:v1", monitor="aggregator", aggregator_image=AGG_IMAGE))
    proxy = {"kind": "ServiceAccount", "name": "kube-proxy", "namespace": NS}
    theirs = [o for o in objs if proxy in (o.get("subjects") or [])]
    assert [(o["kind"], o["metadata"]["namespace"], o["roleRef"]["name"]) for o in theirs] == \
        [("RoleBinding", NS, aggregator_rbac.PROXY_ROLE)]
    assert all(o["metadata"].get("namespace") in (None, NS) for o in objs)
    assert spec.RBAC_NAME not in {o["metadata"]["name"] for o in objs}


def test_the_aggregator_runs_with_the_kube_proxies_settings(monkeypatch):
    opts = parse_options("rap:v1", monitor="aggregator", aggregator_image=AGG_IMAGE, period="2",
                         cpu_threshold="0.7", mem_threshold="0.6", hysteresis="0.05")
    dep = next(o for o in spec.deployed_objects(opts) if o["kind"] == "Deployment")
    assert spec.ref(dep) == spec.AGGREGATOR_DEPLOYMENT
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == AGG_IMAGE and dep["spec"]["template"]["spec"]["serviceAccountName"] == "rap-aggregator"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")  # in its pod: the service account
    ran = parse_aggregator(c["command"][3:])
    assert ran.namespace == NS and ran.config == opts.rap


def test_the_monitors_objects_do_not_overlap():
    node, agg = set(spec.monitor_refs("node")), set(spec.monitor_refs("aggregator"))
    assert not node & agg
    assert set(spec.other_monitor_refs("node")) == agg and set(spec.other_monitor_refs("aggregator")) == node


def test_applied_keeps_what_the_server_added_and_restorable_drops_it():
    live = {"kind": "ServiceAccount", "metadata": {"name": "rap-aggregator", "namespace": NS, "uid": "u",
                                                   "resourceVersion": "7", "labels": {"old": "1"}},
            "secrets": [{"name": "rap-aggregator-token-x"}]}
    body = {"kind": "ServiceAccount", "metadata": {"name": "rap-aggregator", "namespace": NS, "labels": {"new": "1"}}}
    out = spec.applied(live, body)
    assert out["secrets"] == live["secrets"] and out["metadata"]["labels"] == {"new": "1"}
    assert out["metadata"]["resourceVersion"] == "7"
    back = spec.restorable({**live, "status": {"x": 1}})
    assert "status" not in back and set(back["metadata"]) == {"name", "namespace", "labels"}


def test_deployment_rollout_progress():
    dep = {"metadata": {"generation": 2}, "spec": {"replicas": 1},
           "status": {"observedGeneration": 2, "updatedReplicas": 1, "availableReplicas": 0}}
    assert not spec.deployment_rollout(dep).done
    assert spec.deployment_rollout(dep).describe() == "1/1 replicas updated, 0/1 available"
    dep["status"]["availableReplicas"] = 1
    assert spec.deployment_rollout(dep).done
    assert spec.deployment_rollout({"metadata": {"generation": 1}}).describe().startswith(
        "waiting for the Deployment controller")


# ---- deploy, switch, undo, rollback over the fake ----

def test_deploy_with_the_per_node_monitor_is_as_before(fake):
    deploy(fake)
    assert monitor_objects_left(fake) == ["ClusterRole rap-monitor", "ClusterRoleBinding rap-monitor"]
    assert env(fake)["RAP_MONITOR"] == "node"


def test_deploy_with_the_aggregator_creates_it_and_waits_for_it(fake):
    aggregated(fake, period="2")
    assert monitor_objects_left(fake) == sorted(str(r) for r in spec.monitor_refs("aggregator"))
    assert env(fake)["RAP_MONITOR"] == "aggregator" and container(fake)["image"] == "rap:v1"
    dep = fake.get("Deployment", "rap-aggregator")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == AGG_IMAGE
    assert "--period" in dep["spec"]["template"]["spec"]["containers"][0]["command"]
    assert ("read", "Deployment", "rap-aggregator") in fake.calls
    assert any(line.startswith("  aggregator: 1/1 replicas updated, 1/1 available") for line in fake.lines)
    assert any(f"fed by the aggregator {AGG_IMAGE}" in line for line in fake.lines)


def test_switching_monitors_removes_the_other_ones_objects(fake):
    deploy(fake)
    aggregated(fake)
    assert "rap-monitor" not in fake.names("ClusterRole") | fake.names("ClusterRoleBinding")
    published(fake, "node-1")
    fake.calls.clear()
    deploy(fake)  # back to the per-node monitor
    assert monitor_objects_left(fake) == ["ClusterRole rap-monitor", "ClusterRoleBinding rap-monitor"]
    assert "rap-load-node-1" not in fake.names("ConfigMap") and not fake.names("Lease")
    # what the aggregator published goes only once its pod has stopped: else it would write it again
    gone = fake.calls.index(("delete", "ConfigMap", "rap-load-node-1"))
    pod_lists = [i for i, c in enumerate(fake.calls) if c[:2] == ("list", "Pod")]
    assert len(pod_lists) == 3 and pod_lists[-1] < gone
    assert fake.calls.index(("delete", "Deployment", "rap-aggregator")) < \
        fake.calls.index(("delete", "RoleBinding", "rap-aggregator")) < pod_lists[0]
    record = json.loads(fake.get("ConfigMap", "rap-rollback")["data"]["record.json"])
    assert record["daemonset"]["image"] == "k8s.gcr.io/kube-proxy:v1.21.14"


def test_an_aggregator_that_is_not_available_undoes_a_first_deploy(fake):
    before = copy.deepcopy(container(fake))
    fake.broken.add("registry.example/rap/aggregator:broken")
    with pytest.raises(DeployError) as exc:
        aggregated(fake, aggregator_image="registry.example/rap/aggregator:broken", timeout="0.2")
    msg = str(exc.value)
    assert msg.startswith("the aggregator (Deployment kube-system/rap-aggregator, image "
                          "registry.example/rap/aggregator:broken) was not available within 0.2s "
                          "(1/1 replicas updated, 0/1 available)")
    assert "kubectl -n kube-system logs deployment/rap-aggregator" in msg
    assert monitor_objects_left(fake) == [] and fake.get("ConfigMap", "rap-rollback") is None
    assert container(fake) == before
    assert fake.get("ServiceAccount", "kube-proxy")["secrets"] == [{"name": "kube-proxy-token-abcde"}]


def test_a_failed_update_puts_the_previous_aggregator_back(fake):
    aggregated(fake, period="2")
    first = copy.deepcopy(fake.get("Deployment", "rap-aggregator")["spec"])
    fake.broken.add("rap:broken")
    with pytest.raises(DeployError, match="^RAP kube-proxy rap:broken was not running on every node"):
        aggregated(fake, image="rap:broken", aggregator_image="registry.example/rap/aggregator:v2", period="3",
                   timeout="0.2")
    assert fake.get("Deployment", "rap-aggregator")["spec"] == first
    assert monitor_objects_left(fake) == sorted(str(r) for r in spec.monitor_refs("aggregator"))
    assert container(fake)["image"] == "rap:v1" and fake.get("ConfigMap", "rap-rollback") is not None


def test_a_failed_switch_keeps_the_monitor_that_ran(fake):
    aggregated(fake)
    fake.broken.add("rap:broken")
    with pytest.raises(DeployError, match="was not running on every node"):
        deploy(fake, image="rap:broken", timeout="0.2")
    assert monitor_objects_left(fake) == sorted(str(r) for r in spec.monitor_refs("aggregator"))
    assert env(fake)["RAP_MONITOR"] == "aggregator"


@pytest.mark.parametrize("monitor", ["node", "aggregator"])
def test_rollback_removes_what_either_monitor_made(fake, monitor):
    before = copy.deepcopy(container(fake))
    if monitor == "aggregator":
        aggregated(fake)
        published(fake, "node-2")
        fake.delete_namespaced_role("rap-aggregator", NS)  # someone removed a part by hand: still fine
    else:
        deploy(fake)
    rollout._rollback(fake.cluster, 5, fake.lines.append)
    assert monitor_objects_left(fake) == [] and fake.get("ConfigMap", "rap-rollback") is None
    assert not fake.names("Lease") and not fake.names("Pod")
    assert {n for n in fake.names("ConfigMap")} == {"kube-proxy"}
    assert container(fake) == before
    assert fake.get("ServiceAccount", "kube-proxy") is not None
