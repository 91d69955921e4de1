"""The pure part of `invoke deploy` / `rollback`: what changes in which object.

Everything here works on plain dicts as the API server serves them (camelCase
JSON), so it can be tested without a cluster: the RAP environment of the
kube-proxy container, the edit of the KubeProxyConfiguration in the
kube-proxy ConfigMap, the rollback record, the objects each monitor needs
besides the DaemonSet (and how one is written over, or back onto, what the
server has), and how far a DaemonSet or Deployment rollout has got. The
options are checked before any of this, in options.py.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Mapping

import yaml

from rap.aggregator import publish
from rap.aggregator import rbac as aggregator_rbac
from rap.config import FIELDS, RapConfig

# The options are checked in options.py; these names stay importable from here too.
from rap.deploy.options import (AGGREGATOR, DEFAULT_TIMEOUT_S, OPTIONS, DeployError,  # noqa: F401
                                DeployOptions, parse_options)

NAMESPACE = "kube-system"
DAEMONSET = "kube-proxy"
CONFIGMAP = "kube-proxy"
CONFIG_KEY = "config.conf"
KUBECONFIG_KEY = "kubeconfig.conf"
SERVICE_ACCOUNT = "kube-proxy"
RECORD = "rap-rollback"  # kube-system ConfigMap holding what deploy replaced
RECORD_KEY = "record.json"
RBAC_NAME = "rap-monitor"  # the per-node monitor's ClusterRole and ClusterRoleBinding
MONITORS = FIELDS["monitor"].choices  # node, aggregator: the table's
MANAGED_BY = {"app.kubernetes.io/managed-by": "rap-toolkit"}
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
USERSPACE = "userspace"
RECORD_VERSION = 1
ENV_PREFIX = "RAP_"


# ---------------------------------------------------------------------------
# The container's environment


def _fmt(value: float | str) -> str:
    # repr of a float reads back as the same float in Go's strconv.ParseFloat; a choice is its own text.
    return value if isinstance(value, str) else repr(float(value))


def rap_env(opts: DeployOptions, kubeconfig_path: str | None = None) -> list[dict]:
    """The RAP_* variables of the kube-proxy container, in the API's form."""
    env = [{"name": OPTIONS[name][1], "value": _fmt(value)} for name, value in opts.rap.as_dict().items()]
    env.append({"name": "RAP_NODE_NAME",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}})
    env += [{"name": OPTIONS[name][1], "value": str(value)} for name, value in opts.monitor.as_dict().items()]
    if kubeconfig_path:
        env.append({"name": "RAP_KUBECONFIG", "value": kubeconfig_path})
    return env


def merge_env(existing: list[dict] | None, rap: list[dict]) -> list[dict]:
    """The container's own variables (NODE_NAME, ...) first and unchanged, then RAP's.

    Any RAP_* variable already there (an earlier deploy) is replaced, so a
    second deploy never leaves a stale setting behind.
    """
    kept = [copy.deepcopy(e) for e in existing or [] if not str(e.get("name", "")).startswith(ENV_PREFIX)]
    return kept + copy.deepcopy(rap)


# ---------------------------------------------------------------------------
# The DaemonSet


def find_container(ds: Mapping) -> dict:
    """The kube-proxy container of the DaemonSet (named kube-proxy, or the only one)."""
    containers = ds.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    for c in containers:
        if c.get("name") == DAEMONSET:
            return c
    if len(containers) == 1:
        return containers[0]
    names = ", ".join(c.get("name", "?") for c in containers) or "none"
    raise DeployError(f"DaemonSet {NAMESPACE}/{DAEMONSET} has no container named {DAEMONSET!r} "
                      f"(containers: {names}); is this a kubeadm cluster?")


