"""playbooks/: ansible-playbook --syntax-check, ansible-lint, and the pins
that the design fixes (kubeadm 1.21, kube-proxy in userspace mode)."""

from __future__ import annotations

import os
import re
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


# ---- downloads pinned by checksums kept in the repository ------------------

CHECKSUMS = PLAYBOOKS_DIR / "group_vars" / "all" / "checksums.yml"


def _task_files():
    for path in sorted(PLAYBOOKS_DIR.glob("roles/*/tasks/*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            yield path, task


def test_every_download_has_a_checksum_from_the_checksums_file():
    tables = set(yaml.safe_load(CHECKSUMS.read_text()))
    downloads = 0
    for path, task in _task_files():
        for module in ("ansible.builtin.get_url", "get_url", "ansible.builtin.uri", "uri"):
            if module not in task:
                continue
            downloads += 1
            checksum = str(task[module].get("checksum", ""))
            where = f"{path.relative_to(PLAYBOOKS_DIR)}: {task.get('name')}"
            assert checksum.startswith("sha256:"), f"{where} downloads without a sha256"
            # A checksum fetched from the server that serves the file proves nothing.
            assert "://" not in checksum and "_url" not in checksum, f"{where} takes its checksum from the server"
            named = {t for t in tables if t in checksum} | ({"_checksums"} if "~ '_checksums'" in checksum else set())
            assert named, f"{where}: checksum must come from {CHECKSUMS.name}"
    assert downloads >= 5


def test_the_checksum_guard_covers_every_table():
    defaults = yaml.safe_load((PLAYBOOKS_DIR / "roles" / "node" / "defaults" / "main.yml").read_text())
    guarded = {d["table"] for d in defaults["node_checksummed_downloads"]}
    assert guarded == set(yaml.safe_load(CHECKSUMS.read_text()))


def test_no_checksum_in_the_file_is_a_placeholder():
    for table, by_arch in yaml.safe_load(CHECKSUMS.read_text()).items():
        for arch, by_version in by_arch.items():
            for version, value in (by_version or {}).items():
                assert re.fullmatch(r"[0-9a-f]{64}", str(value)), f"{table}.{arch}.{version} is not a sha256"


def _run_guard(tmp_path, checksums: dict) -> subprocess.CompletedProcess:
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "vars_files": [str(PLAYBOOKS_DIR / "group_vars" / "all.yml"),
                            str(PLAYBOOKS_DIR / "roles" / "node" / "defaults" / "main.yml"),
                            str(tmp_path / "checksums.yml")],
             "tasks": [{"ansible.builtin.import_tasks": str(PLAYBOOKS_DIR / "roles" / "node" / "tasks" / "checksums.yml")}]}]
    (tmp_path / "checksums.yml").write_text(yaml.safe_dump(checksums))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    return subprocess.run([_tool("ansible-playbook"), "-i", "localhost,", "-e", "node_go_arch=amd64", str(tmp_path / "play.yml")],
                          env=_env(tmp_path), capture_output=True, text=True, timeout=120)


def test_play_refuses_to_download_without_a_checksum(tmp_path):
    checksums = yaml.safe_load(CHECKSUMS.read_text())
    checksums["kubelet_checksums"]["amd64"].pop("v1.21.14", None)
    result = _run_guard(tmp_path, checksums)
    assert result.returncode != 0
    assert "No sha256 for kubelet_checksums[amd64][v1.21.14]" in result.stdout, result.stdout


def test_play_goes_on_when_every_checksum_is_there(tmp_path):
    pins = yaml.safe_load((PLAYBOOKS_DIR / "group_vars" / "all.yml").read_text())
    version = {"kubeadm": "kubernetes", "kubelet": "kubernetes", "kubectl": "kubernetes", "cni_plugins": "cni_plugins",
               "crictl": "crictl", "flannel_manifest": "flannel", "metrics_server_manifest": "metrics_server"}
    # Made-up digests: only the guard runs here, nothing is downloaded.
    checksums = {f"{name}_checksums": {"amd64" if "manifest" not in name else "all":
                                       {f"v{pins[pin + '_version']}": "0" * 64}} for name, pin in version.items()}
    result = _run_guard(tmp_path, checksums)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_insecure_tls_flag_anywhere():
    for path in PLAYBOOKS_DIR.rglob("*"):
        if path.is_file():
            text = path.read_text()
            for flag in ("--kubelet-insecure-tls", "--insecure-skip-tls-verify", "validate_certs: false"):
                assert flag not in text, f"{path.relative_to(PLAYBOOKS_DIR)} has {flag}"


def test_kubelets_ask_the_cluster_ca_for_serving_certificates():
    template = (PLAYBOOKS_DIR / "roles" / "control_plane" / "templates" / "kubeadm-config.yaml.j2").read_text()
    kubelet = next(d for d in template.split("\n---\n") if "kind: KubeletConfiguration" in d)
    assert yaml.safe_load(kubelet)["serverTLSBootstrap"] is True
    approve = [t for p, t in _task_files() if "serving certificate" in str(t.get("name"))]
    assert approve and "certificate approve" in approve[0]["ansible.builtin.shell"]
    worker = yaml.safe_load((PLAYBOOKS_DIR / "roles" / "worker" / "defaults" / "main.yml").read_text())
    # Only serving CSRs, only those not yet decided: never a client certificate.
    assert '.spec.signerName "kubernetes.io/kubelet-serving"' in worker["worker_pending_serving_csrs"]
    assert "not .status.conditions" in worker["worker_pending_serving_csrs"]
