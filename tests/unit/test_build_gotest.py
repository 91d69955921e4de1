"""Fast tests of rap.build.gotest.

Nothing here runs go build or downloads anything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rap.build import BuildError, gotest


def test_test_proxy_is_not_collected_by_pytest():
    assert gotest.test_proxy.__test__ is False
    assert gotest.test_args.__test__ is False

def test_the_whole_package_runs_under_the_race_detector():
    args = gotest.test_args(Path("/o.json"))
    assert "-race" in args
    assert "-run" not in args  # upstream's tests too, not only rap_patch's
    assert args[args.index("-overlay") + 1] == "/o.json"
    assert gotest.test_args(Path("/o.json"), run="^TestRAPVectors$")[-2:] == ["-run", "^TestRAPVectors$"]

def test_race_turns_cgo_on_for_the_tests_only(tmp_path):
    (tmp_path / "gcc").write_text("#!/bin/sh\n")
    (tmp_path / "gcc").chmod(0o755)
    build_env = {"CGO_ENABLED": "0", "PATH": str(tmp_path)}
    assert gotest.race_env(build_env)["CGO_ENABLED"] == "1"
    assert build_env["CGO_ENABLED"] == "0"  # the binaries' builds stay static

def test_race_without_a_c_compiler_says_what_to_install(tmp_path):
    with pytest.raises(BuildError, match="-race needs cgo.*'gcc'.*apt-get install gcc"):
        gotest.race_env({"PATH": str(tmp_path)})
    with pytest.raises(BuildError, match="'my-cc'"):
        gotest.race_env({"PATH": str(tmp_path), "CC": "my-cc -m64"})

def test_the_log_names_proxysocket_go_when_the_patch_replaces_it(tmp_path):
    for name in ("rap.go", "proxysocket.go", "rap_config.go"):
        (tmp_path / name).write_text("package userspace\n")
    assert gotest.replaced_note(tmp_path / "rap.go") == "proxysocket.go -> its own, "
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "rap.go").write_text("package userspace\n")
    assert gotest.replaced_note(lone / "rap.go") == ""