def kubeconfig_mount(ds: Mapping, configmap: Mapping) -> str | None:
    """Where the container sees the ConfigMap's kubeconfig.conf, if it mounts it (kubeadm does).

    RAP's monitor then reaches the API server the way kube-proxy itself does
    (the control-plane address and the kube-proxy service-account token),
    instead of through the kubernetes Service that kube-proxy serves.
    """
    if KUBECONFIG_KEY not in (configmap.get("data") or {}):
        return None
    pod = ds.get("spec", {}).get("template", {}).get("spec", {})
    volumes = {v.get("name") for v in pod.get("volumes") or []
               if (v.get("configMap") or {}).get("name") == CONFIGMAP}
    for m in find_container(ds).get("volumeMounts") or []:
        if m.get("name") in volumes and not m.get("subPath"):
            return m["mountPath"].rstrip("/") + "/" + KUBECONFIG_KEY
    return None


CONTAINER_FIELDS = ("image", "command", "args", "env", "readinessProbe")

# kube-proxy's --healthz-bind-address default (KubeProxyConfiguration
# healthzBindAddress, which kubeadm leaves at 0.0.0.0:10256). The pod runs
# on the host network, so the kubelet probes the node's own port.
HEALTHZ_PORT = 10256


def readiness_probe() -> dict:
    """Ready only once kube-proxy answers /healthz, so a rollout waits for a RAP that is up."""
    return {"httpGet": {"path": "/healthz", "port": HEALTHZ_PORT, "scheme": "HTTP"},
            "initialDelaySeconds": 2, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3}


def container_state(ds: Mapping) -> dict:
    """What deploy may change in the container: image, command, args, env, readiness probe (None = absent)."""
    c = find_container(ds)
    out = {"container": c.get("name")}
    for f in CONTAINER_FIELDS:
        out[f] = copy.deepcopy(c.get(f))
    return out


def now_rfc3339() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _set_restarted(ds: dict, when: str) -> None:
    meta = ds.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {})
    annotations = meta.get("annotations") or {}
    annotations[RESTARTED_AT] = when
    meta["annotations"] = annotations


def deployed_daemonset(ds: Mapping, opts: DeployOptions, env: list[dict], when: str) -> dict:
    """The DaemonSet with the RAP image and environment, and a restart stamp."""
    out = copy.deepcopy(dict(ds))
    c = find_container(out)
    c["image"] = opts.image
    c["env"] = merge_env(c.get("env"), env)
    c["readinessProbe"] = readiness_probe()
    _set_restarted(out, when)
    return out


def restored_daemonset(ds: Mapping, state: Mapping, when: str) -> dict:
    """The DaemonSet with the recorded image, command, args, env and probe put back exactly."""
    out = copy.deepcopy(dict(ds))
    c = find_container(out)
    for f in CONTAINER_FIELDS:
        value = state.get(f)
        if value is None:
            c.pop(f, None)
        else:
            c[f] = copy.deepcopy(value)
    _set_restarted(out, when)
    return out


# ---------------------------------------------------------------------------
# The kube-proxy ConfigMap: KubeProxyConfiguration in config.conf

_MODE_LINE = re.compile(r"^mode:[^\n]*$", re.MULTILINE)


