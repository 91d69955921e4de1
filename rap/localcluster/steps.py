"""local-up's actions, in the order they run: the table of contents of a local-up.

Like kind's create actions: ``ACTIONS`` is an ordered list of small named
steps, each a function of one shared ``Context`` that holds the inputs and
what the earlier steps made. ``run`` prints each through one status printer
(``[local-up] step 3/8 ...``) and runs it. Not here: the checks made before
anything is created (``cluster.preflight``), the lock, the state file's
creation and the teardown on a failure (``cluster.up``), and the node helpers
that the running cluster uses as well (``cluster.start_proxy`` and others).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kubernetes import client

from rap.localcluster import cluster
from rap.localcluster import config as cfg
from rap.localcluster import controlplane, credentials, metrics, netdelay, netns, objects, pki, procs, proxykinds, state, workload
from rap.status import Status


@dataclass
class Context:
    """What local-up's actions share: its inputs, and what the actions before made."""

    runtime: Path
    config: cfg.ClusterConfig
    binaries: dict[str, Path]
    state: state.ClusterState
    keys: pki.Pki | None = None
    api: Any = None  # the API client, once the API server answers


@dataclass(frozen=True)
class Action:
    """One step: ``title`` (it may name what earlier steps made) and ``run``."""

    title: Callable[[Context], str]
    run: Callable[[Context], None]


def certificates(ctx: Context) -> None:
    c, st = ctx.config, ctx.state
    api_url = controlplane.apiserver_url(c)
    ctx.keys = pki.create(ctx.runtime / "pki",
                          [cfg.bridge_ip(), "127.0.0.1", str(cfg.SERVICE_NET.network_address + 1)], api_url,
                          nodes=st.nodes)
    st.kubeconfig, st.api_url = str(ctx.keys.kubeconfig), api_url


def network(ctx: Context) -> None:
    netns.create_bridge()
    for i in ctx.config.node_indexes():
        netns.create_node(i, ctx.config.nodes)


def control_plane(ctx: Context) -> None:
    controlplane.start_etcd(ctx.runtime, ctx.config)
    controlplane.start_apiserver(ctx.runtime, ctx.config, ctx.binaries["kube-apiserver"], ctx.keys,
                                 extra_args=tuple(ctx.config.apiserver_args))
    ctx.api = objects.api_client(ctx.state.kubeconfig)
    credentials.bind_proxies(ctx.api)


def nodes(ctx: Context) -> None:
    c, runtime = ctx.config, ctx.runtime
    for i in c.node_indexes():
        objects.create_node(ctx.api, cfg.node_name(i), cfg.node_ip(i), c.node_cpu, c.node_mem_mib)
        workload.create_node_cgroup(c, i)
        pid = procs.start(runtime, f"nodeagent-{i}", [sys.executable, "-m", "rap.localcluster.nodeagent",
                                                      "--port", str(cluster.RTT_PORT)], netns=cfg.node_netns(i))
        cluster.join_node_cgroup(i, pid)
    if c.rtt_ms:
        netdelay.apply(c.rtt_ms, cluster.delay_nodes(c.node_indexes()), log_dir=runtime / "logs",
                       env={procs.MARK: str(runtime)})


def metrics_server(ctx: Context) -> None:
    c, runtime = ctx.config, ctx.runtime
    cluster.write_metrics_registry(runtime, state.ClusterState(nodes=[cfg.node_name(i) for i in c.node_indexes()]))
    cluster.start_metrics_process(runtime, c, ctx.keys)
    svc, eps = metrics.service_objects(cfg.bridge_ip(), c.metrics_port)
    core = client.CoreV1Api(ctx.api)
    core.create_namespaced_service("kube-system", svc)
    core.create_namespaced_endpoints("kube-system", eps)
    client.ApiregistrationV1Api(ctx.api).create_api_service(
        metrics.apiservice(ca_bundle=ctx.keys.path("ca.crt").read_bytes()))


def backend_pods(ctx: Context) -> None:
    c, st, runtime = ctx.config, ctx.state, ctx.runtime
    for i in c.node_indexes():
        for k in range(1, c.pods_on(i) + 1):
            st.pods.append(workload.start_pod(runtime, c, ctx.api, i, k))
            state.save(runtime, st)
    cluster.write_metrics_registry(runtime, st)
    st.cluster_ip = objects.create_service(ctx.api)
    policy = proxykinds.kind(c.proxy).traffic_policy
    if policy != "Cluster":
        objects.set_traffic_policy(ctx.api, policy)
    objects.set_endpoints(ctx.api, [cluster.pod_spec(c, p) for p in st.pods])


def proxies(ctx: Context) -> None:
    if ctx.config.rap_monitor == "aggregator":
        from rap.aggregator import local as aggregator

        aggregator.step(ctx)  # before the proxies, so that their first look finds its objects
    for i in ctx.config.node_indexes():
        cluster.start_proxy(ctx.runtime, ctx.config, ctx.state, i, ctx.binaries.get("kube-proxy"))


def service_answers(ctx: Context) -> None:
    for i in ctx.config.node_indexes():
        cluster.wait_service(ctx.runtime, ctx.state, i)
    ctx.state.phase = "up"
    state.save(ctx.runtime, ctx.state)


ACTIONS: tuple[Action, ...] = (
    Action(lambda ctx: "certificates and kubeconfig", certificates),
    Action(lambda ctx: f"network: bridge {cfg.BRIDGE} and {ctx.config.nodes} node namespaces", network),
    Action(lambda ctx: "etcd and kube-apiserver", control_plane),
    Action(lambda ctx: "nodes: Node objects, RTT listeners, cgroups"
           + (", inter-node delay" if ctx.config.rtt_ms else ""), nodes),
    Action(lambda ctx: "metrics server (metrics.k8s.io through the aggregation layer)", metrics_server),
    Action(lambda ctx: "backend pods: " + ", ".join(f"node-{i}={ctx.config.pods_on(i)}"
                                                    for i in ctx.config.node_indexes()), backend_pods),
    Action(lambda ctx: f"proxies: {ctx.config.proxy} on every node"
           + (", rap.aggregator" if ctx.config.rap_monitor == "aggregator" else ""), proxies),
    Action(lambda ctx: f"waiting until the Service {ctx.state.cluster_ip}:{objects.SERVICE_PORT} "
           "answers from every node", service_answers),
)


def run(ctx: Context, status: Status, actions: tuple[Action, ...] | None = None) -> None:
    """Every action (default ``ACTIONS``) in order, each announced as ``step i/n title``;
    the first failure stops the rest."""
    actions = ACTIONS if actions is None else actions
    for number, action in enumerate(actions, 1):
        status.step(number, len(actions), action.title(ctx))
        action.run(ctx)
