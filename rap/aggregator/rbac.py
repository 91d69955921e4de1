"""The aggregated mode's RBAC and the aggregator's Deployment, as the API's JSON: their one home.

- The aggregator: a ClusterRole to list and watch Nodes and Pods and to list
  metrics.k8s.io pods and nodes (reading a collection is RBAC's ``list``), and
  a Role in its namespace for its ConfigMaps and its Lease. Nothing in any
  other namespace, no Secrets.
- A kube-proxy in aggregated mode: a Role in that namespace to get, list and
  watch ConfigMaps and Leases, and nothing cluster-wide beyond kube-proxy's
  own ``system:node-proxier`` (RAP's per-node ClusterRole, rap.deploy.spec's
  ``cluster_role``, is for the per-node monitor only).
- ``manifests``: everything a real cluster needs for the aggregator (its
  ServiceAccount, roles, bindings, Deployment) and the kube-proxy's Role bound
  to kubeadm's ``kube-proxy`` ServiceAccount.

Not here: creating them (the local cluster: ``local``; a real cluster: apply
``manifests``), the per-node monitor's role (rap.deploy.spec).
"""

from __future__ import annotations

from rap.aggregator.publish import DEFAULT_NAMESPACE, DEFAULT_STEP, MANAGED_BY
from rap.config import FIELDS

RBAC = "rbac.authorization.k8s.io"
NAME = "rap-aggregator"  # its ServiceAccount, ClusterRole, Role, their bindings and its Deployment
PROXY_ROLE = "rap-aggregated-monitor"  # the kube-proxies' Role (and RoleBinding) in aggregated mode
PROXY_SERVICE_ACCOUNT = "kube-proxy"  # kubeadm's
OWN_VERBS = ["get", "list", "watch", "create", "update", "delete"]
READ_VERBS = ["get", "list", "watch"]


def _meta(name: str, namespace: str | None = None) -> dict:
    meta = {"name": name, "labels": dict(MANAGED_BY)}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def cluster_role() -> dict:
    """What the aggregator reads cluster-wide: Nodes and Pods (list+watch), and their metrics."""
    return {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": _meta(NAME),
            "rules": [{"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["list", "watch"]},
                      {"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"], "verbs": ["list"]}]}


def role(namespace: str = DEFAULT_NAMESPACE) -> dict:
    """What the aggregator writes, in its namespace only: its ConfigMaps and its Lease."""
    return {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": _meta(NAME, namespace),
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": list(OWN_VERBS)},
                      {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": list(OWN_VERBS)}]}


def proxy_role(namespace: str = DEFAULT_NAMESPACE) -> dict:
    """What a kube-proxy of the aggregated monitor reads: the aggregator's ConfigMaps and Lease."""
    return {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": _meta(PROXY_ROLE, namespace),
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": list(READ_VERBS)},
                      {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": list(READ_VERBS)}]}


def service_account_subject(namespace: str = DEFAULT_NAMESPACE, name: str = NAME) -> dict:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def user_subject(name: str) -> dict:
    return {"apiGroup": RBAC, "kind": "User", "name": name}


def group_subject(name: str) -> dict:
    return {"apiGroup": RBAC, "kind": "Group", "name": name}


def cluster_role_binding(subjects: list[dict], name: str = NAME) -> dict:
    return {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding", "metadata": _meta(name),
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": NAME}, "subjects": subjects}


def role_binding(role_name: str, subjects: list[dict], namespace: str = DEFAULT_NAMESPACE) -> dict:
    return {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", "metadata": _meta(role_name, namespace),
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": role_name}, "subjects": subjects}


def aggregator_rbac(subjects: list[dict], namespace: str = DEFAULT_NAMESPACE) -> list[dict]:
    """The aggregator's ClusterRole and Role, bound to ``subjects``."""
    return [cluster_role(), cluster_role_binding(subjects), role(namespace), role_binding(NAME, subjects, namespace)]


def proxy_rbac(subjects: list[dict], namespace: str = DEFAULT_NAMESPACE) -> list[dict]:
    """The kube-proxies' Role of aggregated mode, bound to ``subjects``."""
    return [proxy_role(namespace), role_binding(PROXY_ROLE, subjects, namespace)]


def command(config, namespace: str = DEFAULT_NAMESPACE, publish_step: float = DEFAULT_STEP,
            kubeconfig: str | None = None) -> list[str]:
    """The aggregator's command line for a RapConfig: every setting it reads, given explicitly."""
    argv = ["python3", "-m", "rap.aggregator", "--namespace", namespace]
    if kubeconfig:
        argv += ["--kubeconfig", kubeconfig]
    for name in ("period_s", "cpu_threshold", "mem_threshold", "hysteresis"):
        argv += [f"--{FIELDS[name].option}", repr(float(getattr(config, name)))]
    return argv + ["--publish-step", repr(float(publish_step))]


def deployment(image: str, config, namespace: str = DEFAULT_NAMESPACE,
               publish_step: float = DEFAULT_STEP) -> dict:
    """One replica (Recreate: never two aggregators writing at once) running ``image``, which must hold
    python3 and the rap package; the settings must be the kube-proxies' (``config``, a RapConfig)."""
    labels = {"app.kubernetes.io/name": NAME, **MANAGED_BY}
    container = {
        "name": NAME, "image": image, "command": command(config, namespace, publish_step),
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
    }
    out = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {**_meta(NAME, namespace), "labels": labels},
        "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                 "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"serviceAccountName": NAME, "nodeSelector": {"kubernetes.io/os": "linux"},
                                       "containers": [container]}}},
    }
    if namespace == "kube-system":  # the API server admits this class there only
        out["spec"]["template"]["spec"]["priorityClassName"] = "system-cluster-critical"
    return out


def manifests(image: str, config, namespace: str = DEFAULT_NAMESPACE,
              publish_step: float = DEFAULT_STEP, proxy_service_account: str = PROXY_SERVICE_ACCOUNT) -> list[dict]:
    """Everything a real cluster needs for aggregated mode, in the order to apply it."""
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(NAME, namespace)}
    return [sa, *aggregator_rbac([service_account_subject(namespace)], namespace),
            *proxy_rbac([service_account_subject(namespace, proxy_service_account)], namespace),
            deployment(image, config, namespace, publish_step)]
