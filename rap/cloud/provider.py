"""The hashicorp/google provider for an offline ``terraform init``: a filesystem
mirror under the project cache, a build of the newest provider found on the
Go module proxy, and a CLI config that points Terraform at the mirror.

Terraform cannot reach its registry here, so ``terraform validate`` of infra/
needs the provider already on disk. The mirror is ``$RAP_CACHE/terraform/mirror``,
in either layout Terraform reads (unpacked
``<version>/<platform>/terraform-provider-google_v<version>``, or the packed
``terraform-provider-google_<version>_<platform>.zip`` that ``terraform
providers mirror`` writes). The CLI config names the mirror as the only source
of hashicorp/google, so Terraform never falls back to the network for it.

Which provider can be built: the module declares its path without a
major-version suffix, so a release tag such as v5.40.0 is no Go module version
(neither plain nor +incompatible); only a pseudo-version of a commit can name
one, and the Go module proxy this project reaches refused every 5.x spelling
tried. The newest commit found that it serves is of the 4.9.0 development line
of February 2022 (BUILT_*; one of September 2022 was refused), which
``build_google_provider`` puts in the mirror under a prerelease version no
real release has, so it never satisfies infra/'s ``~> 5.40``: a test asks for
it by name, to check infra/ against that schema. The 5.x provider infra/ pins
has to be copied into the mirror by hand (docs/cloud.md).

Not here: running Terraform (rap.cloud.terraform).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import sys
from pathlib import Path

from rap.build.toolchain import go_env, run_go
from rap.errors import UserError
from rap.paths import cache_dir
from rap.status import Status

_status = Status("cloud", stderr=True)

GOOGLE_SOURCE = "registry.terraform.io/hashicorp/google"
BUILT_MODULE = "github.com/hashicorp/terraform-provider-google"
# The commit's CHANGELOG heads "4.9.0 (Unreleased)".
BUILT_MODULE_VERSION = "v1.20.1-0.20220201002249-bc5fcb3c89a5"
BUILT_VERSION = "4.9.0-dev.20220201"


def mirror_dir() -> Path:
    """The project's provider mirror (it need not exist)."""
    return cache_dir() / "terraform" / "mirror"


def host_platform() -> str:
    """Terraform's name for this machine's platform, e.g. linux_amd64."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return f"{platform.system().lower()}_{arch}"


def _version_key(version: str) -> tuple:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.-]", version))


def unpacked_binary(mirror: Path, version: str, target: str | None = None, source: str = GOOGLE_SOURCE) -> Path:
    """Where the unpacked layout keeps one version of a provider."""
    name = source.rsplit("/", 1)[-1]
    return mirror / source / version / (target or host_platform()) / f"terraform-provider-{name}_v{version}"


def mirrored_versions(mirror: Path, source: str = GOOGLE_SOURCE, target: str | None = None) -> list[str]:
    """Versions of ``source`` the mirror holds for ``target`` (default: this machine), oldest first."""
    target = target or host_platform()
    base = mirror / source
    name = source.rsplit("/", 1)[-1]
    found = set()
    if base.is_dir():
        for entry in base.iterdir():
            packed = re.fullmatch(rf"terraform-provider-{re.escape(name)}_(.+)_{re.escape(target)}\.zip", entry.name)
            if packed and entry.is_file():
                found.add(packed.group(1))
            elif entry.is_dir() and any((entry / target).glob(f"terraform-provider-{name}*")):
                found.add(entry.name)
    return sorted(found, key=_version_key)


def build_google_provider(mirror: Path | None = None) -> Path:
    """Build BUILT_MODULE at BUILT_MODULE_VERSION into the mirror; reuse an earlier build.

    About 3 minutes and 1.2 GB of module and build cache the first time.
    """
    target = unpacked_binary(mirror or mirror_dir(), BUILT_VERSION)
    if target.is_file():
        _status.say(f"hashicorp/google {BUILT_VERSION} already built: {target}")
        return target
    cache = cache_dir()
    staging = cache / "terraform" / "build"
    staging.mkdir(parents=True, exist_ok=True)
    env = {**go_env(cache), "GOBIN": str(staging)}
    _status.say(f"building hashicorp/google {BUILT_VERSION} from the Go module proxy (about 3 minutes the first time)")
    run_go(["install", "-trimpath", f"{BUILT_MODULE}@{BUILT_MODULE_VERSION}"], cwd=staging, env=env,
           what=f"building hashicorp/google {BUILT_VERSION}")
    target.parent.mkdir(parents=True, exist_ok=True)
    # A rename within the cache: an interrupted build never leaves a half-written provider in the mirror.
    os.replace(staging / "terraform-provider-google", target)
    shutil.rmtree(staging, ignore_errors=True)
    return target


def cli_config(mirror: Path, source: str = GOOGLE_SOURCE) -> str:
    """A Terraform CLI config: ``source`` from the mirror only, anything else as usual."""
    # JSON string quoting is valid HCL string quoting for any path.
    path, only = json.dumps(str(mirror)), json.dumps([source])
    return (
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {path}\n"
        f"    include = {only}\n"
        "  }\n"
        "  direct {\n"
        f"    exclude = {only}\n"
        "  }\n"
        "}\n"
    )


def offline_env(config_file: Path, mirror: Path, env: dict | None = None) -> dict[str, str]:
    """``env`` with Terraform pointed at a CLI config written to ``config_file``.

    The user's own CLI config (``~/.terraformrc`` or their TF_CLI_CONFIG_FILE)
    is never read or changed: the variable is overridden in the returned copy.
    """
    config_file.write_text(cli_config(mirror))
    out = dict(os.environ if env is None else env)
    # A plugin cache would be a second source beside the mirror.
    out.pop("TF_PLUGIN_CACHE_DIR", None)
    out["TF_CLI_CONFIG_FILE"] = str(config_file)
    return out


def missing_message(mirror: Path, major: str) -> str:
    """What is missing and how to supply it, for a test's skip or an error."""
    return (
        f"no hashicorp/google {major}.x is in the project's mirror {mirror} (for {host_platform()}), "
        f"and none can be built here: the Go module proxy serves no {major}.x version of {BUILT_MODULE} "
        "(docs/cloud.md). On a machine that reaches the Terraform registry, "
        f"`terraform -chdir=infra providers mirror -platform={host_platform()} {mirror}` fills it"
    )


def main() -> int:
    """``python3 -m rap.cloud.provider``: build the provider into the mirror (scripts/install.sh)."""
    try:
        print(build_google_provider())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
