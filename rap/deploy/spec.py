"""The pure part of `invoke deploy` / `rollback`: what changes in which object.

Everything here works on plain dicts as the API server serves them (camelCase
JSON), so it can be tested without a cluster: the RAP environment of the
kube-proxy container, the edit of the KubeProxyConfiguration in the
kube-proxy ConfigMap, the rollback record, and how far a DaemonSet rollout
has got. The options are checked before any of this, in options.py.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Mapping

import yaml

# The options are checked in options.py; these names stay importable from here too.
from rap.deploy.options import DEFAULT_TIMEOUT_S, OPTIONS, DeployError, DeployOptions, parse_options  # noqa: F401

NAMESPACE = "kube-system"
DAEMONSET = "kube-proxy"
CONFIGMAP = "kube-proxy"
CONFIG_KEY = "config.conf"
KUBECONFIG_KEY = "kubeconfig.conf"
SERVICE_ACCOUNT = "kube-proxy"
RECORD = "rap-rollback"  # kube-system ConfigMap holding what deploy replaced
RECORD_KEY = "record.json"
RBAC_NAME = "rap-monitor"  # ClusterRole and ClusterRoleBinding
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
# RBAC for RAP's monitor


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
# Rollout progress


@dataclass(frozen=True)
class Rollout:
    generation: int
    observed: int
    desired: int
    updated: int
    available: int

    @property
    def done(self) -> bool:
        return (self.observed >= self.generation and
                self.updated == self.desired == self.available)

    def describe(self) -> str:
        if self.observed < self.generation:
            return f"waiting for the DaemonSet controller (generation {self.generation}, observed {self.observed})"
        return f"{self.updated}/{self.desired} nodes updated, {self.available}/{self.desired} available"


def rollout(ds: Mapping) -> Rollout:
    status = ds.get("status") or {}
    return Rollout(
        generation=int(ds.get("metadata", {}).get("generation") or 0),
        observed=int(status.get("observedGeneration") or 0),
        desired=int(status.get("desiredNumberScheduled") or 0),
        updated=int(status.get("updatedNumberScheduled") or 0),
        available=int(status.get("numberAvailable") or 0),
    )
