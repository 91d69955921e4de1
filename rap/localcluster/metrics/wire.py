"""The metrics.k8s.io/v1beta1 wire format: NodeMetrics, PodMetrics, lists, discovery, errors.

Plain dicts, as metrics-server serialises them, with the metav1 scalars they
carry (``window`` as a Go duration, times as RFC 3339, quantities from
``rap.quantity``). Not where paths are routed (``api``) or usage is measured
(``sampler``): every function here is pure.
"""

from __future__ import annotations

from datetime import datetime, timezone

from rap.localcluster.metrics.registry import PodEntry
from rap.localcluster.metrics.sampler import Usage
from rap.quantity import cpu_quantity, memory_quantity

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
PREFIX = f"/apis/{GROUP_VERSION}"

OPENAPI_V2 = {"swagger": "2.0", "info": {"title": "rap-local metrics", "version": VERSION},
              "paths": {}, "definitions": {}}


# -- metav1 scalars ---------------------------------------------------------------------------

def _go_fraction(value: int, digits: int) -> str:
    whole, frac = divmod(value, 10**digits)
    frac_s = f"{frac:0{digits}d}".rstrip("0")
    return f"{whole}.{frac_s}" if frac_s else str(whole)


def go_duration(ns: int) -> str:
    """time.Duration.String(), which metav1.Duration (``window``) serialises as."""
    ns = int(ns)
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_go_fraction(ns, 3)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_go_fraction(ns, 6)}ms"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    secs = _go_fraction(rest, 9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    return f"{sign}{minutes}m{secs}" if minutes else f"{sign}{secs}"


def rfc3339(t: float) -> str:
    """metav1.Time: UTC, whole seconds."""
    return datetime.fromtimestamp(int(t), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(code: int, reason: str, message: str) -> dict:
    """A metav1.Status error body, as the API server answers errors."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


# -- NodeMetrics and PodMetrics ----------------------------------------------------------------

def _meta(name: str, now: float, namespace: str | None = None, labels: dict | None = None) -> dict:
    meta = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["creationTimestamp"] = rfc3339(now)
    if labels:
        meta["labels"] = dict(labels)
    return meta


def _usage(u: Usage) -> dict:
    return {"cpu": cpu_quantity(u.nanocores), "memory": memory_quantity(u.memory)}


def node_metrics(name: str, u: Usage, now: float, labels: dict | None = None) -> dict:
    return {"metadata": _meta(name, now, labels=labels), "timestamp": rfc3339(u.timestamp),
            "window": go_duration(u.window_ns), "usage": _usage(u)}


def pod_metrics(pod: PodEntry, u: Usage, now: float) -> dict:
    return {"metadata": _meta(pod.name, now, pod.namespace, pod.labels),
            "timestamp": rfc3339(u.timestamp), "window": go_duration(u.window_ns),
            "containers": [{"name": pod.container, "usage": _usage(u)}]}


def metrics_list(kind: str, items: list[dict]) -> dict:
    return {"kind": f"{kind}List", "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}


def single(kind: str, item: dict) -> dict:
    return {"kind": kind, "apiVersion": GROUP_VERSION, **item}


# -- discovery ------------------------------------------------------------------------------------

def _version_entry() -> dict:
    return {"groupVersion": GROUP_VERSION, "version": VERSION}


def api_group() -> dict:
    return {"kind": "APIGroup", "apiVersion": "v1", "name": GROUP,
            "versions": [_version_entry()], "preferredVersion": _version_entry()}


def api_group_list() -> dict:
    group = api_group()
    del group["kind"], group["apiVersion"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}


def api_resource_list() -> dict:
    def res(name: str, kind: str, namespaced: bool) -> dict:
        return {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
                "verbs": ["get", "list"]}
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION,
            "resources": [res("nodes", "NodeMetrics", False), res("pods", "PodMetrics", True)]}
