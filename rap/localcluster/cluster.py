"""local-up, local-status and the cluster handle that tests and the benchmark use.

``up`` checks everything first (``preflight``), then runs local-up's actions
(rap/localcluster/steps.py) in order, saving state as it goes; any failure
tears down everything made so far, so nothing is left half-built.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from rap.config import DEFAULT_RTT_PORT, FIELDS
from rap.errors import UserError
from rap.localcluster import config as cfg
from rap.localcluster import credentials, metrics, netdelay, netns, objects, pki, procs, proxykinds, state, workload
from rap.localcluster.sh import ToolError, quiet, require_tool, run
from rap.localcluster.teardown import teardown
from rap.paths import build_out_dir
from rap.status import Status

RTT_PORT = DEFAULT_RTT_PORT  # what every node answers on and RAP probes (rap/schemas/rap-config.json)


class LocalClusterError(UserError, RuntimeError):
    """A local-up/down problem with one clear message naming the fix."""


def preflight(c: cfg.ClusterConfig) -> dict[str, Path]:
    """Everything local-up needs, checked before anything is created."""
    if os.geteuid() != 0:
        raise LocalClusterError("local-up needs root (namespaces, iptables, cgroups): run it as root or with sudo")
    for tool, pkg in (("ip", "iproute2"), ("iptables", "iptables"), ("etcd", "etcd-server")):
        try:
            require_tool(tool, pkg)
        except ToolError as exc:
            raise LocalClusterError(str(exc)) from None
    if not Path("/proc/self/ns/net").exists():
        raise LocalClusterError("this kernel has no network namespaces (CONFIG_NET_NS); local-up cannot run here")
    try:
        from rap.localcluster import cgroups
        cgroups.layout()
    except Exception as exc:  # noqa: BLE001 - CgroupError names the controller and mount
        raise LocalClusterError(str(exc)) from None
    out = build_out_dir()
    needed = {"kube-apiserver": (out / "kube-apiserver", "--apiserver")}
    build = proxykinds.kind(c.proxy).build
    if build is not None:
        needed["kube-proxy"] = (out / proxykinds.BINARIES[build], "--stock" if build == "stock" else "")
    for name, (path, flag) in needed.items():
        if not path.exists():
            command = " ".join(["invoke build-proxy", flag]).strip()
            raise LocalClusterError(f"{path} is not built yet: run `{command}`")
    found = {name: path for name, (path, _) in needed.items()}
    if build is not None:
        found["kube-proxy"] = _local_kube_proxy(build)
    if proxykinds.kind(c.proxy).balance is not None:
        from rap.localcluster import haproxy
        haproxy.preflight()
    return found


def _local_kube_proxy(kind: str) -> Path:
    from rap.localcluster import binaries

    path = binaries.kube_proxy(kind)
    if path.name != proxykinds.BINARIES[kind]:
        # The variant is built from the same rap_patch/ as build-proxy's binary: rebuilt
        # whenever its inputs change (a no-op by its stamp otherwise), never left stale.
        if not path.exists():
            Status("local-cluster").say(f"this machine does not let kube-proxy raise its open-file limit; "
                                        f"building {path.name} (see rap/localcluster/binaries.py)")
        binaries.build_local_variants((kind,))
    return path


def up(c: cfg.ClusterConfig, runtime: Path | None = None) -> state.ClusterState:
    runtime = runtime or state.runtime_dir()
    binaries = preflight(c)
    with state.locked(runtime):
        existing = state.load(runtime)
        if existing is not None or netns.existing_namespaces():
            raise LocalClusterError(
                f"a local cluster already exists (phase {existing.phase if existing else 'unknown'}, "
                f"{runtime}); run `invoke local-down` first")
        st = state.ClusterState(proxy=c.proxy, config=_config_dict(c),
                                nodes=[cfg.node_name(i) for i in c.node_indexes()])
        state.save(runtime, st)
        from rap.localcluster import steps  # (steps uses this module's node helpers)

        try:
            steps.run(steps.Context(runtime, c, binaries, st), Status("local-up"))
        except BaseException as exc:
            errors = Status("local-up", stderr=True)
            errors.say(f"failed: {exc}")
            errors.say("cleaning up what was made...")
            try:
                errors.say(f"the logs of the failed start are kept in {_keep_logs(runtime)}")
            except Exception as copy_exc:  # noqa: BLE001 - the teardown below must run whatever failed
                errors.say(f"could not keep the logs ({copy_exc}); they go with the runtime folder")
            finally:
                _roll_back(runtime, c)
            if isinstance(exc, Exception) and not isinstance(exc, LocalClusterError):
                raise LocalClusterError(f"local-up failed and was rolled back: {exc}") from exc
            raise
    return st


def _roll_back(runtime: Path, c: cfg.ClusterConfig) -> None:
    """What local-down does: the delayers' rules, then every process, namespace, link and cgroup."""
    try:
        netdelay.remove(delay_nodes(c.node_indexes()))
    finally:
        teardown(runtime, say=lambda s: None)


