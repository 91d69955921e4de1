"""The scale measurement: a local cluster, KWOK's simulated nodes and pods, real RAP kube-proxies, measured windows.

What runs (decided: a full ``local-up`` plus KWOK, rather than a second copy
of the control-plane code): ``rap.localcluster.cluster.up`` with
``rap_nodes`` real nodes (etcd, kube-apiserver, node namespaces, PKI, RBAC,
the metrics APIService, a real backend per node), kube-apiserver started with
an audit policy for RAP's clients (rap.scale.audit). Then, in order:

1. the real nodes' proxies are stopped (the baseline has no RAP process), the
   simulated address ranges are kept on the machine (rap.scale.fakecluster),
   the metrics server is replaced by the same server with synthetic usage
   for simulated names (rap.scale.synthmetrics), KWOK starts;
2. for each size N (ascending; the cluster grows): N simulated Nodes and their
   pods, until KWOK has them Ready and Running; the Services' Endpoints;
   the metrics registry;
3. a baseline window (no RAP process: KWOK's own traffic), then for each
   monitor a window with the RAP kube-proxies (``node``), or a window with
   the aggregator alone and one with the aggregator and the RAP kube-proxies
   for each aggregated variant (``aggregator``: each kube-proxy reads its
   bounded view; ``aggregator-all``: every record, RAP_VIEW_NODES=0; per-node
   figures are each over the aggregator-alone window);
4. everything is torn down (``cluster.down`` and the routes), also on failure.

Each window records kube-apiserver's /metrics at both ends (rap.scale.apimetrics),
the audit events of RAP's users, each RAP process's CPU and largest RSS
(rap.scale.procstat) and the bytes through its counting forwarder
(rap.scale.forwarder). Not here: the options (rap.scale.options), the report
(rap.scale.report).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from rap.errors import UserError
from rap.localcluster import cluster, credentials, objects, pki, procs, state, workload
from rap.localcluster import config as cfg
from rap.localcluster.metrics import write_registry
from rap.scale import apimetrics, audit, fakecluster, procstat
from rap.scale.forwarder import CountingForwarder
from rap.scale.options import ScaleOptions
from rap.status import Status

AGGREGATOR = "aggregator"  # its forwarder's and kubeconfig's key
AGGREGATOR_PROCESS = "rap-aggregator"  # its pid file and log, as rap.aggregator.local names them
AGGREGATOR_USER = "rap-aggregator"  # who it is to the API server (rap.aggregator.local)
AGGREGATOR_NAMESPACE = "kube-system"


class ScaleError(UserError, RuntimeError):
    """The scale run could not go on; the message names what failed and where its log is."""


@dataclass
class WindowResult:
    seconds: float
    api: apimetrics.Window
    audit: audit.Counts
    cpu_pct: dict[str, float] = field(default_factory=dict)  # process name -> % of one core
    rss_mb: dict[str, float] = field(default_factory=dict)  # process name -> largest VmRSS
    hwm_mb: dict[str, float] = field(default_factory=dict)  # process name -> VmHWM at the end
    wire_bytes: dict[str, int] = field(default_factory=dict)  # process name -> bytes both ways


def preflight(opts: ScaleOptions) -> Path:
    """Root, the builds the local cluster needs, no cluster already up; KWOK (built on demand)."""
    if os.geteuid() != 0:
        raise ScaleError("the scale run starts a local cluster and needs root: run it as root or with sudo")
    runtime = state.runtime_dir()
    from rap.localcluster import netns

    if state.load(runtime) is not None or netns.existing_namespaces():
        raise ScaleError(f"a local cluster already exists ({runtime}); the scale run starts its own: "
                         "wait for it or run `invoke local-down`")
    cluster.preflight(_cluster_config(opts, ()))
    from rap.build import kwok

    return kwok.build()


def _cluster_config(opts: ScaleOptions, apiserver_args) -> cfg.ClusterConfig:
    interval = min(opts.period_s, 5.0)
    return cfg.ClusterConfig(nodes=opts.rap_nodes, proxy="rap", default_pods=1, node_cpu=2.0,
                             rap_period_s=opts.period_s, metrics_interval_s=interval,
                             metrics_window_s=2 * interval, apiserver_args=tuple(apiserver_args))


class Harness:
    def __init__(self, opts: ScaleOptions, kwok_binary: Path, status: Status) -> None:
        self.opts, self.kwok_binary, self.status = opts, kwok_binary, status
        self.runtime = state.runtime_dir()
        self.shape = fakecluster.Shape(0, opts.pods_per_node, opts.services)
        self.started = False
        self.forwarders: dict[str, CountingForwarder] = {}
        self.kubeconfigs: dict[str, str] = {}

    # -- start and stop ----------------------------------------------------------------------------

    def start(self) -> None:
        self.runtime.mkdir(parents=True, exist_ok=True)
        policy = self.runtime / "scale-audit-policy.yaml"
        policy.write_text(audit.policy(users=(AGGREGATOR_USER,)))
        self.audit = audit.AuditLog(self.runtime / "logs" / "audit.log")
        self.c = _cluster_config(self.opts, audit.apiserver_flags(policy, self.audit.path))
        self.started = True  # from here on, stop() tears down whatever up made
        self.st = cluster.up(self.c, self.runtime)
        self.api = objects.api_client(self.st.kubeconfig)
        self.binary = cluster.preflight(self.c)["kube-proxy"]
        self.stock_binary = cluster.preflight(replace(self.c, proxy="stock"))["kube-proxy"]
        self.keys = pki.Pki(Path(self.st.kubeconfig).parent)
        self.status.say("stopping the real nodes' proxies: the baseline has no RAP process")
        self.stop_proxies()
        fakecluster.isolate([cfg.node_netns(i) for i in self.c.node_indexes()])
        self.status.say("metrics server: the local cluster's, with synthetic usage for simulated pods and nodes")
        procs.stop(self.runtime, "metrics-server")
        cluster.start_metrics_process(self.runtime, self.c, self.keys, module="rap.scale.synthmetrics",
                                      extra=("--seed", str(self.opts.seed)))
        for i in self.c.node_indexes():
            self._forwarded_kubeconfig(cfg.node_name(i), credentials.proxy_kubeconfig(self.st, cfg.node_name(i)))
        if AGGREGATOR in self.opts.monitors:
            self._aggregator_credential()
        self.status.say(f"kwok {self.kwok_binary.name}: simulates every Node labelled type=kwok")
        procs.start(self.runtime, "kwok", [
            str(self.kwok_binary), f"--kubeconfig={self.st.kubeconfig}",
            "--manage-nodes-with-label-selector=type=kwok",
            f"--cidr={fakecluster.POD_NET.network_address + 1}/{fakecluster.POD_NET.prefixlen}",
            "--node-lease-duration-seconds=40"])
        fakecluster.create_services(self.api, self.shape)

    def stop(self) -> None:
        for fwd in self.forwarders.values():
            fwd.stop()
        self.forwarders.clear()
        if not self.started:
            return
        removed = fakecluster.remove_isolation()
        removed += cluster.down(self.runtime)
        self.status.say(f"torn down: {len(removed)} items (processes, namespaces, links, routes, cgroups)")

    def _forwarded_kubeconfig(self, who: str, kubeconfig: str) -> str:
        """A copy of ``kubeconfig`` whose server is a counting forwarder of ``who``'s own."""
        fwd = CountingForwarder((cfg.bridge_ip(), 0), (cfg.bridge_ip(), self.c.api_port))
        self.forwarders[who] = fwd
        doc = yaml.safe_load(Path(kubeconfig).read_text())
        for entry in doc["clusters"]:
            entry["cluster"]["server"] = f"https://{cfg.bridge_ip()}:{fwd.port}"
        path = self.keys.dir / f"scale-{who}.kubeconfig"
        pki.write_private(path, yaml.safe_dump(doc).encode())
        self.kubeconfigs[who] = str(path)
        return str(path)

    def _aggregator_credential(self) -> None:
        """The aggregator's own credential and roles, as the local cluster gives them (rap.aggregator.local),
        and its kubeconfig through a counting forwarder."""
        from rap.aggregator import local

        path = local.credential(self.runtime, self.st.api_url)
        local.bind(self.api, AGGREGATOR_NAMESPACE)
        self._forwarded_kubeconfig(AGGREGATOR, str(path))

    # -- the simulated cluster ---------------------------------------------------------------------

    def kwok_alive(self) -> None:
        pid = procs.recorded(self.runtime).get("kwok")
        if pid is None or not procs.alive(pid):
            raise ScaleError(f"kwok exited; see {procs.log_path(self.runtime, 'kwok')}")

    def grow(self, n: int) -> None:
        first = self.shape.nodes + 1
        self.shape = fakecluster.Shape(n, self.opts.pods_per_node, self.opts.services)
        self.status.say(f"simulated nodes {first}..{n}: Nodes, then {self.opts.pods_per_node} pods each")
        fakecluster.create_nodes(self.api, range(first, n + 1))
        fakecluster.create_pods(self.api, self.shape, range(first, n + 1))
        pods = fakecluster.wait_running(self.api, self.shape, timeout=180 + 0.05 * n * self.opts.pods_per_node,
                                        alive=self.kwok_alive, say=self.status.say)
        fakecluster.set_endpoints(self.api, self.shape, pods)
        st = state.load(self.runtime)
        real_nodes, real_pods = workload.metrics_registry(st.nodes, st.pods)
        sim_nodes, sim_pods = fakecluster.registry_entries(self.shape, pods)
        write_registry(self.runtime / "metrics-registry.json", {**real_nodes, **sim_nodes}, {**real_pods, **sim_pods})

    # -- RAP processes -----------------------------------------------------------------------------

    def proxy_names(self) -> list[str]:
        return [f"proxy-{i}" for i in self.c.node_indexes()]

    def start_proxies(self, monitor: str) -> None:
        """kube-proxy on every real node: RAP's with ``monitor``, or the stock one (``stock``)."""
        stock = monitor == "stock"
        kind = "aggregator" if monitor.startswith("aggregator") else monitor
        c, binary = ((replace(self.c, proxy="stock"), self.stock_binary) if stock
                     else (replace(self.c, rap_monitor=kind), self.binary))
        view = {"RAP_VIEW_NODES": "0"} if monitor == "aggregator-all" else {}
        for i in self.c.node_indexes():
            node = cfg.node_name(i)  # RAP_KUBECONFIG: the monitor's connection, through its counting forwarder
            env = {} if stock else {**cluster.proxy_env(c, self.st, i), **view,
                                    "RAP_KUBECONFIG": self.kubeconfigs[node]}
            pid = procs.start(self.runtime, f"proxy-{i}", cluster.proxy_argv(c, self.st, i, binary, self.runtime),
                              netns=cfg.node_netns(i), env=env)
            cluster.join_node_cgroup(i, pid)
        for i in self.c.node_indexes():
            cluster.wait_service(self.runtime, self.st, i)

    def stop_proxies(self) -> None:
        for i in self.c.node_indexes():
            procs.stop(self.runtime, f"proxy-{i}")
            cluster.cleanup_proxy("rap", i)

    def start_aggregator(self) -> None:
        """``python3 -m rap.aggregator`` as the local cluster runs it, its kubeconfig through its forwarder."""
        from rap.aggregator import local
        from rap.config import RapConfig

        argv = local.argv(self.runtime, RapConfig(period_s=self.opts.period_s), AGGREGATOR_NAMESPACE)
        argv[argv.index("--kubeconfig") + 1] = self.kubeconfigs[AGGREGATOR]
        procs.start(self.runtime, AGGREGATOR_PROCESS, argv)

    def stop_aggregator(self) -> None:
        procs.stop(self.runtime, AGGREGATOR_PROCESS)

    def check_alive(self, names: list[str]) -> None:
        recorded = procs.recorded(self.runtime)
        for name in names:
            pid = recorded.get(name)
            if pid is None or not procs.alive(pid):
                raise ScaleError(f"{name} exited during the measurement; see {procs.log_path(self.runtime, name)}")

    # -- a measured window -------------------------------------------------------------------------

    def scrape(self) -> apimetrics.Scrape:
        t0 = time.monotonic()
        text = fakecluster.get_raw(self.api, "/metrics", timeout=60).decode()
        return apimetrics.Scrape((t0 + time.monotonic()) / 2, apimetrics.parse(text))

    def window(self, names: list[str], what: str) -> WindowResult:
        """One window of ``window_s`` with the processes ``names`` (recorded by procs) running."""
        self.status.say(f"  measuring {self.opts.window_s:g}s: {what}")
        self.check_alive(names)
        recorded = procs.recorded(self.runtime)
        pids = {n: recorded[n] for n in names}
        plane = {n: recorded[n] for n in ("kube-apiserver", "etcd", "kwok", "metrics-server") if n in recorded}
        watched = {**pids, **plane}
        wire0 = {n: self.forwarders[w].counts() for n, w in self._wire_names(names).items()}
        cpu0 = {n: procstat.cpu_seconds(p) for n, p in watched.items()}
        rss = procstat.RssWatch(list(pids.values()))
        mark = self.audit.mark()
        first = self.scrape()
        t0 = time.monotonic()
        time.sleep(self.opts.window_s)
        last = self.scrape()
        seconds = time.monotonic() - t0
        counts = self.audit.since(mark)
        rss_max = rss.stop()
        self.check_alive(names)
        cpu = {n: 100 * (procstat.cpu_seconds(p) - cpu0[n]) / seconds for n, p in watched.items()}
        wire = {}
        for n, w in self._wire_names(names).items():
            now = self.forwarders[w].counts()
            wire[n] = (now.to_server - wire0[n].to_server) + (now.to_client - wire0[n].to_client)
        return WindowResult(
            seconds, apimetrics.Window.between(first, last), counts, cpu,
            {n: rss_max[p] / 1024 for n, p in pids.items()},
            {n: (procstat.status_kb(p, "VmHWM") or 0) / 1024 for n, p in pids.items()}, wire)

    def _wire_names(self, names: list[str]) -> dict[str, str]:
        """Process name -> its forwarder's key."""
        out = {}
        for n in names:
            if n.startswith("proxy-"):
                out[n] = cfg.node_name(int(n.split("-")[1]))
            elif n == AGGREGATOR_PROCESS:
                out[n] = AGGREGATOR
        return out

    # -- one size ----------------------------------------------------------------------------------

    def measure(self, n: int) -> dict:
        o, k = self.opts, self.opts.rap_nodes
        self.status.say(f"{n} simulated nodes: settling {o.warmup_s:g}s after the growth, then the baseline")
        time.sleep(o.warmup_s)
        baseline = self.window([], "baseline (KWOK and the control plane, no RAP process)")
        result = {"simulated_nodes": n, "simulated_pods": n * o.pods_per_node,
                  "baseline": _plane(baseline), "monitors": {}}
        for monitor in (m for m in o.monitors if m in ("stock", "node")):
            self.start_proxies(monitor)
            time.sleep(o.warmup_s)
            w = self.window(self.proxy_names(), f"{k} stock kube-proxies, no RAP" if monitor == "stock"
                            else f"{k} RAP kube-proxies, per-node monitor")
            self.stop_proxies()
            result["monitors"][monitor] = per_node(w, baseline, self, self.proxy_names())
        aggregated = [m for m in o.monitors if m.startswith("aggregator")]
        if aggregated:  # one aggregator (and one window of it alone) for every aggregated variant
            self.start_aggregator()
            time.sleep(o.warmup_s)
            alone = self.window([AGGREGATOR_PROCESS], "the aggregator alone")
            for monitor in aggregated:
                self.start_proxies(monitor)
                time.sleep(o.warmup_s)
                both = self.window(self.proxy_names() + [AGGREGATOR_PROCESS],
                                   f"the aggregator and {k} RAP kube-proxies, RAP_MONITOR=aggregator"
                                   + (", RAP_VIEW_NODES=0" if monitor == "aggregator-all" else ""))
                self.stop_proxies()
                row = per_node(both, alone, self, self.proxy_names())
                row["aggregator"] = aggregator_cost(alone, baseline, self)
                result["monitors"][monitor] = row
            self.stop_aggregator()
        return result


