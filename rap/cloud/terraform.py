"""Terraform for infra/: find or build the binary, find credentials, run it.

Credentials stay where the user keeps them: this module only checks that one
exists and never reads, copies, prints or logs its contents.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

from rap.build import BuildError
from rap.build.toolchain import find_go
from rap.cloud import CloudError
from rap.paths import REPO, cache_dir
from rap.status import Status

# Progress on stderr, as ``[cloud] ...`` lines: stdout keeps what a command returns (a path, a plan).
_status = Status("cloud", stderr=True)

INFRA_DIR = REPO / "infra"
# The last release under the MPL: it builds from the Go module proxy, where
# later (BUSL) releases are not something we want to fetch on users' behalf.
TERRAFORM_VERSION = "1.5.7"
TERRAFORM_MODULE = "github.com/hashicorp/terraform"
PLAN_FILE = "rap.tfplan"

ADC_HINT = (
    "run `gcloud auth application-default login`, or point "
    "GOOGLE_APPLICATION_CREDENTIALS at a service-account key file"
)


# ---- the binary ------------------------------------------------------------

def cached_terraform() -> Path:
    """Where ``install_terraform`` puts the binary it builds."""
    return cache_dir() / "tools" / f"terraform-{TERRAFORM_VERSION}" / "terraform"


def find_terraform() -> Path | None:
    """The project's pinned build first, then a terraform on PATH."""
    cached = cached_terraform()
    if cached.is_file():
        return cached
    on_path = shutil.which("terraform")
    return Path(on_path) if on_path else None


def terraform_version(binary: Path | str) -> tuple[int, ...] | None:
    """(major, minor, patch) of a terraform binary, None if it does not answer."""
    try:
        out = subprocess.run([str(binary), "version", "-json"], capture_output=True, text=True, timeout=30)
        return tuple(int(x) for x in json.loads(out.stdout)["terraform_version"].split("-")[0].split("."))
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return None


def require_terraform() -> Path:
    found = find_terraform()
    if found is None:
        raise CloudError(
            "terraform not found: run `invoke install-terraform` to build "
            f"Terraform {TERRAFORM_VERSION} with Go into {cached_terraform().parent}, "
            "or install terraform >= 1.5 and put it on PATH"
        )
    return found


def install_terraform(go: str | None = None, force: bool = False) -> Path:
    """Build Terraform with ``go install``; reuse the build, or a usable one on PATH.

    infra/ needs >= 1.5 and < 2; a terraform on PATH in that range saves the
    few minutes the build takes, unless ``force``.
    """
    target = cached_terraform()
    if target.is_file():
        _status.say(f"terraform {TERRAFORM_VERSION} already built: {target}")
        return target
    on_path = shutil.which("terraform")
    if on_path and not force and (1, 5) <= (terraform_version(on_path) or (0,)) < (2,):
        _status.say(f"using terraform on PATH: {on_path}")
        return Path(on_path)
    try:
        go = go or find_go()  # the project's one Go lookup (rap.build.toolchain)
    except BuildError as exc:
        raise CloudError(f"building terraform needs Go (1.20 or newer): {exc}; or install terraform yourself") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(target.parent), "GOFLAGS": "-mod=mod"}
    cmd = [go, "install", f"{TERRAFORM_MODULE}@v{TERRAFORM_VERSION}"]
    _status.say(f"building terraform {TERRAFORM_VERSION} (a few minutes the first time) ...")
    if subprocess.run(cmd, env=env, cwd=target.parent).returncode != 0 or not target.is_file():
        raise CloudError(f"`{' '.join(cmd)}` failed; see its output above")
    return target


# ---- credentials -----------------------------------------------------------

def adc_file(env: dict | None = None, home: Path | None = None) -> Path:
    """gcloud's application-default credentials file (honours CLOUDSDK_CONFIG)."""
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    config = env.get("CLOUDSDK_CONFIG") or str(home / ".config" / "gcloud")
    return Path(config) / "application_default_credentials.json"


def find_credentials(env: dict | None = None, home: Path | None = None) -> str:
    """Say where the Google provider will find credentials, or raise.

    The answer names a source (a variable or a path), never its contents.
    """
    env = os.environ if env is None else env
    named = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if named:
        if not Path(named).expanduser().is_file():
            raise CloudError(f"GOOGLE_APPLICATION_CREDENTIALS names {named}, which is not a readable file: fix the path, or {ADC_HINT}")
        return "GOOGLE_APPLICATION_CREDENTIALS"
    for var in ("GOOGLE_CREDENTIALS", "GOOGLE_OAUTH_ACCESS_TOKEN"):
        if env.get(var):
            return var
    adc = adc_file(env, home)
    if adc.is_file():
        return str(adc)
    raise CloudError(f"no Google Cloud credentials found (GOOGLE_APPLICATION_CREDENTIALS is unset and {adc} does not exist): {ADC_HINT}")


# ---- running it ------------------------------------------------------------

def prepare_workdir(workdir: Path, tfvars: dict) -> Path:
    """Copy infra/*.tf into the cluster's state directory and write its vars.

    Terraform runs there, not in infra/, so state and provider downloads stay
    out of the checkout and each cluster name has its own state.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("*.tf"):
        old.unlink()
    for tf in INFRA_DIR.glob("*.tf"):
        shutil.copy2(tf, workdir / tf.name)
    (workdir / "terraform.tfvars.json").write_text(json.dumps(tfvars, indent=2) + "\n")
    return workdir


class Terraform:
    """The Terraform steps of up/down, through python-terraform."""

    def __init__(self, workdir: Path, binary: Path):
        try:
            from python_terraform import Terraform as _Tf
        except ImportError:
            raise CloudError("python-terraform is not installed: pip install -e '.[cloud]'") from None
        self.workdir = workdir
        self._tf = _Tf(working_dir=str(workdir), terraform_bin_path=str(binary))

    def _run(self, *args: str, capture: bool = False) -> str:
        # python-terraform's own helpers add flags newer Terraform rejects
        # (destroy -force), so each command spells out its flags here.
        cmd, *rest = args
        code, out, _err = self._tf.cmd(cmd, *rest, capture_output=capture, no_color=_flag())
        if code != 0:
            raise CloudError(f"terraform {cmd} failed (exit {code}); its output above says why")
        return out or ""

    def init(self) -> None:
        self._run("init", "-input=false")

    def plan(self, destroy: bool = False) -> dict:
        """Plan into PLAN_FILE; return the plan as JSON for the summary."""
        args = ["plan", "-input=false", f"-out={PLAN_FILE}"] + (["-destroy"] if destroy else [])
        self._run(*args)
        return json.loads(self._run("show", "-json", PLAN_FILE, capture=True))

    def apply(self) -> None:
        self._run("apply", "-input=false", PLAN_FILE)

    def outputs(self) -> dict:
        return json.loads(self._run("output", "-json", capture=True))

    def has_state(self) -> bool:
        state = self.workdir / "terraform.tfstate"
        return state.is_file() and bool(json.loads(state.read_text()).get("resources"))


def _flag():
    from python_terraform import IsFlagged

    return IsFlagged


def summarize_plan(plan: dict) -> list[str]:
    """One line per action and resource type: 'create 3 google_compute_instance'."""
    counts: Counter = Counter()
    for change in plan.get("resource_changes", []):
        actions = [a for a in change["change"]["actions"] if a != "no-op"]
        if actions:
            counts[("/".join(actions), change["type"])] += 1
    return [f"{action} {n} {rtype}" for (action, rtype), n in sorted(counts.items())]
