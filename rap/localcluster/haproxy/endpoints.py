"""The ready endpoints of the one Service port this peer serves, read from the API server.

The Service is found once by its ClusterIP (immutable for the Service's life);
after that each round lists only that Service's Endpoints. Parsing is the
Python proxy's (rap/pyproxy/services.py), so both peers agree on what "ready
endpoint of this port" means: the addresses of the subset port named like the
Service port, notReadyAddresses left out.
"""

from __future__ import annotations

from typing import Any, Mapping

from rap.localcluster.haproxy.sync import Target
from rap.pyproxy.services import port_specs


def find_service(services: Mapping[str, Any], cluster_ip: str, port: int) -> Mapping[str, Any] | None:
    """The item of a ServiceList with this ClusterIP and TCP port, or None."""
    for svc in services.get("items") or []:
        if any(spec.cluster_ip == cluster_ip and spec.port == port for spec in port_specs({"items": [svc]}, {})):
            return svc
    return None


def service_targets(service: Mapping[str, Any], endpoints: Mapping[str, Any], cluster_ip: str,
                    port: int) -> list[Target]:
    """The ready (ip, port) endpoints of ``service``'s port ``port`` in an EndpointsList."""
    for spec in port_specs({"items": [service]}, endpoints):
        if spec.cluster_ip == cluster_ip and spec.port == port:
            return [(e.ip, e.port) for e in spec.endpoints]
    return []


class ServiceEndpoints:
    def __init__(self, api_client, cluster_ip: str, port: int) -> None:
        self.api_client = api_client
        self.cluster_ip, self.port = cluster_ip, port
        self.service: Mapping[str, Any] | None = None

    def fetch(self) -> list[Target] | None:
        """The endpoints now; None while no Service has this ClusterIP and port. API errors raise."""
        from rap.pyproxy.monitor import core_json

        if self.service is None:
            services = core_json(self.api_client, "list_service_for_all_namespaces")
            self.service = find_service(services, self.cluster_ip, self.port)
            if self.service is None:
                return None
        meta = self.service["metadata"]
        endpoints = core_json(self.api_client, "list_namespaced_endpoints", namespace=meta["namespace"],
                              field_selector=f"metadata.name={meta['name']}")
        return service_targets(self.service, endpoints, self.cluster_ip, self.port)

    @property
    def name(self) -> str:
        meta = (self.service or {}).get("metadata") or {}
        return f"{meta.get('namespace')}/{meta.get('name')}" if meta else "?"
