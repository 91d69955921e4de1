"""Invoke tasks for the RAP toolkit.

Each task parses its options and calls one function of the ``rap`` package;
the logic lives there, not here. ``invoke --list`` shows them all and
``invoke --help TASK`` explains each option.
"""

import inspect

from invoke import task
from invoke.exceptions import Exit

# Option help is built by each area from its own defaults; these modules are
# small and import nothing heavy, so `invoke --list` stays fast.
from rap.bench import options as bench_options
from rap.build import options as build_options
from rap.cloud import config as cloud_config
from rap.deploy import options as deploy_options
from rap.localcluster import options as local_options


def _run(fn, *args, interrupted: str = "interrupted", **kwargs):
    """Run one package function; any expected error (rap.errors.UserError) becomes one line and its exit code."""
    from rap.errors import UserError

    try:
        return fn(*args, **kwargs)
    except UserError as exc:
        raise Exit(f"error: {exc}", code=exc.exit_code) from None
    except KeyboardInterrupt:
        raise Exit(interrupted, code=130) from None


# ---- the reference balancer and its conformance vectors ----

@task(help={"directory": "folder of *.json vectors (default tests/vectors)"})
def vectors(c, directory=None):
    """Run every conformance vector against the Python reference balancer."""
    from rap import vectors as rap_vectors

    text, ok = _run(rap_vectors.run_and_report, directory)
    print(text)
    if not ok:
        raise Exit(code=1)


@task(help={"rounds": "minimum benchmark rounds per policy and size (default 20)"})
def bench_policies(c, rounds=None):
    """Decisions per second of round robin, RAP and least-request at 3, 30, 300 endpoints."""
    from rap import policybench

    print("benchmarking policies (pytest-benchmark, one process, side by side)...")
    text, ok = policybench.report(_run(policybench.run, rounds))
    print(text)
    if not ok:
        raise Exit(code=1)


@task(help={"rounds": "alternating stock/RAP runs; medians are compared (default 5)"})
def bench_proxy(c, rounds=None):
    """Go benchmark of NextEndpoint: rap.go against kube-proxy's stock round robin, side by side."""
    from rap.build import gobench

    text, ok = gobench.report(_run(gobench.run, rounds))
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

@task(help=local_options.option_help(), iterable=["rtt"], auto_shortflags=False)
def local_up(c, nodes=None, proxy=None, policy=None, pods=None, pod_cpu=None, cpu_ms=None, rtt=None, period=None,
             monitor=None):
    """Start a real multi-node cluster on this machine (root; no Docker): etcd, kube-apiserver, kube-proxy."""
    cfg = _run(local_options.parse_options, nodes=nodes, proxy=proxy, policy=policy, pods=pods,
               pod_cpu=pod_cpu, cpu_ms=cpu_ms, rtt=rtt, period=period, monitor=monitor)
    from rap.localcluster import cluster

    print(cluster.describe(_run(cluster.up, cfg)))


@task
def local_down(c):
    """Remove every namespace, link, iptables rule, cgroup and process that local-up made."""
    from rap.localcluster import cluster

    removed = _run(cluster.down)
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

@task(help=cloud_config.option_help(), auto_shortflags=False)  # long options only: -h would mean --ssh-user
def up(c, project=None, operator_cidr=None, workers=None, zones=None, control_plane_zone=None,
       machine_type=None, name=None, ssh_public_key=None, ssh_user=None, plan=False):
    """Create GCP VMs with Terraform and make them a kubeadm 1.21 cluster (userspace kube-proxy)."""
    from rap.cloud.cluster import up as cloud_up

    cfg = _run(cloud_config.parse_options, project=project, operator_cidr=operator_cidr, workers=workers,
               zones=zones, control_plane_zone=control_plane_zone, machine_type=machine_type, name=name,
               ssh_public_key=ssh_public_key, ssh_user=ssh_user)
    _run(cloud_up, cfg, plan_only=plan)


@task(
    help={
        "name": "name of the cluster `invoke up` made (default rap)",
        "yes": "destroy without asking for confirmation",
    }
)
def down(c, name="rap", yes=False):
    """Destroy every resource `invoke up` made for the cluster, after a confirmation."""
    from rap.cloud.cluster import down as cloud_down

    _run(cloud_down, name=name, yes=yes)


@task(name="install-terraform", help={"force": "build even when a usable terraform (>= 1.5, < 2) is on PATH"})
def install_terraform(c, force=False):
    """Build Terraform 1.5.7 with Go into the project cache (skipped when built, or one is on PATH)."""
    from rap.cloud.terraform import install_terraform as build

    print(_run(build, force=force))


# ---- kube-proxy v1.21 with RAP swapped in (rap.build) ----

@task(name="build-proxy", help=build_options.option_help())
def build_proxy(c, k8s_src=None, stock=False, test=True, apiserver=False, node_binaries=False, image=None,
                stock_image=None, push=False, force=False):
    """Build kube-proxy v1.21.14 with rap_patch/rap.go in place of roundrobin.go (and what the options add), into build/out/."""
    from rap.build import workflow

    opts = _run(workflow.parse_options, k8s_src, stock=stock, test=test, apiserver=apiserver,
                node_binaries=node_binaries, image_ref=image, stock_image=stock_image, push=push, force=force)
    print(workflow.summary(_run(workflow.build_proxy, opts)))


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

    _run(gotest.test_proxy, k8s_src, verbose=verbose, run=run, project_tests=not upstream_only)


