"""Invoke tasks for the RAP toolkit.

Each task parses its options and calls one function of the ``rap`` package;
the logic lives there, not here. ``invoke --list`` shows them all and
``invoke --help TASK`` explains each option.
"""

import inspect

from invoke import task
from invoke.exceptions import Exit

# RAP's options and their help come from rap/schemas/rap-config.json; this
# module imports nothing heavy, so `invoke --list` stays fast.
from rap.deploy import options as deploy_options



def _one_line_errors(errors: tuple, fn, *args, **kwargs):
    """Run ``fn``; an expected error (one of ``errors``) becomes one message and exit 1.

    Each area's wrapper below imports its own error types lazily, so
    `invoke --list` does not load the whole package.
    """
    try:
        return fn(*args, **kwargs)
    except errors as exc:
        raise Exit(f"error: {exc}", code=1) from None

# ---- the reference balancer and its conformance vectors ----

@task(help={"directory": "folder of *.json vectors (default tests/vectors)"})
def vectors(c, directory=None):
    """Run every conformance vector against the Python reference balancer."""
    from pathlib import Path

    from rap.paths import VECTORS_DIR
    from rap.vectors import VectorError, run_all

    try:
        report = run_all(Path(directory) if directory else VECTORS_DIR)
    except VectorError as exc:
        raise Exit(f"error: {exc}", code=2) from None
    for mismatch in report.mismatches:
        print(f"MISMATCH {mismatch}")
    print(f"{report.vectors} vectors, {report.requests} requests, {len(report.mismatches)} mismatches")
    if not report.ok:
        raise Exit(code=1)


@task(help={"rounds": "minimum benchmark rounds per policy and size (default 20)"})
def bench_policies(c, rounds=20):
    """Decisions per second of round robin, RAP and least-request at 3, 30, 300 endpoints."""
    from rap import policybench

    print("benchmarking policies (pytest-benchmark, one process, side by side)...")
    text, ok = policybench.report(policybench.run(int(rounds)))
    print(text)
    if not ok:
        raise Exit(code=1)


@task(help={"rounds": "alternating stock/RAP runs; medians are compared (default 5)"})
def bench_proxy(c, rounds=5):
    """Go benchmark of NextEndpoint: rap.go against kube-proxy's stock round robin, side by side."""
    from rap.build import gobench

    text, ok = gobench.report(_build_call(gobench.run, int(rounds)))
    print(text)
    if not ok:
        raise Exit(code=1)


# ---- the whole test suite ----

@task(help={"fast": "only the fast unit tests (what plain `pytest` runs)"})
def test(c, fast=False):
    """Run the whole test suite: unit, property, vector, e2e and slow tests (as CI does)."""
    markers = "not e2e and not slow" if fast else ""
    c.run(f"python3 -m pytest -m '{markers}'", pty=False)


# ---- the local cluster: etcd, kube-apiserver, node namespaces, real kube-proxy (rap.localcluster) ----

def _local_call(fn, *args, **kwargs):
    """Run a rap.localcluster step; its errors become one message and exit 1."""
    from rap.localcluster.cluster import LocalClusterError
    from rap.localcluster.config import ClusterConfigError
    from rap.localcluster.netdelay import RttOptionError

    return _one_line_errors((LocalClusterError, ClusterConfigError, RttOptionError, RuntimeError),
                            fn, *args, **kwargs)


