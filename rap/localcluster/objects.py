"""The Kubernetes objects of the local cluster, created through the real API.

There is no kubelet or controller-manager here: the project runs the pods'
processes itself, so it writes what a kubelet and the endpoints controller
would: Node objects with capacity and addresses, Pod objects bound to a node
with their status (IP, Running, Ready), and the Service's Endpoints and its
EndpointSlice. Userspace kube-proxy and RAP read Endpoints; v1.21's iptables
proxier reads EndpointSlices (through discovery.k8s.io/v1beta1) while the beta
gate EndpointSliceProxying is on, as it is by default. Writing the slice keeps
the iptables peers on upstream's defaults instead of turning that gate off.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client, config as kubeconfig

from rap.quantity import memory_quantity, milli_quantity

NAMESPACE = "default"
SERVICE = "web"
SERVICE_PORT = 80
TARGET_PORT = 8080


@dataclass(frozen=True)
class PodSpec:
    name: str
    node: str
    ip: str
    cpu: float
    mem_mib: int


def api_client(kubeconfig_path: str) -> client.ApiClient:
    return kubeconfig.new_client_from_config(config_file=kubeconfig_path)


def create_node(api: client.ApiClient, name: str, ip: str, cpu: float, mem_mib: int) -> None:
    core = client.CoreV1Api(api)
    resources = {"cpu": milli_quantity(cpu), "memory": memory_quantity(mem_mib * 2**20), "pods": "110"}
    core.create_node(client.V1Node(metadata=client.V1ObjectMeta(
        name=name, labels={"kubernetes.io/hostname": name, "rap.local/cluster": "true"})))
    status = client.V1NodeStatus(
        capacity=resources, allocatable=resources,
        addresses=[client.V1NodeAddress(type="InternalIP", address=ip),
                   client.V1NodeAddress(type="Hostname", address=name)],
        conditions=[client.V1NodeCondition(type="Ready", status="True", reason="RapLocal",
                                           message="node namespace is up")])
    core.patch_node_status(name, {"status": api.sanitize_for_serialization(status)})


def create_pod(api: client.ApiClient, pod: PodSpec) -> None:
    core = client.CoreV1Api(api)
    limits = {"cpu": milli_quantity(pod.cpu), "memory": memory_quantity(pod.mem_mib * 2**20)}
    body = client.V1Pod(
        metadata=client.V1ObjectMeta(name=pod.name, labels={"app": SERVICE}),
        spec=client.V1PodSpec(node_name=pod.node, containers=[client.V1Container(
            name="backend", image="rap.local/backend",
            ports=[client.V1ContainerPort(container_port=TARGET_PORT)],
            resources=client.V1ResourceRequirements(limits=limits, requests=limits))]))
    core.create_namespaced_pod(NAMESPACE, body)
    status = {"phase": "Running", "podIP": pod.ip, "podIPs": [{"ip": pod.ip}],
              "conditions": [{"type": "Ready", "status": "True"}]}
    core.patch_namespaced_pod_status(pod.name, NAMESPACE, {"status": status})


def delete_pod(api: client.ApiClient, name: str) -> None:
    client.CoreV1Api(api).delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)


def create_service(api: client.ApiClient, name: str = SERVICE, namespace: str = NAMESPACE) -> str:
    """A selector-less ClusterIP Service; returns its ClusterIP."""
    core = client.CoreV1Api(api)
    svc = core.create_namespaced_service(namespace, client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(
            name="http", port=SERVICE_PORT, target_port=TARGET_PORT, protocol="TCP")])))
    return svc.spec.cluster_ip


def set_endpoints(api: client.ApiClient, pods: list[PodSpec], name: str = SERVICE,
                  namespace: str = NAMESPACE, port: int = TARGET_PORT) -> None:
    """Replace the Service's Endpoints with ``pods`` (what the endpoints controller does)."""
    core = client.CoreV1Api(api)
    addresses = [client.V1EndpointAddress(ip=p.ip, node_name=p.node, target_ref=client.V1ObjectReference(
        kind="Pod", name=p.name, namespace=namespace)) for p in pods]
    subsets = [client.V1EndpointSubset(addresses=addresses, ports=[client.CoreV1EndpointPort(
        name="http", port=port, protocol="TCP")])] if pods else []
    body = client.V1Endpoints(metadata=client.V1ObjectMeta(name=name), subsets=subsets)
    _replace_or_create(lambda: core.replace_namespaced_endpoints(name, namespace, body),
                       lambda: core.create_namespaced_endpoints(namespace, body))
    set_endpoint_slice(api, pods, name, namespace, port)