def describe(st: state.ClusterState) -> str:
    """local-up's closing summary: what runs, and where to go next."""
    return (f"local cluster up: {len(st.nodes)} nodes, proxy {st.proxy}, {len(st.pods)} pods, "
            f"Service default/web at {st.cluster_ip}:80\n"
            f"  kubeconfig: {st.kubeconfig}   status: invoke local-status   stop: invoke local-down")


def _keep_logs(runtime: Path) -> Path:
    """Copy the logs out of the runtime folder before teardown removes it."""
    import shutil

    dest = Path("/var/tmp") / f"{runtime.name}-failed-logs"
    shutil.rmtree(dest, ignore_errors=True)
    if (runtime / "logs").is_dir():
        shutil.copytree(runtime / "logs", dest)
    return dest


def _config_dict(c: cfg.ClusterConfig) -> dict:
    d = asdict(c)
    d["rtt_ms"] = {f"node-{a}:node-{b}": ms for (a, b), ms in c.rtt_ms.items()}
    return d


def pod_spec(c: cfg.ClusterConfig, pod: dict) -> objects.PodSpec:
    return objects.PodSpec(pod["name"], pod["node"], pod["ip"], c.pod_cpu, c.pod_mem_mib)


def delay_nodes(indexes) -> list[netdelay.NodeAddr]:
    return [netdelay.NodeAddr(i, cfg.node_netns(i), cfg.node_ip(i), cfg.pod_cidr(i)) for i in indexes]


def join_node_cgroup(i: int, pid: int) -> None:
    from rap.localcluster import cgroups
    cgroups.group(workload.node_cgroup(cfg.node_name(i))).add_pid(pid)


def start_metrics_process(runtime: Path, c: cfg.ClusterConfig, keys: pki.Pki,
                          module: str = "rap.localcluster.metrics", extra: tuple[str, ...] = ()) -> int:
    """The metrics server: its API for the aggregator's front-proxy client only; its fault switches on
    the root namespace's loopback (no node or pod namespace reaches it) for the control client only.
    ``module`` takes the same options plus ``extra`` (rap.scale.synthmetrics: synthetic usage too)."""
    return procs.start(runtime, "metrics-server", [
        sys.executable, "-m", module, *extra, "--registry", str(runtime / "metrics-registry.json"),
        "--listen", f"{cfg.bridge_ip()}:{c.metrics_port}", "--cert", str(keys.path("metrics.crt")),
        "--key", str(keys.path("metrics.key")), "--interval", str(c.metrics_interval_s), "--window", str(c.metrics_window_s),
        "--client-ca", str(keys.path("front-proxy-ca.crt")), "--client-names", pki.FRONT_PROXY_CN,
        "--control-listen", "127.0.0.1:0", "--control-ca", str(keys.path("ca.crt")),
        "--control-names", pki.CONTROL_CN, "--control-file", str(runtime / metrics.CONTROL_FILE),
    ])


def restart_metrics(runtime: Path | None = None) -> int:
    """Start the metrics server again (after a fault test stopped it)."""
    runtime, st, c = _live(runtime)
    procs.stop(runtime, "metrics-server")
    return start_metrics_process(runtime, c, pki.Pki(runtime / "pki"))


def write_metrics_registry(runtime: Path, st: state.ClusterState) -> None:
    nodes, pods = workload.metrics_registry(st.nodes, st.pods)
    metrics.write_registry(runtime / "metrics-registry.json", nodes, pods)


