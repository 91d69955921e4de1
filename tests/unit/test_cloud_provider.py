"""rap.cloud.provider: the mirror layouts it recognises, where its build puts
the provider (and that it builds once), and that real Terraform installs
hashicorp/google from the mirror alone with the CLI config it writes.

A dummy executable stands in for the provider: ``terraform init`` only installs
it (it never runs a provider), which is all these tests ask of it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rap.build import BuildError
from rap.cloud import provider
from rap.cloud.terraform import find_terraform

GOOGLE = "registry.terraform.io/hashicorp/google"
WANTS_GOOGLE = 'terraform {\n  required_providers {\n    google = {\n      source  = "hashicorp/google"\n' \
               '      version = "~> 5.40"\n    }\n  }\n}\n'


def _unpacked(mirror, version, target="linux_amd64", source=GOOGLE):
    binary = provider.unpacked_binary(mirror, version, target, source)
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\nexit 1\n")
    binary.chmod(0o755)


def test_mirrored_versions_reads_both_layouts_for_this_platform_only(tmp_path):
    _unpacked(tmp_path, "5.40.0")
    _unpacked(tmp_path, "5.9.0")
    _unpacked(tmp_path, "5.41.0", target="darwin_arm64")
    _unpacked(tmp_path, "5.44.0", source="registry.terraform.io/hashicorp/google-beta")
    (tmp_path / GOOGLE / "terraform-provider-google_5.45.2_linux_amd64.zip").write_bytes(b"PK")
    (tmp_path / GOOGLE / "terraform-provider-google_5.46.0_windows_amd64.zip").write_bytes(b"PK")
    (tmp_path / GOOGLE / "5.47.0" / "linux_amd64").mkdir(parents=True)  # an empty leftover
    assert provider.mirrored_versions(tmp_path, target="linux_amd64") == ["5.9.0", "5.40.0", "5.45.2"]


def test_unpacked_binary_is_terraforms_layout(tmp_path):
    assert provider.unpacked_binary(tmp_path, "5.40.0", "linux_amd64") \
        == tmp_path / "registry.terraform.io/hashicorp/google/5.40.0/linux_amd64/terraform-provider-google_v5.40.0"


def test_no_mirror_holds_nothing(tmp_path):
    assert provider.mirrored_versions(tmp_path / "absent") == []


def test_mirror_lives_in_the_project_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RAP_CACHE", str(tmp_path))
    assert provider.mirror_dir() == tmp_path / "terraform" / "mirror"


def test_build_installs_the_pinned_module_into_the_mirror_once(tmp_path, monkeypatch):
    monkeypatch.setenv("RAP_CACHE", str(tmp_path / "cache"))
    calls = []

    def fake_go(args, cwd, env, what):
        calls.append(args)
        assert env["GOMODCACHE"].startswith(str(tmp_path / "cache")) and env["CGO_ENABLED"] == "0"
        (Path(env["GOBIN"]) / "terraform-provider-google").write_text("built")

    monkeypatch.setattr(provider, "run_go", fake_go)
    built = provider.build_google_provider()
    assert built == provider.unpacked_binary(provider.mirror_dir(), provider.BUILT_VERSION)
    assert built.read_text() == "built"
    assert calls == [["install", "-trimpath", f"{provider.BUILT_MODULE}@{provider.BUILT_MODULE_VERSION}"]]
    assert provider.mirrored_versions(provider.mirror_dir()) == [provider.BUILT_VERSION]
    assert provider.build_google_provider() == built and len(calls) == 1, "a second call must reuse the build"


def test_a_failed_build_leaves_the_mirror_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("RAP_CACHE", str(tmp_path))

    def failing_go(args, cwd, env, what):
        raise BuildError(f"{what} failed (exit 1)")

    monkeypatch.setattr(provider, "run_go", failing_go)
    with pytest.raises(BuildError):
        provider.build_google_provider()
    assert provider.mirrored_versions(provider.mirror_dir()) == []


def test_offline_env_overrides_the_users_cli_config_and_leaves_it_alone(tmp_path):
    users = {"TF_CLI_CONFIG_FILE": "/home/u/.terraformrc", "TF_PLUGIN_CACHE_DIR": "/home/u/cache", "KEEP": "1"}
    env = provider.offline_env(tmp_path / "rc", tmp_path / "mirror", env=users)
    assert env["TF_CLI_CONFIG_FILE"] == str(tmp_path / "rc") and "TF_PLUGIN_CACHE_DIR" not in env
    assert env["KEEP"] == "1" and users["TF_CLI_CONFIG_FILE"] == "/home/u/.terraformrc"
    assert str(tmp_path / "mirror") in (tmp_path / "rc").read_text()


def _init(tmp_path, mirror) -> subprocess.CompletedProcess:
    tf = find_terraform()
    if tf is None:
        pytest.skip("terraform not found on PATH or in the project cache: run `invoke install-terraform`")
    work = tmp_path / "work"
    work.mkdir()
    (work / "versions.tf").write_text(WANTS_GOOGLE)
    env = {**provider.offline_env(tmp_path / "terraform.rc", mirror), "TF_IN_AUTOMATION": "1",
           "TF_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([str(tf), "init", "-backend=false", "-input=false", "-no-color"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)


def test_terraform_init_installs_google_from_the_mirror(tmp_path):
    _unpacked(tmp_path / "mirror", "5.40.0")
    result = _init(tmp_path, tmp_path / "mirror")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Installing hashicorp/google v5.40.0" in result.stdout
    assert (tmp_path / "data" / "providers" / GOOGLE / "5.40.0").is_dir()


def test_terraform_init_never_looks_past_the_mirror_for_google(tmp_path):
    (tmp_path / "mirror").mkdir()
    result = _init(tmp_path, tmp_path / "mirror")
    assert result.returncode != 0
    said = " ".join(result.stderr.split())  # Terraform wraps its messages at 80 columns
    # The mirror is the one place searched: no registry was asked.
    assert f"was not found in any of the search locations - {tmp_path / 'mirror'}" in said, result.stderr
    assert said.endswith(str(tmp_path / "mirror")), result.stderr
