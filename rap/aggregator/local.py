"""The aggregator in the local cluster: a process in the root namespace, on a credential of its own.

``start(runtime)`` adds it to a running local cluster (rap.localcluster): a
client certificate for the user ``rap-aggregator`` signed by the cluster's CA
and its kubeconfig in the pki folder, the aggregator's roles (``rbac``) bound
to that user, the kube-proxies' Role of aggregated mode bound to their group
(``rap:node-proxies``), and the process itself, marked like every process of
the cluster so that ``local-down`` stops it. ``step(ctx)`` does the same as an
action of local-up (rap.localcluster.steps: a ``Context`` after the metrics
server). Nothing here runs unless called: local-up's default is unchanged.
Its settings are the cluster's RAP settings (``rap_period_s``; the thresholds'
defaults, which the local cluster's proxies run with).
"""

from __future__ import annotations

import sys
from pathlib import Path

from kubernetes import client

from rap.aggregator import rbac
from rap.aggregator.publish import DEFAULT_NAMESPACE, DEFAULT_STEP
from rap.config import RapConfig
from rap.errors import UserError
from rap.localcluster import objects, pki, procs, state

PROCESS = "rap-aggregator"  # its pid file and log (logs/rap-aggregator.log)
USER = "rap-aggregator"  # who it is to the API server
STEM = "aggregator"  # pki/aggregator.crt, .key, .kubeconfig


class LocalAggregatorError(UserError, RuntimeError):
    """The aggregator could not be added to the local cluster; the message says why and the fix."""


def kubeconfig(runtime: Path) -> Path:
    return pki.Pki(runtime / "pki").dir / f"{STEM}.kubeconfig"


def credential(runtime: Path, api_url: str) -> Path:
    """The aggregator's client certificate and kubeconfig (made once; kept while the cluster lives)."""
    path = kubeconfig(runtime)
    if not path.exists():
        pki.add_client_credential(pki.Pki(runtime / "pki"), STEM, USER, api_url)
    return path


def _apply(api: client.ApiClient, obj: dict) -> None:
    """Create ``obj`` (an RBAC object), or replace it when it exists (a second start)."""
    r = client.RbacAuthorizationV1Api(api)
    kind, name, ns = obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace")
    create = {"ClusterRole": lambda: r.create_cluster_role(obj),
              "ClusterRoleBinding": lambda: r.create_cluster_role_binding(obj),
              "Role": lambda: r.create_namespaced_role(ns, obj),
              "RoleBinding": lambda: r.create_namespaced_role_binding(ns, obj)}[kind]
    replace = {"ClusterRole": lambda: r.replace_cluster_role(name, obj),
               "ClusterRoleBinding": lambda: r.replace_cluster_role_binding(name, obj),
               "Role": lambda: r.replace_namespaced_role(name, ns, obj),
               "RoleBinding": lambda: r.replace_namespaced_role_binding(name, ns, obj)}[kind]
    try:
        create()
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        replace()


def bind(api: client.ApiClient, namespace: str = DEFAULT_NAMESPACE) -> None:
    """The aggregator's roles bound to its user, the aggregated kube-proxies' Role to the proxies' group."""
    for obj in (*rbac.aggregator_rbac([rbac.user_subject(USER)], namespace),
                *rbac.proxy_rbac([rbac.group_subject(pki.PROXY_GROUP)], namespace)):
        _apply(api, obj)


def argv(runtime: Path, config: RapConfig, namespace: str = DEFAULT_NAMESPACE,
         publish_step: float = DEFAULT_STEP) -> list[str]:
    command = rbac.command(config, namespace, publish_step, kubeconfig=str(kubeconfig(runtime)))
    return [sys.executable, *command[1:]]  # this interpreter, which has the rap package


def launch(runtime: Path, api: client.ApiClient, api_url: str, config: RapConfig,
           namespace: str = DEFAULT_NAMESPACE, publish_step: float = DEFAULT_STEP) -> int:
    """Credential, RBAC, then the process (its pid)."""
    credential(runtime, api_url)
    bind(api, namespace)
    return procs.start(runtime, PROCESS, argv(runtime, config, namespace, publish_step))


def start(runtime: Path | None = None, *, period_s: float | None = None, namespace: str = DEFAULT_NAMESPACE,
          publish_step: float = DEFAULT_STEP) -> int:
    """Add the aggregator to the running local cluster (period: the cluster's ``rap_period_s``); its pid."""
    runtime = runtime or state.runtime_dir()
    st = state.load(runtime)
    if st is None or st.phase != "up":
        raise LocalAggregatorError(f"no local cluster is up in {runtime}: start one with `invoke local-up`")
    if running(runtime):
        raise LocalAggregatorError(f"{PROCESS} already runs in the local cluster (pid {running(runtime)}); "
                                   "stop it first (rap.aggregator.local.stop)")
    config = RapConfig(period_s=period_s or float(st.config.get("rap_period_s", 1.0)))
    return launch(runtime, objects.api_client(st.kubeconfig), st.api_url, config, namespace, publish_step)


def step(ctx) -> None:
    """local-up's action (a rap.localcluster.steps.Context, once the metrics server is up)."""
    launch(ctx.runtime, ctx.api, ctx.state.api_url, RapConfig(period_s=ctx.config.rap_period_s))


def running(runtime: Path | None = None) -> int | None:
    """The aggregator's pid while it runs, else None."""
    pid = procs.recorded(runtime or state.runtime_dir()).get(PROCESS)
    return pid if pid is not None and procs.alive(pid) else None


def stop(runtime: Path | None = None) -> None:
    """SIGTERM to the aggregator (SIGKILL if it outlives 5 s); nothing if it does not run."""
    procs.stop(runtime or state.runtime_dir(), PROCESS)
