"""Least privilege in the local cluster, end to end: who reaches the metrics server, etcd and the API.

One 2-node cluster with RAP. The proxies run on their own node credentials
(RBAC: system:node-proxier plus RAP's ClusterRole), the metrics API takes only
the aggregator's front-proxy client, its fault switches only the root
namespace's control client, and etcd only TLS clients from its own CA.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest
from kubernetes import client

from rap.localcluster import config, objects, pki, procs
from rap.localcluster.metrics import control

from tests.e2e.clusters import running, wait_for

pytestmark = pytest.mark.e2e

# Run inside a namespace: one HTTPS GET with an optional client certificate; prints what came back.
_PROBE = """
import http.client, ssl, sys
host, port, path, cert, key = sys.argv[1:6]
ctx = ssl._create_unverified_context()
if cert:
    ctx.load_cert_chain(cert, key)
try:
    conn = http.client.HTTPSConnection(host, int(port), timeout=5, context=ctx)
    conn.request("GET", path)
    print("answered", conn.getresponse().status)
except Exception as e:
    print("refused", type(e).__name__)
"""


@pytest.fixture(scope="module")
def lp_cluster():
    c = config.ClusterConfig(nodes=2, proxy="rap", default_pods=1, rap_period_s=1.0)
    with running(c) as (runtime, st):
        yield runtime, st, c


def _probe(netns: str | None, host: str, port: int, path: str, cert: str = "", key: str = "") -> str:
    argv = ["python3", "-c", _PROBE, host, str(port), path, cert, key]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout.strip()


def _node_api(runtime) -> client.ApiClient:
    return objects.api_client(str(pki.Pki(runtime / "pki").proxy_kubeconfig("node-1")))


def test_proxies_run_on_their_node_credential_and_rap_reads_metrics(lp_cluster):
    runtime, st, _ = lp_cluster
    for i in (1, 2):
        pid = procs.recorded(runtime)[f"proxy-{i}"]
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        assert f"--kubeconfig={runtime}/pki/proxy-node-{i}.kubeconfig".encode() in cmdline
        assert st.kubeconfig.encode() not in b" ".join(cmdline)
    log = procs.log_path(runtime, "proxy-1")
    wait_for(lambda: "resource metrics available" in log.read_text(errors="replace"), 60,
             "RAP's monitor to read metrics with the node credential")


def test_the_node_credential_reads_what_a_proxy_needs_and_nothing_more(lp_cluster):
    runtime, _, _ = lp_cluster
    api = _node_api(runtime)
    core = client.CoreV1Api(api)
    assert core.list_endpoints_for_all_namespaces().items
    metrics = client.CustomObjectsApi(api).list_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes")
    assert metrics["kind"] == "NodeMetricsList"  # through the aggregator, as RAP reads it
    for forbidden in (lambda: core.list_namespaced_secret("kube-system"),
                      lambda: core.create_namespaced_service("default", client.V1Service(
                          metadata=client.V1ObjectMeta(name="intruder"),
                          spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=81)]))),
                      lambda: core.patch_namespaced_service("web", "default", {"metadata": {"labels": {"x": "y"}}})):
        with pytest.raises(client.ApiException) as err:
            forbidden()
        assert err.value.status == 403


def test_nodes_and_pods_cannot_reach_the_metrics_api_nor_its_switches(lp_cluster):
    runtime, st, c = lp_cluster
    keys = pki.Pki(runtime / "pki")
    switches = json.loads((runtime / control.CONTROL_FILE).read_text())
    assert switches["host"] == "127.0.0.1"
    pod_ns = st.pods[0]["netns"] if "netns" in st.pods[0] else config.pod_netns(1, 1)
    node_cert = (str(keys.path("proxy-node-1.crt")), str(keys.path("proxy-node-1.key")))
    for ns in (config.node_netns(1), pod_ns):
        for cert in (("", ""), node_cert):
            assert _probe(ns, config.bridge_ip(), c.metrics_port, "/apis/metrics.k8s.io/v1beta1/nodes",
                          *cert).startswith("refused"), (ns, cert)
        for host in ("127.0.0.1", config.bridge_ip()):
            assert _probe(ns, host, switches["port"], "/control/fail").startswith("refused"), (ns, host)
    # From the root namespace: the API still wants the front-proxy client, the switches the control client.
    assert _probe(None, config.bridge_ip(), c.metrics_port, "/healthz", *node_cert).startswith("refused")
    front = (str(keys.path("front-proxy-client.crt")), str(keys.path("front-proxy-client.key")))
    assert _probe(None, config.bridge_ip(), c.metrics_port, "/control/fail", *front) == "answered 404"
    assert _probe(None, "127.0.0.1", switches["port"], "/control/fail").startswith("refused")
    admin = (str(keys.path("admin.crt")), str(keys.path("admin.key")))
    assert _probe(None, "127.0.0.1", switches["port"], "/control/fail", *admin) == "answered 403"
    try:
        assert control.set_failing(runtime, True) is True
        with pytest.raises(client.ApiException) as err:
            client.CustomObjectsApi(_node_api(runtime)).list_cluster_custom_object("metrics.k8s.io", "v1beta1",
                                                                                   "nodes")
        assert err.value.status == 503
    finally:
        control.set_failing(runtime, False)


def test_etcd_refuses_plain_http_and_clients_without_its_certificate(lp_cluster):
    runtime, _, c = lp_cluster
    keys = pki.Pki(runtime / "pki")
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"http://127.0.0.1:{c.etcd_port}/health", timeout=5).read()
    no_cert = ssl.create_default_context(cafile=str(keys.path("etcd-ca.crt")))
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        urllib.request.urlopen(f"https://127.0.0.1:{c.etcd_port}/v3/kv/range", data=b'{"key":"Lw=="}',
                               timeout=5, context=no_cert).read()
    admin = ssl.create_default_context(cafile=str(keys.path("etcd-ca.crt")))
    admin.load_cert_chain(str(keys.path("admin.crt")), str(keys.path("admin.key")))  # the API's admin: not etcd's
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        urllib.request.urlopen(f"https://127.0.0.1:{c.etcd_port}/v3/kv/range", data=b'{"key":"Lw=="}',
                               timeout=5, context=admin).read()
    ok = ssl.create_default_context(cafile=str(keys.path("etcd-ca.crt")))
    ok.load_cert_chain(str(keys.path("apiserver-etcd-client.crt")), str(keys.path("apiserver-etcd-client.key")))
    with urllib.request.urlopen(f"https://127.0.0.1:{c.etcd_port}/health", timeout=5, context=ok) as resp:
        assert json.loads(resp.read())["health"] == "true"