@task(name="fuzz-proxy", help={"fuzztime": "go's -fuzztime per target, e.g. 30s, 5m or 100000x (default 10s)",
                                 "target": "one of rap.build.gotest.FUZZ_TARGETS (default: each in turn)"})
def fuzz_proxy(c, fuzztime="10s", target=None):
    """go test -fuzz on rap.go's metrics parsing and endpoint building, in test-proxy's swapped tree."""
    from rap.build import gotest

    _run(gotest.fuzz_proxy, (target,) if target else gotest.FUZZ_TARGETS, fuzztime)


@task(
    name="test-differential",
    help={
        "decisions": "requests in all over the generated vectors (default 10000)",
        "seed": "generator seed (default: a random one, printed)",
        "out": "new or empty folder for the vectors (default build/differential/run-SEED)",
    },
)
def test_differential(c, decisions=None, seed=None, out=None):
    """Random vectors answered by the Python reference, replayed on rap.go: every answer must agree."""
    from rap import vectorgen

    print(_run(vectorgen.differential, decisions, seed, out))


# ---- deploy the RAP kube-proxy into a kubeadm cluster, and back (rap.deploy) ----

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
        "aggregator_image": "with --monitor aggregator (required there, refused otherwise): the image of the "
                            "Deployment kube-system/rap-aggregator, NAME:TAG, holding python3 and the rap package",
        "kubeconfig": _KUBECONFIG_HELP,
        "timeout": "seconds to wait for every node to run it (and the aggregator to be available) before "
                   "rolling back by itself (default 300)",
        **_RAP_OPTION_HELP,
    },
    auto_shortflags=False,
)
@_with_options(_RAP_OPTION_HELP)
def deploy(c, image=None, aggregator_image=None, kubeconfig=None, timeout=None, **rap):
    """Switch kube-system/kube-proxy to the RAP image in userspace mode (with --monitor aggregator, also run
    rap.aggregator); roll back by itself if not ready."""
    from rap import deploy as rap_deploy

    opts = _run(rap_deploy.parse_options, image, timeout=timeout, aggregator_image=aggregator_image, **rap)
    _run(rap_deploy.deploy, opts, kubeconfig)


@task(
    help={
        "kubeconfig": _KUBECONFIG_HELP,
        "timeout": "seconds to wait for every node to run the restored kube-proxy (default 300)",
    },
    auto_shortflags=False,
)
def rollback(c, kubeconfig=None, timeout=None):
    """Put back the kube-proxy image, args, env and ConfigMap that `invoke deploy` recorded; remove RAP's RBAC
    and the aggregator."""
    from rap import deploy as rap_deploy

    timeout_s = _run(rap_deploy.parse_timeout, timeout)
    _run(rap_deploy.rollback, kubeconfig, timeout_s)


# ---- the cluster benchmark: RAP against round robin and the peers users run instead (rap.bench) ----

@task(help=bench_options.option_help(), auto_shortflags=False)
def bench(c, quick=False, scenarios=None, policies=None, reps=None, duration=None, out=None, target=None,
          image=None, rap_image=None):
    """RAP (classic and adaptive) against round robin, kube-proxy's iptables mode, node-local routing, HAProxy
    and least-request; the adaptive mode against the bar of rap/bench/scenarios.toml."""
    from rap.bench import bench as run_bench

    opts = _run(bench_options.parse_options, quick=quick, scenarios=scenarios, policies=policies, reps=reps,
                duration=duration, out=out, target=target, image=image, rap_image=rap_image)
    _run(run_bench, opts, image=image, rap_image=rap_image,
         interrupted="interrupted (the cluster was torn down; partial results were written)")


# ---- RAP at scale: the simulator of its decisions and its monitors' cost on a KWOK cluster (rap.sim, rap.scale) ----

from rap.scale import task as scale_task  # noqa: E402 - its option help, beside its one task


@task(help=scale_task.option_help(), auto_shortflags=False)
def scale(c, quick=False, part=None, nodes=None, monitor=None, sim_nodes=None, overloaded=None, seed=None, out=None):
    """RAP at hundreds of nodes (simulated decisions: latency, herding, settling) and its monitors' API cost at
    100-1,000 KWOK nodes, per RAP node (docs/scale.md)."""
    code = _run(scale_task.run, quick=quick, part=part, nodes=nodes, monitor=monitor, sim_nodes=sim_nodes,
                overloaded=overloaded, seed=seed, out=out, interrupted="interrupted (the cluster was torn down)")
    if code:
        raise Exit(code=code)


# ---- the load generator cross-checked against vegeta, a generator nobody here wrote (rap.bench.crosscheck) ----

from rap.bench import crosscheck as bench_crosscheck_module  # noqa: E402 - its option help, beside its one task


@task(name="bench-crosscheck", help=bench_crosscheck_module.option_help(), auto_shortflags=False)
def bench_crosscheck(c, scenario=None, policy=None, rate=None, duration=None, rounds=None, warmup=None,
                     timeout=None, out=None):
    """rap.loadgen against vegeta (built on first use): same open-loop rate on the local cluster, p50s within 10%."""
    opts = _run(bench_crosscheck_module.parse_options, scenario=scenario, policy=policy, rate=rate,
                duration=duration, rounds=rounds, warmup=warmup, timeout=timeout, out=out)
    _, doc = _run(bench_crosscheck_module.crosscheck, opts, interrupted="interrupted (the cluster was torn down)")
    if not doc["within"]:
        raise Exit(code=1)