def proxy_argv(c: cfg.ClusterConfig, st: state.ClusterState, i: int, binary: Path | None,
               runtime: Path | None = None) -> list[str]:
    node = cfg.node_name(i)
    kind = proxykinds.kind(c.proxy)
    kubeconfig = credentials.proxy_kubeconfig(st, node)  # the node's own credential, not the admin's
    if kind.name == "python":
        return [sys.executable, "-m", "rap.pyproxy", "--kubeconfig", kubeconfig, "--node", node,
                "--bind-address", cfg.node_ip(i), "--policy", c.python_policy,
                "--rap-period-s", str(c.rap_period_s), "--rtt-port", str(RTT_PORT), "--monitor", c.rap_monitor,
                *(["--rap-mode", c.python_mode] if c.python_mode else [])]
    if kind.balance is not None:
        return [sys.executable, "-m", kind.module, "--kubeconfig", kubeconfig, "--node", node,
                "--cluster-ip", st.cluster_ip, "--port", str(objects.SERVICE_PORT), "--balance", kind.balance,
                "--cgroup", workload.node_cgroup(node),
                "--workdir", str((runtime or state.runtime_dir()) / f"haproxy-{i}")]
    gates = [f"--feature-gates={proxykinds.FEATURE_GATES}"] if kind.mode == "iptables" else []
    return [str(binary), f"--kubeconfig={kubeconfig}", f"--proxy-mode={kind.mode}", *gates,
            f"--hostname-override={node}", f"--bind-address={cfg.node_ip(i)}",
            f"--cluster-cidr={cfg.POD_NET}", "--healthz-bind-address=127.0.0.1:10256",
            "--metrics-bind-address=127.0.0.1:10249",
            # Node namespaces share the host's conntrack sysctls; leave them alone.
            "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0",
            "--conntrack-tcp-timeout-close-wait=0", "--oom-score-adj=0", "--v=2"]


def proxy_env(c: cfg.ClusterConfig, st: state.ClusterState, i: int) -> dict[str, str]:
    """RAP's environment for node i's proxy; the settings' names come from the config table."""
    settings = {"period_s": c.rap_period_s, "rtt_port": RTT_PORT, "monitor": c.rap_monitor}
    mode = proxykinds.kind(c.proxy).rap_mode
    if mode is not None:
        settings["mode"] = FIELDS["mode"].check(mode)
    # Where the proxy finds the API server (with the node's own credential, as kube-proxy's) and
    # which node it is: not settings, so not in the table.
    node = cfg.node_name(i)
    env = {"RAP_KUBECONFIG": credentials.proxy_kubeconfig(st, node), "RAP_NODE_NAME": node}
    return {**env, **{FIELDS[name].env: str(value) for name, value in settings.items()}}


def start_proxy(runtime: Path, c: cfg.ClusterConfig, st: state.ClusterState, i: int,
                binary: Path | None) -> int:
    env = proxy_env(c, st, i) if proxykinds.kind(c.proxy).rap_env else {}
    pid = procs.start(runtime, f"proxy-{i}", proxy_argv(c, st, i, binary, runtime), netns=cfg.node_netns(i),
                      env=env)
    join_node_cgroup(i, pid)
    return pid


def cleanup_proxy(kind_name: str, i: int) -> None:
    """Remove what a stopped proxy of ``kind_name`` left in node i's namespace."""
    kind = proxykinds.kind(kind_name)
    netns_name = cfg.node_netns(i)
    if kind.build is not None:
        # kube-proxy leaves its rules behind on exit: KUBE-PORTALS-* (userspace), KUBE-SERVICES,
        # KUBE-SVC-* and the rest (iptables, in both families: v1.21 runs dual-stack by default).
        # --cleanup removes those of every mode but keeps the chains a kubelet owns (KUBE-MARK-*)
        # and its canaries; no kubelet runs here, so the sweep removes what is left.
        quiet([str(_local_kube_proxy(kind.build)), "--cleanup"], netns=netns_name)
        for family in ("iptables", "ip6tables"):
            _sweep_kube_chains(family, netns_name)
    elif kind.balance is not None:
        from rap.localcluster import haproxy
        haproxy.cleanup(netns_name)


