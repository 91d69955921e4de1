"""playbooks/: ansible-playbook --syntax-check, ansible-lint, and the pins
that the design fixes (kubeadm 1.21, kube-proxy in userspace mode)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rap.cloud import CloudError
from rap.cloud.ansible import PLAYBOOKS_DIR, SITE, changed_hosts, run_playbook
from rap.cloud.inventory import write_inventory

from .test_cloud import OUTPUTS

yaml = pytest.importorskip("yaml")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} not found: pip install -e '.[cloud]'")
    return found


def _env(tmp_path: Path) -> dict:
    # ansible.cfg beside the playbooks; temp and cache dirs of the test's own.
    return {**os.environ, "ANSIBLE_CONFIG": str(PLAYBOOKS_DIR / "ansible.cfg"),
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_HOME": str(tmp_path / "ansible")}


def test_syntax_check_with_a_generated_inventory(tmp_path):
    playbook = _tool("ansible-playbook")
    inventory = write_inventory(OUTPUTS, tmp_path / "inventory.yml", tmp_path / "id", tmp_path / "kh")
    result = subprocess.run([playbook, "--syntax-check", "-i", str(inventory), str(SITE)],
                            env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_inventory_groups_match_the_plays(tmp_path):
    inventory = write_inventory(OUTPUTS, tmp_path / "inventory.yml", tmp_path / "id", tmp_path / "kh")
    groups = set(yaml.safe_load(inventory.read_text())["all"]["children"])
    plays = {play["hosts"] for play in yaml.safe_load(SITE.read_text())}
    assert plays - {"all"} == groups


def test_ansible_lint_production_profile(tmp_path):
    lint = _tool("ansible-lint")
    result = subprocess.run([lint, "--offline", "-c", ".ansible-lint", "site.yml"], cwd=PLAYBOOKS_DIR,
                            env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_pinned_at_1_21():
    pins = yaml.safe_load((PLAYBOOKS_DIR / "group_vars" / "all.yml").read_text())
    assert pins["kubernetes_version"] == "1.21.14"
    for key in ("flannel_version", "metrics_server_version", "cni_plugins_version", "crictl_version"):
        assert pins[key][0].isdigit(), f"{key} must be a pinned version"


def test_kubeadm_config_sets_userspace_proxy_mode():
    template = (PLAYBOOKS_DIR / "roles" / "control_plane" / "templates" / "kubeadm-config.yaml.j2").read_text()
    docs = [d for d in template.split("\n---\n")]
    proxy = [d for d in docs if "kind: KubeProxyConfiguration" in d]
    assert len(proxy) == 1 and "\nmode: userspace" in proxy[0]
    assert "kubernetesVersion: v{{ kubernetes_version }}" in template


def _tasks() -> list[dict]:
    tasks = []
    for path in PLAYBOOKS_DIR.glob("roles/*/*/main.yml"):
        if path.parent.name in ("tasks", "handlers"):
            tasks.extend(yaml.safe_load(path.read_text()))
    return tasks


def test_commands_are_guarded_for_idempotence():
    commands = [t for t in _tasks() if "ansible.builtin.command" in t or "ansible.builtin.shell" in t]
    assert commands
    for task in commands:
        args = task.get("ansible.builtin.command") or task.get("ansible.builtin.shell")
        guarded = "changed_when" in task or (isinstance(args, dict) and "creates" in args)
        assert guarded, f"task {task['name']!r} would report a change on every run"


def test_secrets_stay_out_of_the_output():
    secret_tasks = [t for t in _tasks() if "join" in t["name"].lower() or "kubeconfig" in t["name"].lower()]
    for task in secret_tasks:
        if any(k in task for k in ("ansible.builtin.command", "ansible.builtin.copy", "ansible.builtin.slurp")):
            assert task.get("no_log") is True, f"task {task['name']!r} handles a secret without no_log"


def test_run_playbook_through_ansible_runner(tmp_path, monkeypatch):
    """The runner call itself, on a local-connection playbook: stats on
    success, a CloudError naming the host on failure."""
    _tool("ansible-playbook")
    monkeypatch.setenv("ANSIBLE_LOCAL_TEMP", str(tmp_path / "tmp"))
    (tmp_path / "ansible.cfg").write_text((PLAYBOOKS_DIR / "ansible.cfg").read_text())
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Probe", "hosts": "all", "gather_facts": False, "tasks": [
        {"name": "Fail when asked", "ansible.builtin.fail": {"msg": "asked to"}, "when": "fail_now | bool"},
        {"name": "Touch a file", "ansible.builtin.file": {"path": str(tmp_path / "touched"), "state": "touch",
                                                          "modification_time": "preserve",
                                                          "access_time": "preserve"}}]}]))
    stats = run_playbook(inventory, tmp_path / "run1", {"fail_now": False}, playbook=playbook)
    assert changed_hosts(stats) == {"localhost": 1}
    stats = run_playbook(inventory, tmp_path / "run2", {"fail_now": False}, playbook=playbook)
    assert changed_hosts(stats) == {}, "a second run must change nothing"
    with pytest.raises(CloudError, match="failed on localhost"):
        run_playbook(inventory, tmp_path / "run3", {"fail_now": True}, playbook=playbook)
