"""Settings for a cloud cluster, checked before anything runs.

The checks repeat the validation blocks of infra/variables.tf so that a wrong
option fails at once with the option's name, not minutes later inside
Terraform; the overlap check is one Terraform 1.5 cannot express.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rap.cloud import CloudError
from rap.options import number, with_defaults

ZONE_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")
PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

DEFAULT_WORKER_ZONES = ("europe-west1-b", "europe-west4-a")


def state_root() -> Path:
    """Where Terraform state and inventories live.

    Not the cache: wiping a cache must never orphan running VMs, so the state
    sits in ``$RAP_CLOUD_STATE`` (default ``~/.local/state/rap/cloud``).
    """
    default = Path.home() / ".local" / "state" / "rap" / "cloud"
    return Path(os.environ.get("RAP_CLOUD_STATE", default))


@dataclass(frozen=True)
class CloudConfig:
    project: str | None = None
    operator_cidr: str | None = None
    name: str = "rap"
    workers: int = 2
    worker_zones: tuple[str, ...] = DEFAULT_WORKER_ZONES
    control_plane_zone: str = "europe-west1-b"
    machine_type: str = "e2-standard-2"
    ssh_user: str = "rap"
    ssh_public_key: str = "~/.ssh/id_ed25519.pub"
    node_cidr: str = "10.10.0.0/16"
    pod_cidr: str = "10.244.0.0/16"
    labels: dict[str, str] = field(default_factory=lambda: {"app": "rap"})

    @property
    def state_dir(self) -> Path:
        """One directory per cluster name, so several clusters can coexist."""
        return state_root() / self.name

    @property
    def public_key_path(self) -> Path:
        return Path(self.ssh_public_key).expanduser()

    @property
    def private_key_path(self) -> Path:
        """The private half that Ansible logs in with: the .pub file's sibling."""
        return self.public_key_path.with_suffix("")

    def tfvars(self) -> dict:
        """Terraform's variables; nothing secret goes in here."""
        return {
            "project_id": self.project,
            "name_prefix": self.name,
            "operator_cidr": self.operator_cidr,
            "worker_count": self.workers,
            "worker_zones": list(self.worker_zones),
            "control_plane_zone": self.control_plane_zone,
            "control_plane_machine_type": self.machine_type,
            "worker_machine_type": self.machine_type,
            "ssh_user": self.ssh_user,
            "ssh_public_key_path": str(self.public_key_path),
            "node_cidr": self.node_cidr,
            "pod_cidr": self.pod_cidr,
            "labels": dict(self.labels),
        }

    def as_dict(self) -> dict:
        return asdict(self)


def option_help() -> dict[str, str]:
    """`invoke up`'s option help, defaults taken from CloudConfig."""
    d = CloudConfig()
    defaults = {"workers": d.workers, "zones": d.worker_zones, "control_plane_zone": d.control_plane_zone,
                "machine_type": d.machine_type, "name": d.name, "ssh_public_key": d.ssh_public_key,
                "ssh_user": d.ssh_user}
    return with_defaults({
        "project": "GCP project ID to create the cluster in (required)",
        "operator_cidr": "the only source range allowed to SSH in, e.g. 203.0.113.7/32 (required)",
        "workers": "number of worker VMs, at least 2",
        "zones": "comma-separated zones the workers are spread over in turn",
        "control_plane_zone": "zone of the control-plane VM",
        "machine_type": "machine type of every VM",
        "name": "cluster name, the prefix of every resource and the state directory",
        "ssh_public_key": "SSH public key installed on the VMs; its private half must sit beside it",
        "ssh_user": "login user created with that key",
        "plan": "only show what would be created; create nothing",
    }, defaults)


def parse_options(*, workers=None, zones=None, **given) -> CloudConfig:
    """`invoke up`'s raw options -> CloudConfig; options not given keep CloudConfig's defaults."""
    values = {k: v for k, v in given.items() if v is not None}
    if workers is not None:
        values["workers"] = number("--workers", workers, int, CloudError)
    if zones:
        values["worker_zones"] = parse_zones(zones)
    return CloudConfig(**values)


def parse_zones(text: str | None) -> tuple[str, ...]:
    """``"a-b1-c, d-e2-f"`` -> a tuple; empty means the defaults."""
    if not text:
        return DEFAULT_WORKER_ZONES
    return tuple(z.strip() for z in text.split(",") if z.strip())


def validate(cfg: CloudConfig, *, for_destroy: bool = False) -> CloudConfig:
    """Raise CloudError naming the first bad option; return cfg unchanged."""
    _check(cfg.project is not None, "--project is required: the GCP project ID to create the cluster in")
    _check(bool(PROJECT_RE.match(cfg.project)), f"--project {cfg.project!r} is not a GCP project ID (6-30 lower-case letters, digits, hyphens)")
    _check(bool(NAME_RE.match(cfg.name)), f"--name {cfg.name!r} must be 1-20 lower-case letters, digits or hyphens, starting with a letter")
    if for_destroy:
        return cfg
    _check(cfg.operator_cidr is not None, "--operator-cidr is required: the address SSH is allowed from, e.g. 203.0.113.7/32 (your public IP)")
    operator = _network("--operator-cidr", cfg.operator_cidr)
    _check(operator.prefixlen > 0, "--operator-cidr 0.0.0.0/0 would open SSH to the world; give your own address, e.g. 203.0.113.7/32")
    _check(isinstance(cfg.workers, int) and 2 <= cfg.workers <= 50, f"--workers must be a whole number from 2 to 50, not {cfg.workers!r}")
    _check(len(cfg.worker_zones) > 0, "--zones must name at least one zone")
    for zone in (cfg.control_plane_zone, *cfg.worker_zones):
        _check(bool(ZONE_RE.match(zone)), f"zone {zone!r} is not a GCP zone such as europe-west1-b")
    _check(bool(cfg.machine_type.strip()), "--machine-type must not be empty")
    _check(bool(USER_RE.match(cfg.ssh_user)), f"--ssh-user {cfg.ssh_user!r} is not a valid Linux user name")
    _check_key(cfg)
    _check_ranges(cfg)
    return cfg


def _check_key(cfg: CloudConfig) -> None:
    path = cfg.public_key_path
    _check(path.suffix == ".pub", f"--ssh-public-key {path} must be the public key (a .pub file), never the private key")
    _check(path.is_file(), f"SSH public key {path} not found: make one with `ssh-keygen -t ed25519 -f {path.with_suffix('')}` or pass --ssh-public-key")


def _check_ranges(cfg: CloudConfig) -> None:
    nodes = _network("--node-cidr", cfg.node_cidr)
    pods = _network("--pod-cidr", cfg.pod_cidr)
    _check(nodes.version == 4 and nodes.prefixlen <= 21, f"--node-cidr {cfg.node_cidr} must be IPv4 and /21 or larger (it is cut into one /+8 subnet per region)")
    _check(not nodes.overlaps(pods), f"--node-cidr {cfg.node_cidr} overlaps --pod-cidr {cfg.pod_cidr}")


def _network(option: str, text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise CloudError(f"{option} {text!r} is not a CIDR such as 10.0.0.0/16") from None


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise CloudError(message)
