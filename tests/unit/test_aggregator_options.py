"""``python3 -m rap.aggregator``'s options: help for each, one line naming the option for each bad value,
the table's ranges for RAP's settings, and SIGTERM ending the process cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from rap.aggregator import __main__ as cli
from rap.aggregator import options
from rap.aggregator.options import AggregatorOptionError, parse
from rap.config import FIELDS
from rap.paths import REPO


@pytest.fixture
def kubeconfig(tmp_path):
    """A kubeconfig of an API server that is not there (port 1 refuses)."""
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return str(path)


def test_defaults_are_the_tables(kubeconfig):
    o = parse(["--kubeconfig", kubeconfig])
    assert (o.namespace, o.publish_step, o.once, o.log_level) == ("kube-system", 0.05, False, "INFO")
    assert o.config.period_s == FIELDS["period_s"].default and o.config.cpu_threshold == FIELDS["cpu_threshold"].default
    o = parse(["--kubeconfig", kubeconfig, "--period", "2", "--cpu-threshold", "0.7", "--mem-threshold", "0.95",
               "--hysteresis", "0.05", "--publish-step", "0", "--namespace", "rap", "--once", "--log-level", "debug"])
    assert (o.config.period_s, o.config.cpu_threshold, o.config.mem_threshold, o.config.hysteresis) == (2, 0.7, 0.95, 0.05)
    assert (o.namespace, o.publish_step, o.once, o.log_level) == ("rap", 0.0, True, "DEBUG")


def test_help_explains_every_option():
    text = options.build_parser().format_help()
    for flag in ("--kubeconfig", "--namespace", "--period", "--cpu-threshold", "--mem-threshold", "--hysteresis",
                 "--publish-step", "--once", "--log-level"):
        assert flag in text
    assert FIELDS["cpu_threshold"].help.split(",")[0] in " ".join(text.split())


@pytest.mark.parametrize("args, names", [
    (["--period", "0"], "--period: must be > 0"),
    (["--period", "soon"], "--period: 'soon' is not a number"),
    (["--cpu-threshold", "1.5"], "--cpu-threshold: must be in (0, 1]"),
    (["--mem-threshold", "0"], "--mem-threshold: must be in (0, 1]"),
    (["--hysteresis", "1"], "--hysteresis: must be in [0, 1)"),
    (["--publish-step", "-0.1"], "--publish-step: must be in [0, 1]"),
    (["--publish-step", "nan"], "--publish-step: must be in [0, 1]"),
    (["--publish-step", "big"], "--publish-step: 'big' is not a number"),
    (["--namespace", "Kube_System"], "--namespace: 'Kube_System' is not a namespace name"),
    (["--log-level", "loud"], "--log-level: 'loud'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--period"], "--period: expected one argument"),
])
def test_a_bad_value_is_one_line_naming_the_option(kubeconfig, args, names):
    with pytest.raises(AggregatorOptionError) as info:
        parse(["--kubeconfig", kubeconfig, *args])
    assert names in str(info.value) and "\n" not in str(info.value)


def test_the_kubeconfig_must_exist_or_the_process_be_a_pod(tmp_path, monkeypatch):
    with pytest.raises(AggregatorOptionError, match=r"^--kubeconfig: .*nowhere is not a file"):
        parse(["--kubeconfig", str(tmp_path / "nowhere")])
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(AggregatorOptionError, match=r"^--kubeconfig: not given, and this is not a pod"):
        parse([])


def test_main_prints_one_line_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "kubeconfig"
    bad.write_text("just text\n")
    assert cli.main(["--kubeconfig", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"python3 -m rap.aggregator: --kubeconfig {bad}: not a usable kubeconfig")
    assert err.count("\n") == 1
    assert cli.main(["--kubeconfig", str(bad), "--period", "-1"]) == 2
    assert capsys.readouterr().err == "python3 -m rap.aggregator: --period: must be > 0 seconds, got -1.0\n"


def test_once_against_an_unreachable_api_server_fails_with_exit_1(kubeconfig):
    proc = subprocess.run([sys.executable, "-m", "rap.aggregator", "--kubeconfig", kubeconfig, "--once"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_sigterm_ends_the_loop_cleanly_while_the_api_server_is_unreachable(kubeconfig):
    proc = subprocess.Popen([sys.executable, "-m", "rap.aggregator", "--kubeconfig", kubeconfig, "--period", "0.2"],
                            cwd=REPO, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 30
        lines = []
        while time.monotonic() < deadline:  # until the first round has failed: the loop is running
            lines.append(proc.stderr.readline())
            if "round failed" in lines[-1]:
                break
        assert "round failed" in lines[-1], lines
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest
    assert "stopped (signal)" in rest and "Traceback" not in "".join(lines) + rest
    assert "".join(lines).count("round failed") == 1  # once per change of state, not once per period
