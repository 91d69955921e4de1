"""`invoke up` and `invoke down`: the steps in order, with progress and a summary."""

from __future__ import annotations

import json
import shutil
import sys
from typing import Callable

from rap.cloud import CloudError
from rap.cloud.ansible import changed_hosts, run_playbook
from rap.cloud.config import NAME_RE, CloudConfig, state_root, validate
from rap.cloud.inventory import nodes_from_outputs, write_inventory
from rap.cloud.terraform import Terraform, find_credentials, prepare_workdir, require_terraform, summarize_plan
from rap.status import Status

# Progress on stderr, as ``[cloud] ...`` lines; stdout keeps the plan and the summary.
_status = Status("cloud", stderr=True)


def up(cfg: CloudConfig, plan_only: bool = False) -> None:
    # Credentials first: without them nothing else can succeed, and the user
    # should hear that one thing rather than a provider stack trace.
    source = find_credentials()
    validate(cfg)
    tf = Terraform(prepare_workdir(cfg.state_dir / "terraform", cfg.tfvars()), require_terraform())
    _status.say(f"credentials: {source}; state: {cfg.state_dir}")
    _status.say("terraform init")
    tf.init()
    _status.say("terraform plan")
    lines = summarize_plan(tf.plan())
    print("\n".join(["planned changes:"] + [f"  {line}" for line in lines or ["none"]]))
    if plan_only:
        print("nothing was created (--plan)")
        return
    _status.say("terraform apply")
    tf.apply()
    outputs = tf.outputs()
    _configure(cfg, outputs)
    _summary(cfg, outputs)


def _configure(cfg: CloudConfig, outputs: dict) -> None:
    inventory = write_inventory(outputs, cfg.state_dir / "inventory.yml", cfg.private_key_path,
                                cfg.state_dir / "known_hosts")
    _status.say(f"ansible: playbooks/site.yml with {inventory}")
    stats = run_playbook(inventory, cfg.state_dir / "ansible",
                         {"kubeconfig_dest": str(cfg.state_dir / "kubeconfig"), "pod_cidr": cfg.pod_cidr})
    changed = changed_hosts(stats)
    _status.say(f"ansible changed {sum(changed.values())} things on {len(changed)} hosts")


def _summary(cfg: CloudConfig, outputs: dict) -> None:
    nodes = nodes_from_outputs(outputs)
    print(f"cluster {cfg.name!r} in project {cfg.project}:")
    for n in nodes:
        print(f"  {n.role:13} {n.name:20} {n.zone:18} public {n.public_ip:15} private {n.private_ip}")
    cp = next(n for n in nodes if n.role == "control-plane")
    print(f"kubeconfig: {cfg.state_dir / 'kubeconfig'} (API through a tunnel: "
          f"ssh -i {cfg.private_key_path} -N -L 6443:127.0.0.1:6443 {cfg.ssh_user}@{cp.public_ip})")


def down(name: str = "rap", yes: bool = False, ask: Callable[[str], str] = input) -> None:
    find_credentials()
    if not NAME_RE.match(name):
        raise CloudError(f"--name {name!r} must be 1-20 lower-case letters, digits or hyphens")
    state_dir = state_root() / name
    workdir = state_dir / "terraform"
    if not (workdir / "terraform.tfvars.json").is_file():
        raise CloudError(f"no cluster named {name!r}: {workdir} holds no Terraform state (was it made with `invoke up --name {name}`?)")
    # Destroy with the files and variables that made the cluster, not today's.
    tf = Terraform(workdir, require_terraform())
    tf.init()
    lines = summarize_plan(tf.plan(destroy=True))
    if not lines:
        print(f"cluster {name!r}: nothing left to destroy")
        return
    project = json.loads((workdir / "terraform.tfvars.json").read_text()).get("project_id")
    print("\n".join([f"cluster {name!r} in project {project} would lose:"] + [f"  {line}" for line in lines]))
    _confirm(name, yes, ask)
    _status.say("terraform apply (destroy)")
    tf.apply()
    for leftover in ("inventory.yml", "kubeconfig", "known_hosts"):
        (state_dir / leftover).unlink(missing_ok=True)
    shutil.rmtree(state_dir / "ansible", ignore_errors=True)
    print(f"cluster {name!r} destroyed")


def _confirm(name: str, yes: bool, ask: Callable[[str], str]) -> None:
    if yes:
        return
    if not sys.stdin.isatty() and ask is input:
        raise CloudError("refusing to destroy without confirmation: no terminal to ask on; pass --yes")
    if ask(f"type the cluster name ({name}) to destroy it: ").strip() != name:
        raise CloudError("not confirmed: nothing was destroyed")
