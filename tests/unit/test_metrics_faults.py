"""The metrics server's fault switches: fail (503) and slow (late answers), and ``control``, which sets them."""

from __future__ import annotations

import http.client
import json
import ssl
import time

import pytest

from rap.localcluster import metrics as m, pki
from rap.localcluster.metrics.server import ClientAuth

from .metrics_fakes import ALL, api, fake, run  # noqa: F401 (api and fake are fixtures)


def test_slow_delays_the_metric_paths_only(api, fake):
    slept = []
    api.sleep = slept.append
    fake.cpu = {name: 0 for name in ALL}
    run(fake, api.sampler, 3, ALL)
    assert api.control("/control/slow", {"seconds": ["2.5"]}, change=True) == (200, {"slow_s": 2.5})
    assert api.get(m.PREFIX, {})[0] == 200 and api.get("/apis", {})[0] == 200
    assert slept == []  # discovery answers at once, as the aggregator's availability check needs
    code, body = api.get(m.PREFIX + "/pods", {})
    assert code == 200 and body["items"] and slept == [2.5]
    api.control("/control/slow", {"seconds": ["0"]}, change=True)
    api.get(m.PREFIX + "/nodes", {})
    assert slept == [2.5]


def test_slow_and_failing_together_answer_503_late(api):
    slept = []
    api.sleep = slept.append
    api.control("/control/fail", {"on": ["1"]}, change=True)
    api.control("/control/slow", {"seconds": ["1"]}, change=True)
    assert api.get(m.PREFIX + "/nodes", {})[0] == 503 and slept == [1.0]


@pytest.mark.parametrize("seconds", ["", "x", "-1", "nan", "inf", str(m.MAX_SLOW_S + 1)])
def test_bad_delays_are_400_and_change_nothing(api, seconds):
    api.control("/control/slow", {"seconds": ["3"]}, change=True)
    code, body = api.control("/control/slow", {"seconds": [seconds]}, change=True)
    assert code == 400 and "seconds" in body["error"]
    assert api.control("/control/slow", {}, change=False) == (200, {"slow_s": 3.0})


def test_fail_switch_and_unknown_switches(api):
    assert api.control("/control/fail", {"on": ["true"]}, change=True) == (200, {"failing": True})
    assert api.control("/control/fail", {"on": ["maybe"]}, change=True)[0] == 400
    assert api.control("/control/fail", {}, change=False) == (200, {"failing": True})
    assert api.control("/control/other", {}, change=True)[0] == 404


def test_cli_rejects_a_bad_slow(capsys):
    with pytest.raises(SystemExit) as err:
        m.main(["--registry", "r", "--slow", "-2"])
    assert err.value.code == 2 and "--slow" in capsys.readouterr().err


@pytest.fixture
def cluster_like(tmp_path):
    """A runtime folder as local-up leaves it (pki/, the control file) and its metrics server on loopback."""
    keys = pki.create(tmp_path / "pki", ["127.0.0.1"], "https://127.0.0.1:6443")
    registry = tmp_path / "metrics-registry.json"
    m.write_registry(registry, {"node-1": "g/1"}, {})
    server = m.start(registry, "127.0.0.1", 0, interval=0.05, window=0.2, cert=str(keys.path("metrics.crt")),
                     key=str(keys.path("metrics.key")),
                     client=ClientAuth(str(keys.path("front-proxy-ca.crt")), (pki.FRONT_PROXY_CN,)),
                     control=("127.0.0.1", 0), control_client=ClientAuth(str(keys.path("ca.crt")), (pki.CONTROL_CN,)),
                     control_file=tmp_path / m.CONTROL_FILE, reader=lambda name: (int(time.monotonic() * 1e9), 4096))
    yield tmp_path, server
    server.stop()


def _as(keys: pki.Pki, stem: str | None) -> ssl.SSLContext:
    ctx = ssl._create_unverified_context()
    if stem:
        ctx.load_cert_chain(str(keys.path(f"{stem}.crt")), str(keys.path(f"{stem}.key")))
    return ctx


def _status(port: int, path: str, ctx: ssl.SSLContext) -> int | str:
    """The answer's status, or the name of the error that stood in for one."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException) as e:
        return type(e).__name__
    finally:
        conn.close()


def test_the_api_takes_only_the_front_proxy_client_and_the_switches_only_the_control_client(cluster_like):
    runtime, server = cluster_like
    keys = pki.Pki(runtime / "pki")
    nodes = m.PREFIX + "/nodes"
    for stem in (None, "admin", "metrics-control"):  # none, or signed by the other CA
        assert not isinstance(_status(server.port, nodes, _as(keys, stem)), int), stem
    assert _status(server.port, nodes, _as(keys, "front-proxy-client")) == 200
    assert _status(server.port, "/control/fail", _as(keys, "front-proxy-client")) == 404
    for stem in (None, "front-proxy-client"):
        assert not isinstance(_status(server.control_port, "/control/fail", _as(keys, stem)), int), stem
    assert _status(server.control_port, "/control/fail", _as(keys, "admin")) == 403  # the right CA, not the name
    assert _status(server.control_port, "/control/fail", _as(keys, "metrics-control")) == 200
    assert _status(server.control_port, nodes, _as(keys, "metrics-control")) == 404


def _timed_nodes(runtime, server) -> tuple[int, float]:
    keys = pki.Pki(runtime / "pki")
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=10, context=_as(keys, "front-proxy-client"))
    start = time.monotonic()
    conn.request("GET", m.PREFIX + "/nodes")
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status, time.monotonic() - start


def test_control_sets_both_switches_of_a_running_server(cluster_like):
    runtime, server = cluster_like
    assert json.loads((runtime / m.CONTROL_FILE).read_text())["port"] == server.control_port
    assert m.faults(runtime) == {"failing": False, "slow_s": 0.0}
    assert m.set_slow(runtime, 0.4) == 0.4
    code, took = _timed_nodes(runtime, server)
    assert code == 200 and took >= 0.4
    assert m.set_failing(runtime, True) is True
    assert m.faults(runtime) == {"failing": True, "slow_s": 0.4}
    assert m.set_slow(runtime, 0) == 0.0
    code, took = _timed_nodes(runtime, server)
    assert code == 503 and took < 0.4
    assert m.set_failing(runtime, False) is False
    assert _timed_nodes(runtime, server)[0] == 200


def test_control_names_a_bad_delay_and_a_missing_server(cluster_like, tmp_path_factory):
    runtime, server = cluster_like
    with pytest.raises(m.MetricsControlError, match="400.*want 0..300"):
        m.set_slow(runtime, 301)
    with pytest.raises(m.MetricsControlError, match="invoke local-up"):
        m.set_failing(tmp_path_factory.mktemp("empty"), True)
    server.stop()
    with pytest.raises(m.MetricsControlError, match="restart_metrics"):
        m.set_failing(runtime, True)
