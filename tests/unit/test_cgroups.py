"""rap.localcluster.cgroups without touching a cgroup: hierarchy detection and group names."""

from __future__ import annotations

from pathlib import Path

import pytest

from rap.localcluster import cgroups

V1_MOUNTS = """\
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""


def test_detect_v1_separate_and_comounted():
    layout = cgroups.detect(V1_MOUNTS)
    assert layout.version == 1 and layout.mount("cpuacct") == Path("/sys/fs/cgroup/cpuacct")
    co = cgroups.detect("cgroup /c/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\ncgroup /c/memory cgroup rw,memory 0 0\n")
    assert co.roots() == [Path("/c/cpu,cpuacct"), Path("/c/memory")]
    assert cgroups.Cgroup("rap-x/node-1/", co).dirs() == [Path("/c/cpu,cpuacct/rap-x/node-1"),
                                                           Path("/c/memory/rap-x/node-1")]


def test_detect_v2(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    layout = cgroups.detect(f"cgroup2 {tmp_path} cgroup2 rw 0 0\n")
    assert layout.version == 2 and layout.roots() == [tmp_path]


def test_missing_controller_names_it_and_the_mount(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("hugetlb\n")
    text = V1_MOUNTS.replace("cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n", "")
    text = text.replace("/sys/fs/cgroup/unified", str(tmp_path))
    with pytest.raises(cgroups.CgroupError) as err:
        cgroups.detect(text)
    msg = str(err.value)
    assert "'memory'" in msg and "/sys/fs/cgroup/memory" in msg and str(tmp_path) in msg and "hugetlb" in msg


@pytest.mark.parametrize("name", ["", "/", "a/../b", "a//b/./c"])
def test_bad_cgroup_names(name):
    with pytest.raises(cgroups.CgroupError, match="bad cgroup name"):
        cgroups.Cgroup(name, cgroups.detect(V1_MOUNTS))

