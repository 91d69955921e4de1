"""Invoke tasks for the RAP toolkit.

Each task parses its options and calls one function of the ``rap`` package;
the logic lives there, not here. ``invoke --list`` shows them all and
``invoke --help TASK`` explains each option.
"""

from invoke import task
from invoke.exceptions import Exit


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


# ---- the whole test suite ----

@task(help={"fast": "only the fast unit tests (what plain `pytest` runs)"})
def test(c, fast=False):
    """Run the whole test suite: unit, property, vector, e2e and slow tests (as CI does)."""
    markers = "not e2e and not slow" if fast else ""
    c.run(f"python3 -m pytest -m '{markers}'", pty=False)


# ---- cloud: GCP VMs with Terraform, kubeadm 1.21 through Ansible (rap.cloud) ----

def _cloud_call(fn, *args, **kwargs):
    """Run a rap.cloud step; its CloudError becomes one message and exit 1."""
    from invoke.exceptions import Exit

    from rap.cloud import CloudError

    try:
        return fn(*args, **kwargs)
    except CloudError as e:
        raise Exit(f"error: {e}", code=1) from None


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