@task(
    help={
        "nodes": "number of nodes, 1..9 (default 3)",
        "proxy": "rap (RAP kube-proxy), stock (upstream kube-proxy) or python (the Python reference proxy)",
        "policy": "with --proxy python: rap, round-robin or least-request (default rap)",
        "pods": "backend pods per node: one COUNT for every node, or node-1=3,node-2=1 (default 2 each)",
        "pod_cpu": "CPU limit of each backend pod, in cores (default 0.25)",
        "cpu_ms": "CPU milliseconds each request costs a backend (default 2)",
        "rtt": "inter-node round-trip time, repeatable: node-2=40ms (node-1<->node-2), node-1:node-3=80ms, *=10ms",
        "period": "RAP's monitor period in seconds (default 1 here; 5 on a real cluster)",
    },
    iterable=["rtt"],
    auto_shortflags=False,
)
def local_up(c, nodes=3, proxy="rap", policy="rap", pods=None, pod_cpu="0.25", cpu_ms="2", rtt=None, period="1"):
    """Start a real multi-node cluster on this machine (root; no Docker): etcd, kube-apiserver, kube-proxy."""
    from rap.localcluster import cluster, config, netdelay

    def run():
        per_node, default = config.parse_pods(pods)
        cfg = config.ClusterConfig(
            nodes=int(nodes), proxy=proxy, python_policy=policy, pods=per_node,
            default_pods=default if default is not None else 2,
            pod_cpu=config.number("--pod-cpu", pod_cpu), cpu_ms=config.number("--cpu-ms", cpu_ms),
            rtt_ms=netdelay.parse_rtt(rtt or [], nodes=int(nodes)),
            rap_period_s=config.number("--period", period))
        st = cluster.up(cfg)
        print(f"local cluster up: {len(st.nodes)} nodes, proxy {st.proxy}, {len(st.pods)} pods, "
              f"Service default/web at {st.cluster_ip}:80")
        print(f"  kubeconfig: {st.kubeconfig}   status: invoke local-status   stop: invoke local-down")

    _local_call(run)


@task
def local_down(c):
    """Remove every namespace, link, iptables rule, cgroup and process that local-up made."""
    from rap.localcluster import cluster

    removed = _local_call(cluster.down)
    print(f"local cluster down ({len(removed)} things removed)")


@task
def local_status(c):
    """Show what the local cluster runs, where, and whether it is healthy."""
    from rap.localcluster import status

    text, healthy = status.report()
    print(text)
    if not healthy:
        raise Exit(code=1)


# ---- cloud: GCP VMs with Terraform, kubeadm 1.21 through Ansible (rap.cloud) ----

def _cloud_call(fn, *args, **kwargs):
    """Run a rap.cloud step; its CloudError becomes one message and exit 1."""
    from rap.cloud import CloudError

    return _one_line_errors((CloudError,), fn, *args, **kwargs)


@task(
    help={
        "project": "GCP project ID to create the cluster in (required)",
        "operator_cidr": "the only source range allowed to SSH in, e.g. 203.0.113.7/32 (required)",
        "workers": "number of worker VMs, at least 2 (default 2)",
        "zones": "comma-separated zones the workers are spread over in turn (default europe-west1-b,europe-west4-a)",
        "control_plane_zone": "zone of the control-plane VM (default europe-west1-b)",
        "machine_type": "machine type of every VM (default e2-standard-2)",
        "name": "cluster name, the prefix of every resource and the state directory (default rap)",
        "ssh_public_key": "SSH public key installed on the VMs; its private half must sit beside it (default ~/.ssh/id_ed25519.pub)",
        "ssh_user": "login user created with that key (default rap)",
        "plan": "only show what would be created; create nothing",
    },
    auto_shortflags=False,  # long options only: -h would otherwise mean --ssh-user
)
def up(c, project=None, operator_cidr=None, workers=2, zones=None, control_plane_zone="europe-west1-b",
       machine_type="e2-standard-2", name="rap", ssh_public_key="~/.ssh/id_ed25519.pub", ssh_user="rap",
       plan=False):
    """Create GCP VMs with Terraform and make them a kubeadm 1.21 cluster (userspace kube-proxy)."""
    from rap.cloud.cluster import up as cloud_up
    from rap.cloud.config import CloudConfig, parse_zones

    cfg = CloudConfig(project=project, operator_cidr=operator_cidr, workers=int(workers),
                      worker_zones=parse_zones(zones), control_plane_zone=control_plane_zone,
                      machine_type=machine_type, name=name, ssh_public_key=ssh_public_key, ssh_user=ssh_user)
    _cloud_call(cloud_up, cfg, plan_only=plan)


