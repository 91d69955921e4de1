"""Registration with kube-apiserver: the APIService, Service and Endpoints that the cluster code POSTs.

With these, kube-apiserver's aggregation layer proxies
/apis/metrics.k8s.io/v1beta1 to the metrics server, as it does to
metrics-server on a real cluster. Only the objects: creating them through the
API is the cluster code's (``rap.localcluster.cluster``).
"""

from __future__ import annotations

import base64
import json

from rap.localcluster.metrics.wire import GROUP, VERSION

MANAGED_BY = {"app.kubernetes.io/managed-by": "rap-local"}


def apiservice(service_namespace: str = "kube-system", service_name: str = "rap-metrics",
               port: int = 443, ca_bundle: bytes | None = None) -> dict:
    """The APIService that makes kube-apiserver proxy metrics.k8s.io/v1beta1 to us.

    With ``ca_bundle`` (PEM) the aggregator checks our serving certificate against it, for the
    name ``<service_name>.<service_namespace>.svc``; without, it skips the check.
    """
    trust = ({"caBundle": base64.b64encode(ca_bundle).decode()} if ca_bundle
             else {"insecureSkipTLSVerify": True})
    return {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": f"{VERSION}.{GROUP}", "labels": dict(MANAGED_BY)},
            "spec": {"group": GROUP, "version": VERSION,
                     "service": {"namespace": service_namespace, "name": service_name, "port": port},
                     **trust, "groupPriorityMinimum": 100, "versionPriority": 100}}


def service_objects(ip: str, port: int, service_namespace: str = "kube-system",
                    service_name: str = "rap-metrics", service_port: int = 443) -> tuple[dict, dict]:
    """A selectorless Service and its Endpoints pointing at this server (ip:port).

    kube-apiserver needs --enable-aggregator-routing=true to dial the endpoint
    directly (no kube-proxy runs beside it); the port names must match.
    """
    meta = {"name": service_name, "namespace": service_namespace, "labels": dict(MANAGED_BY)}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": meta,
           "spec": {"ports": [{"name": "https", "port": service_port, "protocol": "TCP", "targetPort": port}]}}
    eps = {"apiVersion": "v1", "kind": "Endpoints", "metadata": dict(meta),
           "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}
    return svc, eps


def apiservice_yaml(**kwargs) -> str:
    """The APIService as YAML (JSON is YAML; no extra dependency)."""
    return json.dumps(apiservice(**kwargs), indent=2) + "\n"
