"""Services and Endpoints (core/v1 JSON) -> what the proxy serves, one ``PortSpec`` per TCP service port.

Parsing works on plain JSON dicts so the same code handles a live API listing
and a test's literal objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from rap.policies import AFFINITY_CLIENT_IP, AFFINITY_NONE, Endpoint
from rap.policies.base import DEFAULT_AFFINITY_TIMEOUT_S


@dataclass(frozen=True)
class PortSpec:
    name: str  # kube-proxy's ServicePortName: "ns/svc:port" ("ns/svc" when the port is unnamed)
    cluster_ip: str
    port: int
    affinity: str = AFFINITY_NONE
    ttl_s: int = DEFAULT_AFFINITY_TIMEOUT_S
    endpoints: tuple[Endpoint, ...] = ()


def service_port_name(namespace: str, service: str, port_name: str) -> str:
    return f"{namespace}/{service}:{port_name}" if port_name else f"{namespace}/{service}"


def port_specs(services: Mapping[str, Any], endpoints: Mapping[str, Any]) -> list[PortSpec]:
    """Every proxied port of a ServiceList, with its ready endpoints from the EndpointsList."""
    eps_by_svc = {_key(item): item for item in endpoints.get("items") or []}
    specs: list[PortSpec] = []
    for svc in services.get("items") or []:
        specs.extend(_service_specs(svc, eps_by_svc.get(_key(svc))))
    return sorted(specs, key=lambda s: s.name)


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", "default"), meta.get("name", "")


def _service_specs(svc: Mapping[str, Any], eps: Mapping[str, Any] | None) -> list[PortSpec]:
    spec = svc.get("spec") or {}
    cluster_ip = spec.get("clusterIP") or ""
    # Headless and ExternalName services have no ClusterIP to intercept (kube-proxy skips them too).
    if cluster_ip in ("", "None") or spec.get("type") == "ExternalName":
        return []
    affinity, ttl = _affinity(spec)
    namespace, name = _key(svc)
    out = []
    for port in spec.get("ports") or []:
        if port.get("protocol", "TCP") != "TCP":
            continue  # this proxy relays TCP only; UDP/SCTP are not part of the benchmark
        port_name = port.get("name") or ""
        out.append(PortSpec(
            service_port_name(namespace, name, port_name), cluster_ip, int(port["port"]),
            affinity, ttl, tuple(_endpoints(eps, port_name)),
        ))
    return out


def _affinity(spec: Mapping[str, Any]) -> tuple[str, int]:
    if spec.get("sessionAffinity") != AFFINITY_CLIENT_IP:
        return AFFINITY_NONE, DEFAULT_AFFINITY_TIMEOUT_S
    ttl = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
    return AFFINITY_CLIENT_IP, int(ttl or DEFAULT_AFFINITY_TIMEOUT_S)


def _endpoints(eps: Mapping[str, Any] | None, port_name: str) -> list[Endpoint]:
    """Ready addresses of the subset ports named like the service port (kube-proxy matches by name)."""
    out: list[Endpoint] = []
    seen: set[str] = set()
    for subset in (eps or {}).get("subsets") or []:
        for p in subset.get("ports") or []:
            if (p.get("name") or "") != port_name or p.get("protocol", "TCP") != "TCP":
                continue
            for addr in subset.get("addresses") or []:  # notReadyAddresses get no traffic
                ep = Endpoint(addr["ip"], int(p["port"]), addr.get("nodeName") or "")
                if ep.addr not in seen:
                    seen.add(ep.addr)
                    out.append(ep)
    return out