@task(
    help={
        "name": "name of the cluster `invoke up` made (default rap)",
        "yes": "destroy without asking for confirmation",
    }
)
def down(c, name="rap", yes=False):
    """Destroy every resource `invoke up` made for the cluster, after a confirmation."""
    from rap.cloud.cluster import down as cloud_down

    _cloud_call(cloud_down, name=name, yes=yes)


@task(name="install-terraform", help={"force": "build even when a usable terraform (>= 1.5, < 2) is on PATH"})
def install_terraform(c, force=False):
    """Build Terraform 1.5.7 with Go into the project cache (skipped when built, or one is on PATH)."""
    from rap.cloud.terraform import install_terraform as build

    print(_cloud_call(build, force=force))


# ---- kube-proxy v1.21 with RAP swapped in (rap.build) ----

def _build_call(fn, *args, **kwargs):
    """Run a rap.build step; its UserError (BuildError, ImageError, ...) becomes one message and its exit code."""
    from rap.errors import UserError

    try:
        return fn(*args, **kwargs)
    except UserError as exc:
        raise Exit(f"error: {exc}", code=exc.exit_code) from None


@task(
    name="build-proxy",
    help={
        "k8s_src": "use this Kubernetes release-1.21 checkout instead of fetching v1.21.14 through the Go module proxy",
        "stock": "also build kube-proxy-stock (upstream round robin, no swap) for comparison",
        "test": "run upstream's pkg/proxy/userspace tests and rap_patch/*_test.go on the swapped tree (default on; --no-test skips)",
        "apiserver": "also build kube-apiserver from the same source (the local cluster needs it)",
        "image": "then build build/Dockerfile around the RAP kube-proxy as this NAME:TAG (needs a Docker engine)",
        "push": "push the --image after building it",
        "force": "rebuild even when the binaries' inputs are unchanged",
    },
)
def build_proxy(c, k8s_src=None, stock=False, test=True, apiserver=False, image=None, push=False, force=False):
    """Build kube-proxy v1.21.14 with rap_patch/rap.go in place of roundrobin.go, into build/out/."""
    from rap.build import workflow

    opts = _build_call(workflow.parse_options, k8s_src, stock=stock, test=test, apiserver=apiserver,
                       image_ref=image, push=push, force=force)
    print(workflow.summary(_build_call(workflow.build_proxy, opts)))


@task(
    name="test-proxy",
    help={
        "k8s_src": "use this Kubernetes release-1.21 checkout instead of fetching v1.21.14 through the Go module proxy",
        "verbose": "go test -v: list every test",
        "run": "only tests matching this regexp (go test -run)",
        "upstream_only": "leave out rap_patch/*_test.go (e.g. with $RAP_GO_SOURCE pointing at another balancer)",
    },
)
def test_proxy(c, k8s_src=None, verbose=False, run=None, upstream_only=False):
    """Run upstream's pkg/proxy/userspace tests and rap_patch/*_test.go with rap.go swapped in."""
    from rap.build import gotest

    _build_call(gotest.test_proxy, k8s_src, verbose=verbose, run=run, project_tests=not upstream_only)


# ---- deploy the RAP kube-proxy into a kubeadm cluster, and back (rap.deploy) ----

def _deploy_call(fn, *args, **kwargs):
    """Run a rap.deploy step; its DeployError becomes one message and exit 1."""
    from rap.deploy import DeployError

    return _one_line_errors((DeployError,), fn, *args, **kwargs)


_KUBECONFIG_HELP = "kubeconfig of the cluster (default: $KUBECONFIG, else ~/.kube/config)"


