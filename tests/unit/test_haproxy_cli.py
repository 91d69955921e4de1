"""``python3 -m rap.localcluster.haproxy``: the options it accepts and one clear error for each bad one."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from rap.localcluster.haproxy import cli


@pytest.fixture
def argv(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("{}")

    def make(**over):
        base = {"--kubeconfig": str(kubeconfig), "--node": "node-1", "--cluster-ip": "10.215.0.10",
                "--port": "80", "--balance": "random(2)", "--workdir": str(tmp_path / "work")}
        base.update(over)
        return [x for k, v in base.items() if v is not None for x in (k, v)]

    return make


def test_good_options(argv):
    _, o = cli.parse_args(argv(**{"--poll-s": "0.25", "--listen-port": "10300"}))
    assert (o.cluster_ip, o.port, o.balance, o.listen_port, o.poll_s) == ("10.215.0.10", 80, "random(2)", 10300, 0.25)
    assert o.slots == 360  # every pod a local cluster can hold (9 nodes x 40)


@pytest.mark.parametrize("over,message", [
    ({"--cluster-ip": "10.215.0"}, "--cluster-ip: '10.215.0' is not an IPv4 address"),
    ({"--cluster-ip": "fd00::1"}, "--cluster-ip: 'fd00::1' is not an IPv4 address"),
    ({"--port": "0"}, "--port: must be 1..65535, got 0"),
    ({"--listen-port": "70000"}, "--listen-port: must be 1..65535, got 70000"),
    ({"--balance": "source"}, "--balance: 'source' is not an algorithm this peer runs; use leastconn, roundrobin"),
    ({"--slots": "0"}, "--slots: must be 1..4096, got 0"),
    ({"--poll-s": "0"}, r"--poll-s: must be in \(0, 60\] seconds, got 0.0"),
    ({"--kubeconfig": "/nonexistent/kc"}, "--kubeconfig: /nonexistent/kc does not exist"),
    ({"--port": "eighty"}, "argument --port: invalid int value: 'eighty'"),
    ({"--balance": None}, "the following arguments are required: --balance"),
])
def test_bad_option_is_one_line_and_exit_2(argv, capsys, over, message):
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(argv(**over))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1
    assert re.search(message, err), err


def test_a_workdir_that_is_a_file_is_refused(argv, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit):
        cli.parse_args(argv(**{"--workdir": str(tmp_path / "file")}))
    assert "--workdir: " in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy (scripts/install.sh)")
def test_an_unusable_kubeconfig_exits_1_with_one_error_line(argv, tmp_path):
    (tmp_path / "kubeconfig").write_text("not: [a kubeconfig")
    proc = subprocess.run([sys.executable, "-m", "rap.localcluster.haproxy", *argv()], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "--kubeconfig" in errors[0] and "not a usable kubeconfig" in errors[0], proc.stderr
    assert not (tmp_path / "work" / "admin.sock").exists()  # nothing was started


def test_a_missing_haproxy_exits_1_naming_install(argv):
    proc = subprocess.run([sys.executable, "-m", "rap.localcluster.haproxy", *argv(**{"--haproxy": "no-haproxy"})],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "no-haproxy not found: run scripts/install.sh" in proc.stderr



V1 = "12:cpu,cpuacct:/rap-local/node-1\n11:memory:/rap-local/node-1\n1:name=systemd:/init.scope\n"


def test_in_cgroup_reads_proc_self_cgroup():
    assert cli.in_cgroup("rap-local/node-1", V1)
    assert cli.in_cgroup("rap-local/node-1", "0::/rap-local/node-1\n")  # cgroup v2
    assert not cli.in_cgroup("rap-local/node-1", "12:cpu,cpuacct:/\n0::/user.slice\n")
    assert not cli.in_cgroup("rap-local/node-1", "12:cpu:/rap-local/node-11\n")


def test_haproxy_waits_until_the_cluster_has_moved_the_agent(argv, monkeypatch, tmp_path):
    order = []
    proc = tmp_path / "cgroup"
    proc.write_text("12:cpu,cpuacct:/\n")
    real = cli.wait_in_cgroup

    def moved_later(name, timeout=cli.CGROUP_WAIT_S, path=None):
        order.append("waiting")
        proc.write_text(V1)  # the cluster's join_node_cgroup
        return real(name, timeout, str(proc))

    class FakeAgent:
        def __init__(self, opts):
            pass

        def run(self):
            order.append("agent")
            return 0

    monkeypatch.setattr(cli, "wait_in_cgroup", moved_later)
    monkeypatch.setattr(cli, "Agent", FakeAgent)
    assert cli.main(argv(**{"--cgroup": "rap-local/node-1"})) == 0
    assert order == ["waiting", "agent"]


def test_an_agent_never_moved_does_not_start_haproxy(argv, monkeypatch, tmp_path, caplog):
    proc = tmp_path / "cgroup"
    proc.write_text("12:cpu,cpuacct:/\n")
    real = cli.wait_in_cgroup
    monkeypatch.setattr(cli, "wait_in_cgroup", lambda name: real(name, 0.1, str(proc)))
    monkeypatch.setattr(cli, "Agent", lambda opts: pytest.fail("the agent (and haproxy) must not start"))
    assert cli.main(argv(**{"--cgroup": "rap-local/node-9"})) == 1
    assert "not moved into cgroup rap-local/node-9" in caplog.text
