"""Terraform outputs -> the Ansible inventory that playbooks/site.yml reads.

Group names match the plays: ``control_plane`` (exactly one host) and
``workers``. Each host carries its public IP (Ansible connects there) and its
private IP (what Kubernetes advertises and the firewall admits).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml

from rap.cloud import CloudError

ROLES = {"control-plane": "control_plane", "worker": "workers"}


@dataclass(frozen=True)
class Node:
    name: str
    role: str
    zone: str
    public_ip: str
    private_ip: str


def _value(outputs: dict, key: str):
    """`terraform output -json` wraps each value as {"value": ...}; accept both."""
    if key not in outputs:
        raise CloudError(f"Terraform outputs have no {key!r}: was infra/ applied with this version of the project?")
    item = outputs[key]
    return item["value"] if isinstance(item, dict) and "value" in item else item


def nodes_from_outputs(outputs: dict) -> list[Node]:
    nodes = []
    for raw in _value(outputs, "nodes"):
        try:
            node = Node(**{k: raw[k] for k in Node.__dataclass_fields__})
        except (KeyError, TypeError) as e:
            raise CloudError(f"Terraform output 'nodes' has an entry without {e}: {raw!r}") from None
        _check_node(node)
        nodes.append(node)
    roles = [n.role for n in nodes]
    if roles.count("control-plane") != 1 or roles.count("worker") < 1:
        raise CloudError(f"Terraform output 'nodes' must hold one control-plane and at least one worker, not {roles}")
    return nodes


def _check_node(node: Node) -> None:
    if node.role not in ROLES:
        raise CloudError(f"node {node.name}: unknown role {node.role!r}")
    for field in ("public_ip", "private_ip"):
        try:
            ipaddress.ip_address(getattr(node, field))
        except ValueError:
            raise CloudError(f"node {node.name}: {field} {getattr(node, field)!r} is not an IP address") from None


def build_inventory(outputs: dict, private_key: Path, known_hosts: Path) -> dict:
    """The inventory as a dict in Ansible's YAML inventory layout."""
    groups: dict[str, dict] = {group: {"hosts": {}} for group in ROLES.values()}
    for node in nodes_from_outputs(outputs):
        groups[ROLES[node.role]]["hosts"][node.name] = {
            "ansible_host": node.public_ip,
            "public_ip": node.public_ip,
            "private_ip": node.private_ip,
            "zone": node.zone,
        }
    # accept-new: fresh VMs have keys nobody has seen yet, but a key that
    # changes later is still refused; a file of our own keeps recycled cloud
    # IPs out of the user's ~/.ssh/known_hosts.
    ssh_args = f"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={known_hosts}"
    all_vars = {
        "ansible_user": _value(outputs, "ssh_user"),
        "ansible_ssh_private_key_file": str(private_key),
        "ansible_ssh_common_args": ssh_args,
        "pod_cidr": _value(outputs, "pod_cidr"),
    }
    return {"all": {"vars": all_vars, "children": groups}}


def write_inventory(outputs: dict, path: Path, private_key: Path, known_hosts: Path) -> Path:
    inventory = build_inventory(outputs, private_key, known_hosts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path