def _load_proxy_config(text: str) -> dict:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DeployError(f"ConfigMap {NAMESPACE}/{CONFIGMAP} key {CONFIG_KEY} is not YAML: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "KubeProxyConfiguration":
        raise DeployError(f"ConfigMap {NAMESPACE}/{CONFIGMAP} key {CONFIG_KEY} does not hold a "
                          "KubeProxyConfiguration; is this a kubeadm cluster?")
    return doc


def with_config(configmap: Mapping, text: str) -> dict:
    """The ConfigMap with ``text`` as its config.conf, every other key as it was."""
    out = copy.deepcopy(dict(configmap))
    out["data"] = {**(out.get("data") or {}), CONFIG_KEY: text}
    return out


def proxy_mode(text: str) -> str:
    return str(_load_proxy_config(text).get("mode") or "")


def set_userspace(text: str) -> str:
    """config.conf with ``mode: userspace``, every other byte kept where possible.

    kubeadm writes one top-level ``mode:`` line; only that line changes (or one
    is added). If the text is laid out so that a line edit would not give
    exactly "the same document with mode userspace", it is re-serialised from
    the parsed document instead, which keeps every field and value.
    """
    doc = _load_proxy_config(text)
    want = {**doc, "mode": USERSPACE}
    lines = _MODE_LINE.findall(text)
    if len(lines) == 1:
        edited = _MODE_LINE.sub(f"mode: {USERSPACE}", text)
    elif not lines:
        edited = text + ("" if text.endswith("\n") or not text else "\n") + f"mode: {USERSPACE}\n"
    else:
        edited = None
    if edited is not None:
        try:
            if yaml.safe_load(edited) == want:
                return edited
        except yaml.YAMLError:
            pass
    return yaml.safe_dump(want, sort_keys=False, default_flow_style=False)


# ---------------------------------------------------------------------------
# The rollback record


def make_record(ds: Mapping, configmap: Mapping, image: str, when: str) -> dict:
    data = configmap.get("data") or {}
    if CONFIG_KEY not in data:
        raise DeployError(f"ConfigMap {NAMESPACE}/{CONFIGMAP} has no {CONFIG_KEY} key; is this a kubeadm cluster?")
    return {
        "version": RECORD_VERSION,
        "recordedAt": when,
        "deployedImage": image,
        "daemonset": {"namespace": NAMESPACE, "name": DAEMONSET, **container_state(ds)},
        "configmap": {"namespace": NAMESPACE, "name": CONFIGMAP, CONFIG_KEY: data[CONFIG_KEY]},
    }


def record_configmap(record: Mapping) -> dict:
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": RECORD, "namespace": NAMESPACE, "labels": dict(MANAGED_BY),
                     "annotations": {"rap-toolkit/purpose":
                                     "what `invoke deploy` replaced in kube-system/kube-proxy; "
                                     "`invoke rollback` puts it back and deletes this"}},
        "data": {RECORD_KEY: json.dumps(record, indent=2, sort_keys=True) + "\n"},
    }


def parse_record(configmap: Mapping) -> dict:
    raw = (configmap.get("data") or {}).get(RECORD_KEY)
    try:
        record = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        record = None
    ok = (isinstance(record, dict) and record.get("version") == RECORD_VERSION
          and isinstance(record.get("daemonset"), dict) and isinstance(record.get("configmap"), dict)
          and isinstance(record["configmap"].get(CONFIG_KEY), str) and record["daemonset"].get("image"))
    if not ok:
        raise DeployError(f"ConfigMap {NAMESPACE}/{RECORD} is not a rollback record this toolkit can read "
                          f"(key {RECORD_KEY}); restore kube-proxy by hand and delete it")
    return record


# ---------------------------------------------------------------------------
# RBAC of the per-node monitor


def cluster_role() -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": RBAC_NAME, "labels": dict(MANAGED_BY)},
        "rules": [
            # rap_monitor.go only lists: Nodes, Pods (all namespaces) and the
            # metrics.k8s.io pods and nodes collections; it never gets one object.
            {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["list"]},
            {"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"], "verbs": ["list"]},
        ],
    }


def cluster_role_binding() -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": RBAC_NAME, "labels": dict(MANAGED_BY)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": RBAC_NAME},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}],
    }


# ---------------------------------------------------------------------------
# What each monitor needs besides the DaemonSet


@dataclass(frozen=True)
class Ref:
    """One object by kind and name; namespace None for a cluster-scoped one."""

    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


def ref(obj: Mapping) -> Ref:
    meta = obj["metadata"]
    return Ref(obj["kind"], meta["name"], meta.get("namespace"))


# What the aggregator writes while it runs (rap.aggregator.publish): the heartbeat Lease and, by
# this label, one ConfigMap per node. They go when the aggregator goes.
AGGREGATOR_LEASE = Ref("Lease", publish.LEASE, NAMESPACE)
PUBLISHED_SELECTOR = publish.LABEL_SELECTOR