def _with_options(names):
    """Add one keyword parameter (default None) per name to a task that takes them as **kwargs.

    invoke reads a task's options from its signature; this lets that list come
    from a table (RAP's, in rap/schemas/rap-config.json) instead of a copy here.
    """
    def add(body):
        sig = inspect.signature(body)
        kept = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
        added = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None) for n in names]
        body.__signature__ = sig.replace(parameters=kept + added)
        return body
    return add


_RAP_OPTION_HELP = deploy_options.option_help()  # RAP_<NAME>: meaning; range (default), per table row


@task(
    help={
        "image": "the RAP kube-proxy image, NAME:TAG, pullable by every node (required; see build-proxy --image)",
        "kubeconfig": _KUBECONFIG_HELP,
        "timeout": "seconds to wait for every node to run it before rolling back by itself (default 300)",
        **_RAP_OPTION_HELP,
    },
    auto_shortflags=False,
)
@_with_options(_RAP_OPTION_HELP)
def deploy(c, image=None, kubeconfig=None, timeout=None, **rap):
    """Switch kube-system/kube-proxy to the RAP image in userspace mode; roll back by itself if not ready."""
    from rap import deploy as rap_deploy

    opts = _deploy_call(rap_deploy.parse_options, image, timeout=timeout, **rap)
    _deploy_call(rap_deploy.deploy, opts, kubeconfig)


@task(
    help={
        "kubeconfig": _KUBECONFIG_HELP,
        "timeout": "seconds to wait for every node to run the restored kube-proxy (default 300)",
    },
    auto_shortflags=False,
)
def rollback(c, kubeconfig=None, timeout=None):
    """Put back the kube-proxy image, args, env and ConfigMap that `invoke deploy` recorded; remove RAP's RBAC."""
    from rap import deploy as rap_deploy

    timeout_s = _deploy_call(rap_deploy.parse_timeout, timeout)
    _deploy_call(rap_deploy.rollback, kubeconfig, timeout_s)


# ---- the cluster benchmark: RAP against round robin and least-request (rap.bench) ----

@task(
    help={
        "quick": "a short run (1 repetition, short steps, two rates; under 3 minutes), as CI and the README use",
        "scenarios": "comma-separated subset of balanced,geo,overload,rates (default all)",
        "reps": "repetitions of each policy in each scenario, interleaved (default 3; 1 with --quick)",
        "duration": "seconds of load per step, overriding each scenario's own (at most 120)",
        "out": "results folder (default results/<timestamp>); must be new or empty",
        "target": "local (default: the local cluster, one per scenario shape) or kubeconfig=PATH (a real cluster)",
        "image": "with kubeconfig=PATH: image that runs the backend and load generator (default python:3.11-slim)",
        "rap_image": "with kubeconfig=PATH: the RAP kube-proxy image to switch the kube-proxy DaemonSet to",
    },
    auto_shortflags=False,
)
def bench(c, quick=False, scenarios=None, reps=None, duration=None, out=None, target="local", image=None,
          rap_image=None):
    """RAP against round robin and least-request on the paper's scenarios: tables, ratios and plots."""
    from rap.bench import BenchError, Options, bench as run_bench
    from rap.bench.scenarios import ScenarioError, parse_names

    def number(option, text, kind):
        try:
            return kind(text)
        except (TypeError, ValueError):
            raise Exit(f"error: --{option}: {text!r} is not a {'whole ' if kind is int else ''}number", code=2) from None

    try:
        opts = Options(scenarios=parse_names(scenarios), quick=quick, out=out, target=target,
                       reps=number("reps", reps, int) if reps is not None else (1 if quick else 3),
                       duration=number("duration", duration, float) if duration is not None else None)
        run_bench(opts, image=image, rap_image=rap_image)
    except (ScenarioError, BenchError) as exc:
        raise Exit(f"error: {exc}", code=2) from None
    except KeyboardInterrupt:
        raise Exit("interrupted (the cluster was torn down; partial results were written)", code=130) from None
