"""rap.localcluster.metrics.server and cli: the metrics server for real on loopback, over HTTPS.

Fast and without root: fake cgroup readers (or an empty registry), port 0.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time

import pytest

from rap.localcluster import metrics as m, pki


def _get(conn: http.client.HTTPSConnection, target: str) -> tuple[int, dict | str]:
    conn.request("GET", target)
    resp = conn.getresponse()
    body = resp.read().decode()
    return resp.status, json.loads(body) if resp.getheader("Content-Type") == "application/json" else body


def test_https_keepalive_round_trip_and_fail_toggle(tmp_path):
    path = tmp_path / "registry.json"
    m.write_registry(path, {"node-1": "g/1"}, {})
    server = m.start(path, "127.0.0.1", 0, interval=0.05, window=0.2, reader=lambda name: (0, 4096))
    try:
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=5,
                                           context=ssl._create_unverified_context())
        for target, code in [("/healthz", 200), ("/readyz", 200), ("/livez", 200), ("/openapi/v2", 200),
                             (m.PREFIX, 200), (m.PREFIX + "/nodes", 200)]:
            conn.request("GET", target, headers={"Accept": "application/vnd.kubernetes.protobuf, */*"})
            resp = conn.getresponse()
            assert (target, resp.status) == (target, code)
            resp.read()
        conn.request("POST", "/control/fail?on=1")
        assert json.loads(conn.getresponse().read()) == {"failing": True}
        conn.request("GET", m.PREFIX + "/nodes")
        resp = conn.getresponse()
        assert resp.status == 503 and resp.getheader("Content-Type") == "application/json"
        resp.read()
        conn.close()
    finally:
        server.stop()


def test_serves_with_the_clusters_certificate_verified_against_its_ca(tmp_path):
    """The cluster's metrics certificate from pki.create, checked as a client that trusts only ca.crt."""
    keys = pki.create(tmp_path / "pki", ["127.0.0.1"], "https://127.0.0.1:6443")
    path = tmp_path / "registry.json"
    m.write_registry(path, {"node-1": "g/1"}, {"default/pod-1": {"node": "node-1", "cgroup": "g/1/p"}})
    start = time.monotonic()
    server = m.start(path, "127.0.0.1", 0, interval=0.05, window=0.2,
                     cert=str(keys.path("metrics.crt")), key=str(keys.path("metrics.key")),
                     reader=lambda name: (int((time.monotonic() - start) * 250_000_000), 8 << 20))
    try:
        client = ssl.create_default_context(cafile=str(keys.path("ca.crt")))  # checks the name too
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=5, context=client)
        deadline = time.monotonic() + 5
        while True:
            code, body = _get(conn, m.PREFIX + "/namespaces/default/pods")
            if body["items"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert code == 200 and body["kind"] == "PodMetricsList"
        [item] = body["items"]
        assert item["metadata"]["name"] == "pod-1" and item["containers"][0]["usage"]["memory"] == "8Mi"
        conn.close()
        other = pki.create_metrics_serving(tmp_path / "other", ["127.0.0.1"])
        stranger = ssl.create_default_context(cafile=str(other.path("ca.crt")))
        with pytest.raises(ssl.SSLCertVerificationError):
            _get(http.client.HTTPSConnection("127.0.0.1", server.port, timeout=5, context=stranger), "/healthz")
    finally:
        server.stop()


def test_module_entry_serves_until_sigterm(tmp_path):
    """``python3 -m rap.localcluster.metrics`` (the way cluster.py starts it) on port 0, no certificates given."""
    path = tmp_path / "registry.json"
    m.write_registry(path, {}, {})
    proc = subprocess.Popen([sys.executable, "-m", "rap.localcluster.metrics", "--registry", str(path),
                             "--listen", "127.0.0.1:0", "--interval", "0.1", "--window", "0.5"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"metrics: serving {m.PREFIX} on https://127.0.0.1:"), line
        port = int(line.split("https://127.0.0.1:")[1].split()[0])
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=ssl._create_unverified_context())
        assert _get(conn, m.PREFIX + "/nodes") == (200, m.metrics_list("NodeMetrics", []))
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("argv, needle", [
    (["--registry", "r", "--cert", "c"], "--cert and --key go together"),
    (["--registry", "r", "--interval", "5", "--window", "1"], "--interval <= --window"),
    (["--registry", "r", "--listen", "4443"], "want host:port"),
])
def test_bad_options_are_named(argv, needle, capsys):
    with pytest.raises(SystemExit) as err:
        m.main(argv)
    assert err.value.code == 2 and needle in capsys.readouterr().err