def monitor_objects(monitor: str, aggregator_image: str = "", config: RapConfig | None = None) -> list[dict]:
    """The objects ``monitor`` needs besides the DaemonSet, in the order to create them.

    node: the per-node monitor's ClusterRole, bound to kube-proxy's ServiceAccount.
    aggregator: rap.aggregator.rbac's manifests, the one home of those objects: the
    kube-proxies' Role of aggregated mode bound to that ServiceAccount (nothing
    cluster-wide), and the aggregator itself (ServiceAccount, roles, bindings,
    Deployment of ``aggregator_image``), in kube-system, where a kube-proxy reads,
    with ``config``, the settings the kube-proxies run with.
    """
    if monitor == AGGREGATOR:
        return aggregator_rbac.manifests(aggregator_image, config or RapConfig(), NAMESPACE,
                                         proxy_service_account=SERVICE_ACCOUNT)
    return [cluster_role(), cluster_role_binding()]


def deployed_objects(opts: DeployOptions) -> list[dict]:
    return monitor_objects(opts.monitor.monitor, opts.aggregator_image or "", opts.rap)


def monitor_refs(monitor: str) -> list[Ref]:
    """The objects of ``monitor`` by name, in creation order (no image or setting changes a name)."""
    return [ref(o) for o in monitor_objects(monitor)]


def other_monitor_refs(monitor: str) -> list[Ref]:
    """What deploy makes for every monitor but ``monitor``: left over from a deploy with another one."""
    return [r for m in MONITORS if m != monitor for r in monitor_refs(m)]


def all_monitor_refs() -> list[Ref]:
    return [r for m in MONITORS for r in monitor_refs(m)]


AGGREGATOR_DEPLOYMENT = next(r for r in monitor_refs(AGGREGATOR) if r.kind == "Deployment")


# Set by the server, never by a writer: dropped from a body that puts an object back.
_SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink")


def restorable(live: Mapping) -> dict:
    """An object as read, as a body that puts it back later: everything but its status and the server's metadata."""
    out = {k: copy.deepcopy(v) for k, v in live.items() if k != "status"}
    out["metadata"] = {k: copy.deepcopy(v) for k, v in live["metadata"].items() if k not in _SERVER_METADATA}
    return out


def applied(live: Mapping, body: Mapping) -> dict:
    """``body`` written over ``live``: each top-level field and metadata key ``body`` sets replaces live's.

    What ``body`` does not set stays as the server has it (a ServiceAccount's token
    Secrets, a Deployment's revision annotation), and so does live's
    resourceVersion: a concurrent change makes the write a conflict.
    """
    out = copy.deepcopy(dict(live))
    out.update(copy.deepcopy({k: v for k, v in body.items() if k != "metadata"}))
    out["metadata"] = {**out["metadata"], **copy.deepcopy(body["metadata"]),
                       "resourceVersion": live["metadata"]["resourceVersion"]}
    return out


# ---------------------------------------------------------------------------
# Rollout progress


@dataclass(frozen=True)
class Rollout:
    generation: int
    observed: int
    desired: int
    updated: int
    available: int
    controller: str = "DaemonSet"
    unit: str = "nodes"  # what ``desired`` counts

    @property
    def done(self) -> bool:
        return (self.observed >= self.generation and
                self.updated == self.desired == self.available)

    def describe(self) -> str:
        if self.observed < self.generation:
            return (f"waiting for the {self.controller} controller "
                    f"(generation {self.generation}, observed {self.observed})")
        return f"{self.updated}/{self.desired} {self.unit} updated, {self.available}/{self.desired} available"


def rollout(ds: Mapping) -> Rollout:
    status = ds.get("status") or {}
    return Rollout(
        generation=int(ds.get("metadata", {}).get("generation") or 0),
        observed=int(status.get("observedGeneration") or 0),
        desired=int(status.get("desiredNumberScheduled") or 0),
        updated=int(status.get("updatedNumberScheduled") or 0),
        available=int(status.get("numberAvailable") or 0),
    )


def deployment_rollout(deployment: Mapping) -> Rollout:
    """How far a Deployment is: every wanted replica (``spec.replicas``) runs the current template and is available."""
    status = deployment.get("status") or {}
    replicas = (deployment.get("spec") or {}).get("replicas")
    return Rollout(
        generation=int(deployment.get("metadata", {}).get("generation") or 0),
        observed=int(status.get("observedGeneration") or 0),
        desired=int(1 if replicas is None else replicas),  # the API's default
        updated=int(status.get("updatedReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        controller="Deployment", unit="replicas",
    )
