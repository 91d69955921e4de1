"""rap.cloud: credentials, option checks, inventory, and up/down driven
through a stand-in terraform binary (the real one needs GCP)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from rap.build import toolchain
from rap.cloud import CloudError
from rap.cloud import cluster, terraform
from rap.cloud.config import CloudConfig, parse_zones, validate
from rap.cloud.inventory import build_inventory, nodes_from_outputs, write_inventory
from rap.paths import REPO

yaml = pytest.importorskip("yaml")

OUTPUTS = {
    "nodes": {"value": [
        {"name": "rap-cp", "role": "control-plane", "zone": "europe-west1-b",
         "public_ip": "203.0.113.10", "private_ip": "10.10.0.2"},
        {"name": "rap-worker-0", "role": "worker", "zone": "europe-west1-b",
         "public_ip": "203.0.113.11", "private_ip": "10.10.0.3"},
        {"name": "rap-worker-1", "role": "worker", "zone": "europe-west4-a",
         "public_ip": "203.0.113.12", "private_ip": "10.10.1.2"},
    ]},
    "ssh_user": {"value": "rap"},
    "pod_cidr": {"value": "10.244.0.0/16"},
}
CLEAN_ENV = ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CREDENTIALS", "GOOGLE_OAUTH_ACCESS_TOKEN", "CLOUDSDK_CONFIG")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home with no credentials, an SSH key pair, and its own state dir."""
    for var in CLEAN_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("RAP_CLOUD_STATE", str(tmp_path / "state"))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519").write_text("not a real key\n")
    (tmp_path / ".ssh" / "id_ed25519.pub").write_text("ssh-ed25519 AAAAtest rap@test\n")
    return tmp_path


def _cfg(home: Path, **kw) -> CloudConfig:
    base = dict(project="rap-test-123", operator_cidr="198.51.100.7/32",
                ssh_public_key=str(home / ".ssh" / "id_ed25519.pub"))
    return CloudConfig(**{**base, **kw})


# ---- credentials ---------------------------------------------------------

def test_missing_credentials_is_one_clear_error(home):
    with pytest.raises(CloudError) as err:
        terraform.find_credentials(env={}, home=home)
    message = str(err.value)
    assert "no Google Cloud credentials" in message
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message and "gcloud auth application-default login" in message
    assert "\n" not in message


def test_credentials_found_by_source_never_by_content(home):
    adc = home / ".config" / "gcloud" / "application_default_credentials.json"
    adc.parent.mkdir(parents=True)
    adc.write_text('{"secret": "s3cr3t"}')
    assert terraform.find_credentials(env={}, home=home) == str(adc)
    key = home / "sa.json"
    key.write_text('{"private_key": "s3cr3t"}')
    assert terraform.find_credentials(env={"GOOGLE_APPLICATION_CREDENTIALS": str(key)}, home=home) \
        == "GOOGLE_APPLICATION_CREDENTIALS"
    assert terraform.find_credentials(env={"GOOGLE_CREDENTIALS": "s3cr3t"}, home=home) == "GOOGLE_CREDENTIALS"


def test_credentials_variable_naming_a_missing_file(home):
    with pytest.raises(CloudError, match="names /nonexistent/key.json, which is not a readable file"):
        terraform.find_credentials(env={"GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/key.json"}, home=home)


def _invoke(args: list[str], home: Path, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    env.update(HOME=str(home), RAP_CLOUD_STATE=str(home / "state"), **(extra_env or {}))
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_invoke_up_plan_without_credentials_prints_one_message(home):
    result = _invoke(["up", "--plan", "--project", "rap-test-123", "--operator-cidr", "198.51.100.7/32"], home)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: no Google Cloud credentials found")
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (home / "state").exists(), "nothing may be written before credentials are found"


def test_invoke_up_plan_bare_also_names_the_credential(home):
    result = _invoke(["up", "--plan"], home)
    assert result.returncode == 1 and "no Google Cloud credentials" in result.stderr


def test_secret_in_environment_is_never_printed(home):
    secret = "ya29.do-not-print-me"
    result = _invoke(["up", "--plan", "--project", "rap-test-123", "--operator-cidr", "bad"], home,
                     {"GOOGLE_OAUTH_ACCESS_TOKEN": secret})
    assert result.returncode == 1 and "--operator-cidr 'bad'" in result.stderr
    assert secret not in result.stdout + result.stderr


# ---- options -------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"project": None}, "--project is required"),
    ({"project": "X"}, "is not a GCP project ID"),
    ({"operator_cidr": None}, "--operator-cidr is required"),
    ({"operator_cidr": "0.0.0.0/0"}, "open SSH to the world"),
    ({"operator_cidr": "300.1.1.1/32"}, "is not a CIDR"),
    ({"workers": 1}, "from 2 to 50"),
    ({"worker_zones": ()}, "at least one zone"),
    ({"worker_zones": ("europe-west1",)}, "is not a GCP zone"),
    ({"machine_type": " "}, "--machine-type must not be empty"),
    ({"pod_cidr": "10.10.0.0/20"}, "overlaps"),
    ({"node_cidr": "10.10.0.0/24"}, "/21 or larger"),
    ({"name": "Bad_Name"}, "--name"),
])
def test_bad_options_name_the_option(home, change, message):
    with pytest.raises(CloudError, match=re.escape(message)):
        validate(_cfg(home, **change))