# The endpointslice controller's default --max-endpoints-per-slice; the API server
# refuses a slice of more than 1,000 (the scale runs' Services have thousands).
MAX_ENDPOINTS_PER_SLICE = 100
SLICE_MANAGED_BY = "endpointslice-controller.k8s.io"


def endpoint_slice(pods: list[PodSpec], service: str = SERVICE, namespace: str = NAMESPACE,
                   port: int = TARGET_PORT, name: str | None = None) -> client.V1EndpointSlice:
    """One EndpointSlice of the Service (discovery.k8s.io/v1, GA in v1.21), labelled as the
    endpointslice controller labels its own: kube-proxy finds a Service's slices by
    ``kubernetes.io/service-name``, and an endpoint is this node's when ``nodeName`` is."""
    return client.V1EndpointSlice(
        metadata=client.V1ObjectMeta(name=name or f"{service}-local", labels={
            "kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": SLICE_MANAGED_BY}),
        address_type="IPv4",
        # Only ``ready``: v1.21's API server drops ``serving`` and ``terminating`` while the
        # alpha gate EndpointSliceTerminatingCondition is off, and kube-proxy reads nil as true.
        endpoints=[client.V1Endpoint(
            addresses=[p.ip], node_name=p.node, conditions=client.V1EndpointConditions(ready=True),
            target_ref=client.V1ObjectReference(kind="Pod", name=p.name, namespace=namespace))
            for p in pods],
        ports=[client.DiscoveryV1EndpointPort(name="http", port=port, protocol="TCP")])


def endpoint_slices(pods: list[PodSpec], service: str = SERVICE, namespace: str = NAMESPACE,
                    port: int = TARGET_PORT) -> list[client.V1EndpointSlice]:
    """The Service's slices: ``<service>-local`` (empty when there are no pods), then
    ``<service>-local-2``... of at most MAX_ENDPOINTS_PER_SLICE endpoints each."""
    n = MAX_ENDPOINTS_PER_SLICE
    chunks = [pods[i:i + n] for i in range(0, len(pods), n)] or [[]]
    return [endpoint_slice(chunk, service, namespace, port, f"{service}-local" + (f"-{k + 1}" if k else ""))
            for k, chunk in enumerate(chunks)]


def set_endpoint_slice(api: client.ApiClient, pods: list[PodSpec], service: str = SERVICE,
                       namespace: str = NAMESPACE, port: int = TARGET_PORT) -> None:
    """Replace the Service's EndpointSlices with ``pods``; slices left over from a larger set are deleted."""
    discovery = client.DiscoveryV1Api(api)
    bodies = endpoint_slices(pods, service, namespace, port)
    for body in bodies:
        _replace_or_create(lambda: discovery.replace_namespaced_endpoint_slice(body.metadata.name, namespace, body),
                           lambda: discovery.create_namespaced_endpoint_slice(namespace, body))
    keep = {b.metadata.name for b in bodies}
    selector = f"kubernetes.io/service-name={service},endpointslice.kubernetes.io/managed-by={SLICE_MANAGED_BY}"
    for old in discovery.list_namespaced_endpoint_slice(namespace, label_selector=selector).items:
        if old.metadata.name not in keep:
            try:
                discovery.delete_namespaced_endpoint_slice(old.metadata.name, namespace)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise


def _replace_or_create(replace, create) -> None:
    """Replace an object; create it where it does not exist yet (404)."""
    try:
        replace()
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        create()


TRAFFIC_POLICIES = ("Cluster", "Local")


def traffic_policy(api: client.ApiClient, name: str = SERVICE, namespace: str = NAMESPACE) -> str:
    """The Service's internalTrafficPolicy as stored ("Cluster" when unset)."""
    svc = client.CoreV1Api(api).read_namespaced_service(name, namespace)
    return svc.spec.internal_traffic_policy or "Cluster"


def set_traffic_policy(api: client.ApiClient, policy: str, name: str = SERVICE,
                       namespace: str = NAMESPACE) -> None:
    """The Service's internalTrafficPolicy: "Cluster" (every endpoint) or "Local" (this node's only).

    Kept only while kube-apiserver runs with ServiceInternalTrafficPolicy=true (alpha in v1.21);
    without the gate the API server drops the field and the patch silently does nothing.
    """
    if policy not in TRAFFIC_POLICIES:
        raise ValueError(f"internalTrafficPolicy {policy!r}: want one of {', '.join(TRAFFIC_POLICIES)}")
    client.CoreV1Api(api).patch_namespaced_service(name, namespace, {"spec": {"internalTrafficPolicy": policy}})
