"""Fast tests of rap.build.pause: upstream's flags read from its Makefile, the cached gcc build, its errors.

A fake gcc (a shell script) stands in for the compiler: nothing here compiles.
"""

from __future__ import annotations

import os

import pytest

from rap.build import BuildError, pause
from rap.build.source import Tree

# The lines of v1.21.14's build/pause/Makefile that the build reads.
MAKEFILE = """\
TAG = 3.5
REV = $(shell git describe --contains --always --match='v*')
CFLAGS = -Os -Wall -Werror -static -DVERSION=v$(TAG)-$(REV)
"""
FAKE_GCC = """#!/bin/sh
[ "$1" = --version ] && { echo "gcc (fake) $FAKE_GCC_VERSION"; exit 0; }
echo "$@" >> "$FAKE_GCC_LOG"
while [ $# -gt 0 ]; do [ "$1" = -o ] && { shift; echo built > "$1"; }; shift; done
# Failing after writing its output, as a linker can, so cleanup is tested too.
[ -n "$FAKE_GCC_FAIL" ] && { echo "ld: cannot find -lc" >&2; exit 1; }
exit 0
"""


def test_flags_are_the_makefiles_own_with_the_release_as_rev():
    assert pause.makefile_flags(MAKEFILE, "v1.21.14") == ["-Os", "-Wall", "-Werror", "-static",
                                                           "-DVERSION=v3.5-v1.21.14"]


def test_a_makefile_without_tag_or_cflags_is_named():
    with pytest.raises(BuildError, match=r"build/pause/Makefile has no 'TAG = \.\.\.' line"):
        pause.makefile_flags("CFLAGS = -static -DVERSION=v$(TAG)\n", "v1.21.14")
    with pytest.raises(BuildError, match="no 'CFLAGS = ...' line"):
        pause.makefile_flags("TAG = 3.5\n", "v1.21.14")


def test_flags_with_an_unknown_variable_or_without_static_are_refused():
    with pytest.raises(BuildError, match=r"other than TAG and REV .*\$\(ARCH\)"):
        pause.makefile_flags("TAG = 3.5\nCFLAGS = -static -march=$(ARCH)\n", "v1.21.14")
    with pytest.raises(BuildError, match="lacks -static"):
        pause.makefile_flags("TAG = 3.5\nCFLAGS = -Os -DVERSION=v$(TAG)\n", "v1.21.14")


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A tree holding build/pause, a fake gcc first on PATH, and build output under tmp_path."""
    src = tmp_path / "src"
    (src / "build/pause/linux").mkdir(parents=True)
    (src / pause.PAUSE_SOURCE).write_text("int main(void) { return 0; }\n")
    (src / pause.PAUSE_MAKEFILE).write_text(MAKEFILE)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    gcc = bindir / "gcc"
    gcc.write_text(FAKE_GCC)
    gcc.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GCC_LOG", str(tmp_path / "gcc.log"))
    monkeypatch.setenv("FAKE_GCC_VERSION", "12.2.0")
    monkeypatch.delenv("FAKE_GCC_FAIL", raising=False)
    monkeypatch.setenv("RAP_BUILD_OUT", str(tmp_path / "out"))
    tree = Tree(src=src, build_dir=tmp_path, version="v1.21.14")
    monkeypatch.setattr(pause, "prepare_tree", lambda k8s_src=None: tree)
    return tmp_path


def _gcc_runs(fake) -> list[str]:
    log = fake / "gcc.log"
    return log.read_text().splitlines() if log.exists() else []


def test_pause_is_compiled_once_then_reused_by_its_stamp(fake, capsys):
    out = pause.build_pause()
    assert out == fake / "out" / "pause" and out.read_text() == "built\n"
    runs = _gcc_runs(fake)
    assert len(runs) == 1
    assert runs[0].startswith("-Os -Wall -Werror -static -DVERSION=v3.5-v1.21.14 -o ")
    assert runs[0].endswith(str(fake / "src" / pause.PAUSE_SOURCE))
    assert pause.build_pause() == out
    assert len(_gcc_runs(fake)) == 1
    assert "pause: up to date" in capsys.readouterr().out


@pytest.mark.parametrize("change", ["source", "gcc", "force"])
def test_pause_is_rebuilt_when_an_input_changes_or_on_force(fake, monkeypatch, change):
    pause.build_pause()
    if change == "source":
        (fake / "src" / pause.PAUSE_SOURCE).write_text("int main(void) { return 1; }\n")
    elif change == "gcc":
        monkeypatch.setenv("FAKE_GCC_VERSION", "13.1.0")
    pause.build_pause(force=change == "force")
    assert len(_gcc_runs(fake)) == 2


def test_a_failing_gcc_is_one_error_naming_libc6_dev_and_leaves_nothing(fake, monkeypatch):
    monkeypatch.setenv("FAKE_GCC_FAIL", "1")
    with pytest.raises(BuildError, match=r"gcc failed to build pause.*-lc.*apt-get install gcc libc6-dev"):
        pause.build_pause()
    assert sorted(p.name for p in (fake / "out").iterdir()) == []


def test_missing_gcc_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(pause.shutil, "which", lambda name: None)
    with pytest.raises(BuildError, match=r"gcc was not found on PATH.*apt-get install gcc libc6-dev"):
        pause.find_gcc()


def test_a_tree_without_build_pause_is_named(fake):
    (fake / "src" / pause.PAUSE_SOURCE).unlink()
    with pytest.raises(BuildError, match=r"pause\.c is missing.*must hold build/pause"):
        pause.build_pause()