def test_private_key_is_refused_as_public_key(home):
    with pytest.raises(CloudError, match="must be the public key"):
        validate(_cfg(home, ssh_public_key=str(home / ".ssh" / "id_ed25519")))


def test_missing_public_key_says_how_to_make_one(home):
    with pytest.raises(CloudError, match="ssh-keygen"):
        validate(_cfg(home, ssh_public_key=str(home / "nope.pub")))


def test_good_config_and_tfvars(home):
    cfg = validate(_cfg(home, workers=3, worker_zones=parse_zones("us-central1-a, asia-east1-b")))
    tfvars = cfg.tfvars()
    assert tfvars["worker_count"] == 3 and tfvars["worker_zones"] == ["us-central1-a", "asia-east1-b"]
    assert tfvars["ssh_public_key_path"].endswith(".pub")
    assert cfg.private_key_path == home / ".ssh" / "id_ed25519"
    assert parse_zones("") == ("europe-west1-b", "europe-west4-a")


# ---- inventory -----------------------------------------------------------

def test_inventory_from_outputs(tmp_path):
    path = write_inventory(OUTPUTS, tmp_path / "inv.yml", Path("/k/id"), tmp_path / "known_hosts")
    inv = yaml.safe_load(path.read_text())["all"]
    assert inv["vars"]["ansible_user"] == "rap"
    assert inv["vars"]["ansible_ssh_private_key_file"] == "/k/id"
    assert "StrictHostKeyChecking=accept-new" in inv["vars"]["ansible_ssh_common_args"]
    assert list(inv["children"]["control_plane"]["hosts"]) == ["rap-cp"]
    assert list(inv["children"]["workers"]["hosts"]) == ["rap-worker-0", "rap-worker-1"]
    w1 = inv["children"]["workers"]["hosts"]["rap-worker-1"]
    assert w1 == {"ansible_host": "203.0.113.12", "public_ip": "203.0.113.12",
                  "private_ip": "10.10.1.2", "zone": "europe-west4-a"}


def test_inventory_accepts_unwrapped_outputs():
    raw = {k: v["value"] for k, v in OUTPUTS.items()}
    assert [n.name for n in nodes_from_outputs(raw)] == ["rap-cp", "rap-worker-0", "rap-worker-1"]


@pytest.mark.parametrize("mutate, message", [
    (lambda o: o.pop("nodes"), "no 'nodes'"),
    (lambda o: o["nodes"]["value"][1].update(private_ip="nope"), "not an IP address"),
    (lambda o: o["nodes"]["value"][0].update(role="worker"), "one control-plane"),
    (lambda o: o["nodes"]["value"][0].pop("zone"), "without 'zone'"),
])
def test_inventory_rejects_bad_outputs(mutate, message):
    outputs = json.loads(json.dumps(OUTPUTS))
    mutate(outputs)
    with pytest.raises(CloudError, match=message):
        build_inventory(outputs, Path("/k"), Path("/kh"))


# ---- terraform binary ----------------------------------------------------

def test_missing_terraform_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("RAP_CACHE", str(tmp_path))
    monkeypatch.setattr(terraform.shutil, "which", lambda name: None)
    # Go is looked up by rap.build.toolchain.find_go: PATH (shutil.which), then /usr/local/go.
    monkeypatch.setattr(toolchain, "Path", lambda p: Path("/nonexistent/go"))
    with pytest.raises(CloudError, match="invoke install-terraform"):
        terraform.require_terraform()
    with pytest.raises(CloudError, match="needs Go"):
        terraform.install_terraform()


def test_install_terraform_reuses_the_cached_build(monkeypatch, tmp_path):
    monkeypatch.setenv("RAP_CACHE", str(tmp_path))
    built = terraform.cached_terraform()
    built.parent.mkdir(parents=True)
    built.write_text("")
    assert terraform.install_terraform(go="/bin/false") == built


