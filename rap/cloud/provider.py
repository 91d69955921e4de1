"""The hashicorp/google provider for an offline ``terraform init``: a filesystem
mirror under the project cache, and a CLI config that points Terraform at it.

Terraform cannot reach its registry here, so ``terraform validate`` of infra/
needs the provider already on disk. The mirror is where it is looked for:
``$RAP_CACHE/terraform/mirror``, in either layout Terraform reads (unpacked
``<version>/<platform>/terraform-provider-google_v<version>``, or the packed
``terraform-provider-google_<version>_<platform>.zip`` that ``terraform
providers mirror`` writes). The CLI config names the mirror as the only source
of hashicorp/google, so Terraform never falls back to the network for it.

Why the provider is not built here: its Go module declares its path without a
major-version suffix, so a release tag such as v5.40.0 is no Go module version
(neither plain nor +incompatible); only a pseudo-version of the tag's commit
could name it, and the Go module proxy this project reaches refused every 5.x
spelling tried (it serves v1.20.0 and 2020-2022 pseudo-versions: 3.x/4.x).

Not here: running Terraform (rap.cloud.terraform), or fetching the provider.
"""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

from rap.paths import cache_dir

GOOGLE_SOURCE = "registry.terraform.io/hashicorp/google"


def mirror_dir() -> Path:
    """The project's provider mirror (it need not exist)."""
    return cache_dir() / "terraform" / "mirror"


def host_platform() -> str:
    """Terraform's name for this machine's platform, e.g. linux_amd64."""
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower(),
                                                                           platform.machine().lower())
    return f"{platform.system().lower()}_{arch}"


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.-]", version))


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


def missing_message(mirror: Path) -> str:
    """What is missing and how to supply it, for a test's skip or an error."""
    return (
        f"the hashicorp/google provider is not in the project's mirror {mirror} (for {host_platform()}), "
        "and it is not built here: no 5.x version of github.com/hashicorp/terraform-provider-google is a "
        "Go module version the module proxy serves (docs/cloud.md). On a machine that reaches the Terraform registry, "
        f"`terraform -chdir=infra providers mirror -platform={host_platform()} {mirror}` fills it"
    )
