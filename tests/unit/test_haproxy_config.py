"""rap.localcluster.haproxy: haproxy.cfg rendering, haproxy's own check of it, finding and dating haproxy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rap.errors import OptionError, UserError
from rap.localcluster.haproxy import binary, config
from rap.localcluster.haproxy.errors import HaproxyError

HAVE_HAPROXY = shutil.which("haproxy") is not None


def _settings(**kw) -> config.Settings:
    return config.Settings(**{"balance": "random(2)", "socket": Path("/run/x/admin.sock"), "listen_port": 10280,
                              "slots": 8, **kw})


def test_render_has_the_listener_backend_slots_and_socket():
    text = config.render(_settings())
    lines = [line.strip() for line in text.splitlines()]
    assert "bind 127.0.0.1:10280" in lines
    assert "balance random(2)" in lines
    assert "server-template s 1-8 0.0.0.0:0 disabled" in lines
    assert "stats socket /run/x/admin.sock mode 600 level admin" in lines
    assert "mode tcp" in lines and "nbthread 1" in lines and "maxconn 4096" in lines


def test_render_keeps_connections_open_longer_than_the_benchmark_client_waits():
    lines = [line.strip() for line in config.render(_settings()).splitlines()]
    for side in ("client", "server"):
        assert f"timeout {side} 30s" in lines  # > the load generator's 10 s


def test_render_has_no_health_checks_and_no_logging():
    text = config.render(_settings())
    assert " check" not in text and "option httpchk" not in text
    assert "\n    log " not in text


@pytest.mark.parametrize("balance", ["leastconn", "random(2)", "random", "roundrobin", "random(9)"])
def test_balances_accepted(balance):
    assert f"balance {balance}\n" in config.render(_settings(balance=balance))


@pytest.mark.parametrize("balance", ["", "random(0)", "random(10)", "least", "leastconn; x", "source"])
def test_bad_balance_is_one_option_error_naming_the_choices(balance):
    with pytest.raises(OptionError, match=r"--balance: .*leastconn, roundrobin, random"):
        config.render(_settings(balance=balance))


def test_zero_slots_is_an_error():
    with pytest.raises(OptionError, match="--slots"):
        config.render(_settings(slots=0))


@pytest.mark.skipif(not HAVE_HAPROXY, reason="needs haproxy (scripts/install.sh)")
@pytest.mark.parametrize("balance", ["leastconn", "random(2)"])
def test_haproxy_accepts_the_rendered_config(tmp_path, balance):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(config.render(_settings(balance=balance, socket=tmp_path / "admin.sock", slots=360)))
    proc = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ALERT" not in proc.stdout + proc.stderr


# -- binary --


@pytest.mark.parametrize("text,want", [
    ("HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/\n", (2, 6, "2.6.12-1+deb12u4")),
    ("HA-Proxy version 1.8.19-1+deb10u3 2020/08/01\n", (1, 8, "1.8.19-1+deb10u3")),
    ("HAProxy version 3.0.5 2024/09/19\n", (3, 0, "3.0.5")),
])
def test_parse_version(text, want):
    assert binary.parse_version(text) == want


def test_unreadable_version_names_the_fix():
    with pytest.raises(HaproxyError, match="scripts/install.sh"):
        binary.parse_version("haproxy: command not understood")


def _fake_haproxy(tmp_path, version: str) -> str:
    path = tmp_path / "haproxy"
    path.write_text(f"#!/bin/sh\necho 'HA-Proxy version {version} 2019/01/01 - https://haproxy.org/'\n")
    path.chmod(0o755)
    return str(path)


def test_too_old_for_random_draws_names_the_fix(tmp_path):
    with pytest.raises(HaproxyError, match=r"1\.8\.19.*random\(2\) needs 2\.0 or newer.*scripts/install.sh"):
        binary.version(_fake_haproxy(tmp_path, "1.8.19"))


def test_new_enough_passes(tmp_path):
    assert binary.version(_fake_haproxy(tmp_path, "2.0.33")) == "2.0.33"


def test_missing_haproxy_is_a_user_error_naming_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UserError, match=r"haproxy not found: run scripts/install.sh \(it runs apt-get install "
                                        r"haproxy\)"):
        binary.preflight()


@pytest.mark.skipif(not HAVE_HAPROXY, reason="needs haproxy (scripts/install.sh)")
def test_preflight_passes_with_debians_haproxy():
    major, minor, _ = binary.parse_version("HAProxy version " + binary.preflight())
    assert (major, minor) >= binary.MIN_VERSION
