"""Fast tests of rap.localcluster.netdelay.runtime: commands through rap.localcluster.sh, stopping through procs.

The system commands are recorded by a fake rap.localcluster.sh.run: nothing
here needs root, iptables or a namespace.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rap.localcluster import netdelay as nd
from rap.localcluster import sh
from rap.localcluster.netdelay import runtime

NODE = nd.NodeAddr(1, "rap-node-1", "10.213.0.11", "10.214.1.0/24")


def test_stop_delayer_leaves_foreign_pid_alone():
    assert nd.stop_delayer(os.getpid()) is None  # this pytest is not a netdelay process


class FakeSh:
    """sh.run that records each command and fails those that contain ``fail``."""

    def __init__(self, fail: str | None = None, stdout: str = "") -> None:
        self.cmds: list[str] = []
        self.fail, self.stdout = fail, stdout

    def __call__(self, cmd, check=True, netns=None):
        line = " ".join(cmd if netns is None else ["ip", "netns", "exec", netns, *cmd])
        self.cmds.append(line)
        if self.fail and self.fail in line and check:
            raise sh.ToolError(f"`{line}` failed: iptables: No chain/target/match by that name.")
        return self.stdout


@pytest.fixture
def fake_sh(monkeypatch):
    fake = FakeSh()
    monkeypatch.setattr(sh, "run", fake)  # sh.quiet calls sh.run too
    return fake


def test_install_rules_clears_old_rules_then_adds_in_the_namespace(fake_sh):
    rules = nd.plan({(1, 2): 40.0}, [NODE, nd.NodeAddr(2, "rap-node-2", "10.213.0.12")])[1]
    nd.install_rules(NODE, rules)
    added = [c for c in fake_sh.cmds if " -N " in c or " -A " in c]
    assert added[0] == "ip netns exec rap-node-1 iptables -w -t mangle -N RAP-NETDELAY"
    assert added[-1] == "ip netns exec rap-node-1 iptables -w -t mangle -A PREROUTING -i eth0 -j RAP-NETDELAY"
    assert fake_sh.cmds.index(added[0]) > 0  # remove_rules ran first


def test_install_rules_failure_is_a_netdelay_error_with_the_nfqueue_hint(fake_sh):
    fake_sh.fail = "NFQUEUE"
    rules = nd.plan({(1, 2): 40.0}, [NODE, nd.NodeAddr(2, "rap-node-2", "10.213.0.12")])[1]
    with pytest.raises(nd.NetDelayError, match=r"failed: iptables.*\n\(the iptables NFQUEUE target is missing"):
        nd.install_rules(NODE, rules)
    assert fake_sh.cmds[-1].endswith("-X RAP-NETDELAY")  # what was added is removed again


def test_remove_rules_is_quiet_when_nothing_is_there(fake_sh):
    fake_sh.fail = "iptables"
    assert nd.remove_rules(NODE) is False
    assert len(fake_sh.cmds) == 4  # each jump tried once, then flush and delete of the chain


def test_find_delayers_reads_ip_netns_pids(fake_sh):
    fake_sh.stdout = f"{os.getpid()}\n"
    assert nd.find_delayers("rap-node-1") == []  # pytest is not netdelay
    assert fake_sh.cmds == ["ip netns pids rap-node-1"]


def test_missing_tool_is_a_netdelay_error(monkeypatch):
    monkeypatch.setattr(runtime.os, "geteuid", lambda: 0)  # root is checked first: pass it, on any machine
    monkeypatch.setattr(sh.shutil, "which", lambda name: None)
    with pytest.raises(nd.NetDelayError, match=r"^ip not found: install Debian's iproute2"):
        nd.check_support()


def test_stop_delayer_pid_goes_through_procs_terminate(monkeypatch):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        monkeypatch.setattr(runtime, "_is_delayer", lambda pid: pid == child.pid)
        assert nd.stop_delayer(child.pid, timeout=5) is None
        assert not runtime.procs.alive(child.pid)
    finally:
        child.kill()
        child.wait()


def test_remove_stops_every_delayer_found(monkeypatch, fake_sh):
    stopped = []
    monkeypatch.setattr(runtime, "_is_delayer", lambda pid: pid in (41, 42))
    monkeypatch.setattr(runtime.procs, "terminate", lambda pids, timeout: stopped.append(sorted(pids)))
    fake_sh.fail, fake_sh.stdout = "iptables", "42\n7\n"  # no rules left; pids 42 and 7 in the namespace
    assert nd.remove([NODE], [41]) == ["netdelay pid 41", "netdelay pid 42"]
    assert stopped == [[41, 42]]