def kube_chain_removal(saved: str) -> str:
    """iptables-restore input that removes every KUBE-* chain of an ``iptables-save`` dump,
    and every rule of another chain that jumps to one; "" when there is none."""
    out, table, jumps, chains = [], None, [], []

    def close():
        if table and (jumps or chains):
            out.extend([f"*{table}", *jumps, *(f"-F {c}" for c in chains), *(f"-X {c}" for c in chains),
                        "COMMIT"])

    for line in saved.splitlines():
        if line.startswith("*"):
            table, jumps, chains = line[1:], [], []
        elif line.startswith(":KUBE-"):
            chains.append(line[1:].split()[0])
        elif line.startswith("-A ") and not line.split()[1].startswith("KUBE-") and " -j KUBE-" in line:
            jumps.append("-D" + line[2:])
        elif line == "COMMIT":
            close()
            table = None
    return "\n".join(out) + "\n" if out else ""


def _sweep_kube_chains(family: str, netns_name: str) -> None:
    saved = run([f"{family}-save"], netns=netns_name, check=False)
    removal = kube_chain_removal(saved)
    if not removal:
        return
    try:
        run([f"{family}-restore", "-w", "5", "--noflush"], netns=netns_name, input=removal)
    except ToolError as exc:
        raise LocalClusterError(f"could not remove kube-proxy's {family} rules in {netns_name}: {exc}; "
                                "run `invoke local-down` and start again") from None


def wait_service(runtime: Path, st: state.ClusterState, i: int, timeout: float = 60) -> None:
    """Until an HTTP request from node i's namespace to the ClusterIP is answered."""
    from rap.localcluster import traffic

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        pid = procs.recorded(runtime).get(f"proxy-{i}")
        if pid is not None and not procs.alive(pid):
            raise LocalClusterError(f"the proxy on node-{i} exited; see {procs.log_path(runtime, f'proxy-{i}')}")
        result = traffic.probe(cfg.node_netns(i), st.cluster_ip, objects.SERVICE_PORT)
        if result.ok:
            return
        last = result.error
        time.sleep(0.5)
    raise LocalClusterError(f"the Service {st.cluster_ip} does not answer from node-{i} after {timeout:.0f}s "
                            f"({last}); see {procs.log_path(runtime, f'proxy-{i}')}")


def down(runtime: Path | None = None) -> list[str]:
    runtime = runtime or state.runtime_dir()
    if os.geteuid() != 0:
        raise LocalClusterError("local-down needs root: run it as root or with sudo")
    with state.locked(runtime):
        st = state.load(runtime)
        c_nodes = len(st.nodes) if st else cfg.MAX_NODES
        removed = netdelay.remove(delay_nodes(range(1, c_nodes + 1)))
        return removed + teardown(runtime)


def _live(runtime: Path | None) -> tuple[Path, state.ClusterState, cfg.ClusterConfig]:
    runtime = runtime or state.runtime_dir()
    st = state.load(runtime)
    if st is None or st.phase != "up":
        raise LocalClusterError("no local cluster is up: start one with `invoke local-up`")
    conf = dict(st.config)
    conf["rtt_ms"] = {}  # pairs are already applied; only sizes and costs matter here
    conf["pods"] = {int(k): v for k, v in conf["pods"].items()}
    return runtime, st, cfg.ClusterConfig(**conf)


def add_pod(node_index: int, runtime: Path | None = None) -> dict:
    """Start one more backend on a node and add it to the Service's Endpoints."""
    runtime, st, c = _live(runtime)
    with state.change(runtime) as st:  # the number is reserved before the (slow) start
        used = [p["index"][1] for p in st.pods if p["index"][0] == node_index]
        k = max(used + [st.pod_serial.get(str(node_index), 0)]) + 1
        if k > cfg.MAX_PODS_PER_NODE:
            raise LocalClusterError(f"node-{node_index} has used all {cfg.MAX_PODS_PER_NODE} pod numbers; "
                                    "restart the cluster")
        st.pod_serial[str(node_index)] = k
    api = objects.api_client(st.kubeconfig)
    pod = workload.start_pod(runtime, c, api, node_index, k)
    with state.change(runtime) as st:
        st.pods.append(pod)
        write_metrics_registry(runtime, st)
        objects.set_endpoints(api, [pod_spec(c, p) for p in st.pods])
    return pod


