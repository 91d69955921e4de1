"""Run playbooks/site.yml through ansible-runner."""

from __future__ import annotations

import shutil
from pathlib import Path

from rap.cloud import CloudError
from rap.paths import REPO

PLAYBOOKS_DIR = REPO / "playbooks"
SITE = PLAYBOOKS_DIR / "site.yml"


def run_playbook(inventory: Path, private_data_dir: Path, extravars: dict | None = None,
                 playbook: Path = SITE) -> dict:
    """Run a playbook; return ansible-runner's per-host stats, raise on failure."""
    try:
        import ansible_runner
    except ImportError:
        raise CloudError("ansible-runner is not installed: pip install -e '.[cloud]'") from None
    if not shutil.which("ansible-playbook"):
        raise CloudError("ansible-playbook not found: pip install -e '.[cloud]' (it brings ansible-core)")
    private_data_dir.mkdir(parents=True, exist_ok=True)
    runner = ansible_runner.run(
        private_data_dir=str(private_data_dir),
        project_dir=str(playbook.parent),
        playbook=str(playbook),
        inventory=str(inventory),
        extravars=extravars or {},
        # playbooks/ansible.cfg holds the roles path and SSH settings;
        # ansible-runner turns host key checking off by default, which would
        # override the inventory's StrictHostKeyChecking=accept-new.
        envvars={"ANSIBLE_CONFIG": str(playbook.parent / "ansible.cfg"), "ANSIBLE_HOST_KEY_CHECKING": "True"},
    )
    stats = runner.stats or {}
    if runner.status != "successful":
        failed = sorted(set(stats.get("failures", {})) | set(stats.get("dark", {})))
        where = f" on {', '.join(failed)}" if failed else ""
        raise CloudError(f"{playbook.name} {runner.status}{where} (exit {runner.rc}); the task output above says why")
    return stats


def changed_hosts(stats: dict) -> dict[str, int]:
    """Hosts where the run changed something: empty on an idempotent re-run."""
    return {host: n for host, n in stats.get("changed", {}).items() if n}
