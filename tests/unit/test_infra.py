"""infra/: structure checked with python-hcl2, then terraform fmt and validate.

The structural checks are the security rules of the design (SSH only from the
operator, Kubernetes ports only from inside the cluster) and the variable
rules (every variable described, typed, and validated where a bad value could
get past Terraform's type check).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from rap.cloud.terraform import INFRA_DIR, find_terraform

hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 not installed: pip install -e '.[cloud]'")

TF_FILES = sorted(INFRA_DIR.glob("*.tf"))
KUBERNETES_PORTS = {"6443", "10250", "30000-32767", "8472"}
# Free-form maps have nothing to validate beyond their type.
UNVALIDATED_OK = {"labels"}


def _plain(value):
    """python-hcl2 keeps quotes and ${} around values; strip them."""
    if isinstance(value, str):
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if value.startswith("${") and value.endswith("}"):
            value = value[2:-1]
    return value


def _blocks(kind: str) -> list[dict]:
    out = []
    for path in TF_FILES:
        with path.open() as f:
            out.extend(hcl2.load(f).get(kind, []))
    return out


def _resources(rtype: str) -> dict[str, dict]:
    found = {}
    for block in _blocks("resource"):
        for t, named in block.items():
            if _plain(t) == rtype:
                found.update({_plain(n): body for n, body in named.items()})
    return found


def _variables() -> dict[str, dict]:
    return {_plain(n): body for block in _blocks("variable") for n, body in block.items()}


def _locals() -> dict:
    return {k: v for block in _blocks("locals") for k, v in block.items()}


def _ports(rule: dict) -> set[str]:
    return {_plain(p) for allow in rule.get("allow", []) for p in allow.get("ports", [])}


def _refs(expression: str) -> set[str]:
    return set(re.findall(r"\b(?:var|local)\.[a-z_]+", expression))


def test_infra_has_terraform_files():
    assert {p.name for p in TF_FILES} >= {"main.tf", "variables.tf", "outputs.tf", "versions.tf"}


def test_ssh_is_open_only_to_the_operator_cidr():
    rules = _resources("google_compute_firewall")
    ssh = {name: r for name, r in rules.items() if "22" in _ports(r)}
    assert list(ssh) == ["ssh"], "exactly one rule may open port 22"
    rule = ssh["ssh"]
    assert [_plain(s) for s in rule["source_ranges"]] == ["var.operator_cidr"]
    assert _ports(rule) == {"22"}, "the SSH rule must open nothing else"
    assert _plain(rule["direction"]) == "INGRESS"


def test_kubernetes_ports_only_from_internal_ranges():
    rules = {n: r for n, r in _resources("google_compute_firewall").items() if n != "ssh"}
    opened = set().union(*(_ports(r) for r in rules.values()))
    assert KUBERNETES_PORTS <= opened, f"missing Kubernetes ports: {KUBERNETES_PORTS - opened}"
    for name, rule in rules.items():
        assert _plain(rule["source_ranges"]) == "local.internal_ranges", f"rule {name} admits more than the cluster"
        assert rule.get("target_tags"), f"rule {name} must apply only to the cluster's VMs"
    local = _locals()
    # internal_ranges is the node subnets plus the pod network, and the node
    # subnets are cut from node_cidr: no operator or world range can sneak in.
    assert _refs(local["internal_ranges"]) == {"local.subnet_cidrs", "var.pod_cidr"}
    assert _refs(local["subnet_cidrs"]) == {"local.regions", "var.node_cidr"}


def test_no_world_open_range_or_credentials_in_infra():
    # variables.tf names 0.0.0.0/0 only to refuse it; resources never use it.
    text = "\n".join(p.read_text() for p in TF_FILES if p.name != "variables.tf")
    assert "0.0.0.0/0" not in text
    for provider in _blocks("provider"):
        for body in provider.values():
            assert "credentials" not in body and "access_token" not in body


def test_every_variable_has_description_and_type():
    for name, var in _variables().items():
        assert _plain(var.get("description", "")).strip(), f"variable {name} has no description"
        assert var.get("type"), f"variable {name} has no type"


def test_variables_that_can_be_wrong_are_validated():
    variables = _variables()
    for name, var in variables.items():
        if name in UNVALIDATED_OK:
            continue
        checks = var.get("validation", [])
        assert checks, f"variable {name} has no validation block"
        for check in checks:
            assert f"var.{name}" in check["condition"] and _plain(check["error_message"])
    for must in ("operator_cidr", "worker_count", "worker_zones", "control_plane_machine_type",
                 "worker_machine_type", "node_cidr", "pod_cidr", "ssh_public_key_path"):
        assert must in variables
    assert "cidrhost" in variables["operator_cidr"]["validation"][0]["condition"]
    assert ">= 2" in variables["worker_count"]["validation"][0]["condition"]


def test_versions_are_pinned():
    (terraform,) = _blocks("terraform")
    assert _plain(terraform["required_version"]).startswith(">=")
    (providers,) = terraform["required_providers"]
    google = providers["google"]
    assert _plain(google["source"]) == "hashicorp/google"
    assert _plain(google["version"]).startswith("~> 5.")


def test_outputs_feed_the_inventory():
    outputs = {_plain(n) for block in _blocks("output") for n in block}
    assert {"nodes", "ssh_user", "pod_cidr"} <= outputs


def _terraform_or_skip() -> str:
    found = find_terraform()
    if found is None:
        pytest.skip("terraform not found on PATH or in the project cache: run `invoke install-terraform`")
    return str(found)


def test_terraform_fmt_clean():
    tf = _terraform_or_skip()
    result = subprocess.run([tf, "fmt", "-check", "-diff", "-no-color", str(INFRA_DIR)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"terraform fmt would change infra/:\n{result.stdout}{result.stderr}"


def test_terraform_validate(tmp_path):
    tf = _terraform_or_skip()
    work = tmp_path / "infra"
    shutil.copytree(INFRA_DIR, work, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "TF_DATA_DIR": str(tmp_path / "data")}
    init = subprocess.run([tf, "init", "-backend=false", "-input=false", "-no-color"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    if init.returncode != 0:
        reason = next((line for line in init.stderr.splitlines() if line.startswith("Error:")), "init failed")
        pytest.skip(
            "terraform validate needs the hashicorp/google provider (~> 5.40), which is not installed "
            "locally (no plugin cache or filesystem mirror holds it) and cannot be downloaded here: "
            f"terraform init said {reason!r}"
        )
    result = subprocess.run([tf, "validate", "-no-color"], cwd=work, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- variables and locals evaluated by real Terraform, offline -------------
# Without the google provider nothing with resources can be planned here, but
# variables.tf plus main.tf's locals need no provider: Terraform itself checks
# every validation block and computes the zones, regions and ranges.

def _locals_module(tmp_path) -> tuple[str, "os.PathLike"]:
    tf = _terraform_or_skip()
    work = tmp_path / "locals"
    work.mkdir()
    shutil.copy(INFRA_DIR / "variables.tf", work)
    match = re.search(r"^locals \{\n.*?^\}\n", (INFRA_DIR / "main.tf").read_text(), re.S | re.M)
    names = ["regions", "subnet_cidrs", "internal_ranges", "worker_zone_list", "ssh_keys"]
    outputs = "".join(f'output "{n}" {{\n  value = local.{n}\n}}\n' for n in names)
    (work / "locals.tf").write_text(match.group(0) + outputs)
    (tmp_path / "id_test.pub").write_text("ssh-ed25519 AAAAtest rap@test\n")
    return tf, work


def _apply(tf: str, work, tmp_path, **variables) -> subprocess.CompletedProcess:
    base = {"project_id": "rap-test-123", "operator_cidr": "198.51.100.7/32",
            "ssh_public_key_path": str(tmp_path / "id_test.pub")}
    args = [f"-var={k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in {**base, **variables}.items()]
    env = {**os.environ, "TF_DATA_DIR": str(tmp_path / "data"), "TF_IN_AUTOMATION": "1"}
    return subprocess.run([tf, "apply", "-auto-approve", "-input=false", "-no-color", *args], cwd=work,
                          env=env, capture_output=True, text=True, timeout=120)


def test_locals_spread_workers_over_zones_and_regions(tmp_path):
    tf, work = _locals_module(tmp_path)
    result = _apply(tf, work, tmp_path, worker_count=3, worker_zones=["us-central1-a", "asia-east1-b"])
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(subprocess.run([tf, "output", "-json"], cwd=work, capture_output=True, text=True).stdout)
    value = {k: v["value"] for k, v in out.items()}
    assert value["worker_zone_list"] == ["us-central1-a", "asia-east1-b", "us-central1-a"]
    assert value["regions"] == ["europe-west1", "us-central1", "asia-east1"]
    assert sorted(value["internal_ranges"]) == ["10.10.0.0/24", "10.10.1.0/24", "10.10.2.0/24", "10.244.0.0/16"]
    assert value["ssh_keys"] == "rap:ssh-ed25519 AAAAtest rap@test"


@pytest.mark.parametrize("variable, value", [
    ("operator_cidr", "0.0.0.0/0"),
    ("operator_cidr", "not-a-cidr"),
    ("worker_count", 1),
    ("worker_count", 2.5),
    ("worker_zones", ["europe-west1"]),
    ("worker_zones", []),
    ("control_plane_zone", "EU-west1-b"),
    ("worker_machine_type", " "),
    ("node_cidr", "10.10.0.0/24"),
    ("pod_cidr", "10.244.0.0"),
    ("ssh_public_key_path", "~/.ssh/id_ed25519"),
    ("project_id", "P"),
])
def test_validation_blocks_reject_bad_values(tmp_path, variable, value):
    tf, work = _locals_module(tmp_path)
    result = _apply(tf, work, tmp_path, **{variable: value})
    assert result.returncode != 0
    assert "Invalid value for variable" in result.stderr, result.stderr
    assert f'variable "{variable}"' in result.stderr