def test_install_terraform_uses_a_usable_one_on_path(monkeypatch, tmp_path):
    monkeypatch.setenv("RAP_CACHE", str(tmp_path / "cache"))
    fake = tmp_path / "terraform"
    fake.write_text('#!/bin/sh\necho \'{"terraform_version": "1.6.2"}\'\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert terraform.install_terraform(go="/bin/false") == fake
    assert terraform.require_terraform() == fake
    fake.write_text('#!/bin/sh\necho \'{"terraform_version": "1.4.0"}\'\n')
    with pytest.raises(CloudError, match="failed"):
        terraform.install_terraform(go="/bin/false")


def test_summarize_plan():
    plan = {"resource_changes": [
        {"type": "google_compute_instance", "change": {"actions": ["create"]}},
        {"type": "google_compute_instance", "change": {"actions": ["create"]}},
        {"type": "google_compute_network", "change": {"actions": ["no-op"]}},
        {"type": "google_compute_firewall", "change": {"actions": ["delete", "create"]}},
    ]}
    assert terraform.summarize_plan(plan) == ["create 2 google_compute_instance",
                                              "delete/create 1 google_compute_firewall"]


# ---- up/down through a stand-in terraform --------------------------------

FAKE_TERRAFORM = """#!/bin/sh
echo "$@" >> "$FAKE_TF_LOG"
for a in "$@"; do
  case "$a" in
    show) echo '{"resource_changes": [{"type": "google_compute_instance", "change": {"actions": ["create"]}}]}'; exit 0;;
    output) cat "$FAKE_TF_OUTPUTS"; exit 0;;
  esac
done
exit 0
"""


@pytest.fixture
def fake_tf(home, monkeypatch):
    binary = home / "bin" / "terraform"
    binary.parent.mkdir()
    binary.write_text(FAKE_TERRAFORM)
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    log = home / "tf.log"
    (home / "outputs.json").write_text(json.dumps(OUTPUTS))
    monkeypatch.setenv("FAKE_TF_LOG", str(log))
    monkeypatch.setenv("FAKE_TF_OUTPUTS", str(home / "outputs.json"))
    monkeypatch.setenv("PATH", f"{binary.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GOOGLE_CREDENTIALS", "not-printed")
    return log


def test_up_plan_creates_nothing(home, fake_tf, capfd):
    cluster.up(_cfg(home), plan_only=True)
    out = capfd.readouterr().out
    assert "create 1 google_compute_instance" in out and "nothing was created" in out
    commands = [line.split()[0] for line in fake_tf.read_text().splitlines()]
    assert commands == ["init", "plan", "show"]
    workdir = home / "state" / "rap" / "terraform"
    assert json.loads((workdir / "terraform.tfvars.json").read_text())["project_id"] == "rap-test-123"
    assert (workdir / "main.tf").is_file()


def test_up_applies_then_runs_ansible(home, fake_tf, monkeypatch, capfd):
    calls = {}
    monkeypatch.setattr(cluster, "run_playbook", lambda inv, data, extra: calls.update(inv=inv, extra=extra) or {})
    cluster.up(_cfg(home))
    assert [line.split()[0] for line in fake_tf.read_text().splitlines()] == ["init", "plan", "show", "apply", "output"]
    assert yaml.safe_load(calls["inv"].read_text())["all"]["children"]["workers"]["hosts"]
    assert calls["extra"]["kubeconfig_dest"].endswith("kubeconfig")
    assert "rap-worker-1" in capfd.readouterr().out


def test_down_needs_a_cluster(home, fake_tf):
    with pytest.raises(CloudError, match="no cluster named 'rap'"):
        cluster.down("rap", yes=True)


def test_down_asks_and_destroys(home, fake_tf, capfd):
    cluster.up(_cfg(home), plan_only=True)
    with pytest.raises(CloudError, match="not confirmed"):
        cluster.down("rap", ask=lambda prompt: "no")
    assert "apply" not in fake_tf.read_text()
    cluster.down("rap", ask=lambda prompt: "rap")
    assert "plan -no-color -input=false -out=rap.tfplan -destroy" in fake_tf.read_text()
    assert fake_tf.read_text().splitlines()[-1].startswith("apply")
    assert "destroyed" in capfd.readouterr().out


def test_down_without_terminal_needs_yes(home, fake_tf, monkeypatch):
    cluster.up(_cfg(home), plan_only=True)
    monkeypatch.setattr(sys, "stdin", open(os.devnull))
    with pytest.raises(CloudError, match="pass --yes"):
        cluster.down("rap")
    cluster.down("rap", yes=True)
