"""Who each proxy is to the API server, and what RBAC lets it do: least privilege, as on a real cluster.

Every node's proxy (kube-proxy with RAP's monitor in it, or the Python proxy,
or the HAProxy agent) authenticates with its own client certificate
(``pki.proxy_user(node)``, in group ``pki.PROXY_GROUP``), never the admin's.
The group is bound to kube-proxy's own ClusterRole ``system:node-proxier``
(from the API server's bootstrap policy: read Services, Endpoints,
EndpointSlices, Nodes; write Events) and to RAP's ClusterRole from
``rap.deploy.spec.cluster_role`` (read Pods, Nodes and metrics.k8s.io), the
role the deployed DaemonSet gets. Nothing else: no Secrets, no writes to
Services. Not here: making the certificates (``pki``).
"""

from __future__ import annotations

from pathlib import Path

from kubernetes import client

from rap.deploy.spec import cluster_role
from rap.localcluster import pki
from rap.localcluster.state import ClusterState

PROXIER_ROLE = "system:node-proxier"
RBAC_GROUP = "rbac.authorization.k8s.io"


def proxy_kubeconfig(st: ClusterState, node: str) -> str:
    """``node``'s proxy kubeconfig: in the pki folder, beside the admin kubeconfig of ``st``."""
    return str(pki.Pki(Path(st.kubeconfig).parent).proxy_kubeconfig(node))


def binding(role: str) -> dict:
    """A ClusterRoleBinding of ``role`` to every node's proxy."""
    return {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": f"rap-local:proxies:{role}"},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": pki.PROXY_GROUP}]}


def proxy_rbac() -> tuple[dict, list[dict]]:
    """RAP's ClusterRole, and the bindings that give the proxies it and ``system:node-proxier``."""
    rap_role = cluster_role()
    return rap_role, [binding(PROXIER_ROLE), binding(rap_role["metadata"]["name"])]


def bind_proxies(api: client.ApiClient) -> None:
    """Create RAP's ClusterRole and the proxies' bindings (``proxy_rbac``) through the API."""
    rbac = client.RbacAuthorizationV1Api(api)
    role, bindings = proxy_rbac()
    rbac.create_cluster_role(role)
    for b in bindings:
        rbac.create_cluster_role_binding(b)