def remove_pod(name: str, runtime: Path | None = None) -> None:
    """Take a backend out of the Endpoints, then stop it (the order Kubernetes uses)."""
    runtime, st, c = _live(runtime)
    api = objects.api_client(st.kubeconfig)
    with state.change(runtime) as st:
        pod = next((p for p in st.pods if p["name"] == name), None)
        if pod is None:
            raise LocalClusterError(f"no pod {name!r}; pods are {', '.join(p['name'] for p in st.pods)}")
        st.pods.remove(pod)
        objects.set_endpoints(api, [pod_spec(c, p) for p in st.pods])
        write_metrics_registry(runtime, st)
    workload.stop_pod(runtime, api, pod)


def check_delay(runtime: Path | None = None) -> dict[tuple[int, int], float]:
    """Raise LocalClusterError unless every RTT the cluster was started with is really applied
    (delayers alive, rules in place, connect times near the RTT); the measured connect times."""
    from rap.localcluster.netdelay.check import verify

    runtime, st, c = _live(runtime)
    rtts = {tuple(int(n.split("-")[1]) for n in pair.split(":")): ms
            for pair, ms in st.config.get("rtt_ms", {}).items()}
    try:
        return verify(rtts, delay_nodes(c.node_indexes()), RTT_PORT)
    except netdelay.NetDelayError as exc:
        raise LocalClusterError(f"the inter-node delay is not active: {exc}") from None


def current(runtime: Path | None = None) -> state.ClusterState:
    return _live(runtime)[1]


def switch_proxy(kind: str, policy: str = "rap", runtime: Path | None = None,
                 monitor: str | None = None, python_mode: str | None = None) -> state.ClusterState:
    """Replace the proxy on every node (e.g. stock -> rap) without rebuilding the cluster.

    The benchmark interleaves policies on one cluster shape this way, so every
    policy sees the same pods, addresses and delays. ``monitor`` (None: keep the
    cluster's) switches RAP's monitor too, starting or stopping rap.aggregator;
    ``python_mode`` is the Python proxy's RAP mode (None: the table's default).
    """
    runtime, st, c = _live(runtime)
    new = cfg.ClusterConfig(**{**asdict(c), "proxy": kind, "python_policy": policy,
                               "rap_monitor": monitor or c.rap_monitor, "python_mode": python_mode})
    binary = preflight(new).get("kube-proxy")
    old, names = st.proxy, [f"proxy-{i}" for i in c.node_indexes()]
    # Side by side keeps the benchmark's dozens of switches short: one SIGTERM to
    # every old proxy at once (the Python proxy takes ~0.4 s to exit), then each
    # node's cleanup in its own thread (kube-proxy --cleanup ~0.4 s); nodes are
    # independent namespaces.
    recorded = procs.recorded(runtime)
    procs.terminate([recorded[n] for n in names if n in recorded], 5.0)
    for name in names:
        procs.stop(runtime, name)  # already gone: this forgets its pid file
    _each_node(c, lambda i: cleanup_proxy(old, i))
    api = objects.api_client(st.kubeconfig)
    wanted = proxykinds.kind(kind).traffic_policy
    # From the Service itself, not the previous kind: a switch that failed half-way
    # must not leave Local (or Cluster) behind for the next one.
    if objects.traffic_policy(api) != wanted:
        objects.set_traffic_policy(api, wanted)
    with state.change(runtime) as st:
        st.proxy = kind
        st.config.update(proxy=kind, python_policy=policy, rap_monitor=new.rap_monitor, python_mode=python_mode)
    _match_aggregator(runtime, new)
    for i in c.node_indexes():
        start_proxy(runtime, new, st, i, binary)
    _each_node(c, lambda i: wait_service(runtime, st, i))
    return st


def _match_aggregator(runtime: Path, c: cfg.ClusterConfig) -> None:
    """rap.aggregator runs exactly when the cluster's monitor is "aggregator" (started before the proxies)."""
    from rap.aggregator import local as aggregator

    if c.rap_monitor == "aggregator" and not aggregator.running(runtime):
        aggregator.start(runtime)
    elif c.rap_monitor != "aggregator" and aggregator.running(runtime):
        aggregator.stop(runtime)


def _each_node(c: cfg.ClusterConfig, action) -> None:
    """``action(i)`` for every node, side by side; the first failure is raised."""
    with ThreadPoolExecutor(max_workers=c.nodes) as pool:
        list(pool.map(action, c.node_indexes()))