def _plane(w: WindowResult) -> dict:
    return {"seconds": round(w.seconds, 2), "cpu_pct": {n: round(v, 2) for n, v in w.cpu_pct.items()},
            "requests_per_s": round(apimetrics.total(w.api.rates, apimetrics.REQUESTS, apimetrics.not_watch), 2)}


def _users(names: list[str]) -> list[str]:
    return [pki.proxy_user(cfg.node_name(int(n.split("-")[1]))) for n in names if n.startswith("proxy-")]


def per_node(w: WindowResult, baseline: WindowResult, h: Harness, names: list[str]) -> dict:
    """The figures per RAP node of window ``w`` over ``baseline``."""
    o, k = h.opts, len(names)
    cost = apimetrics.cost(w.api, baseline.api, k, o.period_s)
    users = _users(names)
    audited = sum(w.audit.requests[u] for u in users) / k / w.seconds
    by_request: dict[str, float] = {}
    for u in users:
        for what, c in w.audit.by_request.get(u, {}).items():
            by_request[what] = by_request.get(what, 0.0) + c / k / w.seconds * o.period_s
    cpu = [w.cpu_pct[n] for n in names]
    return {
        "requests_per_s": round(audited, 4), "requests_per_period": round(audited * o.period_s, 3),
        "requests_by_kind_per_period": {q: round(v, 3) for q, v in sorted(by_request.items())},
        "watches_started": sum(w.audit.watches[u] for u in users),
        "apiserver_metrics": {k_: (round(v, 4) if isinstance(v, float) else v) for k_, v in cost.as_dict().items()},
        "wire_bytes_per_period": round(sum(w.wire_bytes[n] for n in names) / k / w.seconds * o.period_s),
        "cpu_pct_mean": round(sum(cpu) / k, 3), "cpu_pct_max": round(max(cpu), 3),
        "rss_mb_max": round(max(w.rss_mb[n] for n in names), 1),
        "hwm_mb_max": round(max(w.hwm_mb[n] for n in names), 1),
        "control_plane_cpu_pct": {n: round(w.cpu_pct[n], 2) for n in ("kube-apiserver", "etcd") if n in w.cpu_pct},
        "window_s": round(w.seconds, 2),
    }


def aggregator_cost(alone: WindowResult, baseline: WindowResult, h: Harness) -> dict:
    o = h.opts
    cost = apimetrics.cost(alone.api, baseline.api, 1, o.period_s)
    user, name = AGGREGATOR_USER, AGGREGATOR_PROCESS
    reqs = alone.audit.requests[user] / alone.seconds
    return {"requests_per_s": round(reqs, 4), "requests_per_period": round(reqs * o.period_s, 3),
            "requests_by_kind_per_period": {q: round(c / alone.seconds * o.period_s, 3)
                                            for q, c in sorted(alone.audit.by_request.get(user, {}).items())},
            "apiserver_metrics": {k_: (round(v, 4) if isinstance(v, float) else v) for k_, v in cost.as_dict().items()},
            "wire_bytes_per_period": round(alone.wire_bytes[name] / alone.seconds * o.period_s),
            "cpu_pct": round(alone.cpu_pct[name], 3), "rss_mb_max": round(alone.rss_mb[name], 1)}
