"""The local metrics server speaks metrics.k8s.io/v1beta1 as metrics-server does.

Fast: fake cgroup readers and clocks; one HTTPS round trip on loopback.
"""

from __future__ import annotations

import http.client
import json
import ssl
from pathlib import Path

import pytest

from rap.localcluster import cgroups, metrics as m

# -- quantities and times, as apimachinery prints them ---------------------------------


@pytest.mark.parametrize("nanocores, text", [
    (0, "0"), (123456789, "123456789n"), (500_000_000, "500m"), (1_000_000_000, "1"),
    (1_500_000_000, "1500m"), (1_000, "1u"), (2_000_000_000_000, "2k"), (7, "7n"),
])
def test_cpu_quantity_is_canonical_decimal_si(nanocores, text):
    assert m.cpu_quantity(nanocores) == text


@pytest.mark.parametrize("nbytes, text", [
    (4096, "4Ki"), (1 << 20, "1Mi"), (1536 << 10, "1536Ki"), (3 << 30, "3Gi"),
    (1234567, "1234567"), (512, "512"), (0, "0"),
])
def test_memory_quantity_is_canonical_binary_si(nbytes, text):
    assert m.memory_quantity(nbytes) == text


_SUFFIX = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9,
           "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}


def _parse(q: str) -> float:
    digits = len(q) - len(q.lstrip("0123456789"))
    return int(q[:digits]) * _SUFFIX[q[digits:]]


@pytest.mark.parametrize("n", [1, 999, 1001, 123_456_789_000, 10**12 + 5])
def test_quantities_round_trip(n):
    assert _parse(m.cpu_quantity(n)) == pytest.approx(n * 1e-9)
    assert _parse(m.memory_quantity(n * 4096)) == n * 4096


@pytest.mark.parametrize("ns, text", [
    (0, "0s"), (5 * 10**9, "5s"), (10_034_216_000, "10.034216s"), (60 * 10**9, "1m0s"),
    (90_500_000_000, "1m30.5s"), (3600 * 10**9, "1h0m0s"), (1_500_000, "1.5ms"),
    (500, "500ns"), (1_500, "1.5µs"),
])
def test_window_is_a_go_duration(ns, text):
    assert m.go_duration(ns) == text


def test_timestamps_are_rfc3339_utc_seconds():
    assert m.rfc3339(0.9) == "1970-01-01T00:00:00Z"
    assert m.rfc3339(1_700_000_000.5) == "2023-11-14T22:13:20Z"


# -- sampling ------------------------------------------------------------------------


class Fake:
    """A clock and cgroup counters the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.cpu: dict[str, int] = {}
        self.mem: dict[str, int] = {}

    def clock(self):
        return self.t, 1_700_000_000 + self.t

    def read(self, name):
        if name not in self.cpu:
            raise FileNotFoundError(name)
        return self.cpu[name], self.mem.get(name, 4096)


REGISTRY = {
    "nodes": {"node-1": "rap/node-1", "node-2": "rap/node-2"},
    "pods": {
        "default/pod-1-1": {"node": "node-1", "cgroup": "rap/node-1/pod-1-1", "container": "web",
                            "labels": {"app": "web", "tier": "a"}},
        "default/pod-2-1": {"node": "node-2", "cgroup": "rap/node-2/pod-2-1", "labels": {"app": "web"}},
        "other/pod-1-2": {"node": "node-1", "cgroup": "rap/node-1/pod-1-2"},
    },
}


@pytest.fixture
def fake():
    return Fake()


@pytest.fixture
def api(tmp_path, fake):
    path = tmp_path / "registry.json"
    m.write_registry(path, REGISTRY["nodes"], REGISTRY["pods"])
    reg = m.RegistryFile(path)
    sampler = m.Sampler(reg, window=5.0, reader=fake.read, clock=fake.clock)
    return m.MetricsAPI(reg, sampler)


def _run(fake, sampler, seconds, rates, mem=None):
    """Advance `seconds` one-second ticks, each cgroup using `rates[name]` cores."""
    for _ in range(seconds):
        sampler.tick()
        fake.t += 1.0
        for name, cores in rates.items():
            fake.cpu[name] = fake.cpu.get(name, 0) + int(cores * 1e9)
            fake.mem[name] = (mem or {}).get(name, 8 << 20)
    sampler.tick()


ALL = {"rap/node-1": 0.6, "rap/node-2": 0.1, "rap/node-1/pod-1-1": 0.5,
       "rap/node-1/pod-1-2": 0.1, "rap/node-2/pod-2-1": 0.1}


def test_no_usage_before_two_samples(api, fake):
    fake.cpu = {name: 0 for name in ALL}
    api.sampler.tick()
    code, body = api.get(m.PREFIX + "/pods", {})
    assert code == 200 and body["items"] == []


def test_cpu_is_a_rate_over_the_window(api, fake):
    fake.cpu = {name: 0 for name in ALL}
    _run(fake, api.sampler, 8, ALL)
    u = api.sampler.usage("rap/node-1/pod-1-1")
    assert u.nanocores == 500_000_000 and u.window_ns == 5 * 10**9
    assert u.timestamp == 1_700_000_000 + fake.t


def test_window_follows_a_change_in_load(api, fake):
    fake.cpu = {"rap/node-1": 0}
    _run(fake, api.sampler, 10, {"rap/node-1": 0.2})
    _run(fake, api.sampler, 5, {"rap/node-1": 0.8})
    assert api.sampler.usage("rap/node-1").nanocores == 800_000_000


def test_counter_reset_starts_over(api, fake):
    fake.cpu = {"rap/node-1": 10**12}
    _run(fake, api.sampler, 3, {"rap/node-1": 0.5})
    fake.cpu["rap/node-1"] = 0  # group removed and made again
    api.sampler.tick()
    assert api.sampler.usage("rap/node-1") is None


def test_missing_cgroup_is_left_out(api, fake):
    fake.cpu = {"rap/node-1": 0}
    _run(fake, api.sampler, 3, {"rap/node-1": 0.5})
    code, body = api.get(m.PREFIX + "/nodes", {})
    assert [i["metadata"]["name"] for i in body["items"]] == ["node-1"]


# -- the wire format of metrics.k8s.io/v1beta1 -------------------------------------------


def test_node_metrics_list_fields(api, fake):
    fake.cpu = {name: 0 for name in ALL}
    _run(fake, api.sampler, 6, ALL, mem={"rap/node-1": 300 << 20})
    code, body = api.get(m.PREFIX + "/nodes", {})
    assert code == 200
    assert set(body) == {"kind", "apiVersion", "metadata", "items"}
    assert body["kind"] == "NodeMetricsList" and body["apiVersion"] == "metrics.k8s.io/v1beta1"
    item = body["items"][0]
    assert set(item) == {"metadata", "timestamp", "window", "usage"}
    assert set(item["metadata"]) == {"name", "creationTimestamp"}
    assert item["usage"] == {"cpu": "600m", "memory": "300Mi"} and item["window"] == "5s"


def test_pod_metrics_list_fields(api, fake):
    fake.cpu = {name: 0 for name in ALL}
    _run(fake, api.sampler, 6, ALL)
    code, body = api.get(m.PREFIX + "/pods", {})
    assert body["kind"] == "PodMetricsList"
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in body["items"]] == [
        ("default", "pod-1-1"), ("default", "pod-2-1"), ("other", "pod-1-2")]
    item = body["items"][0]
    assert set(item) == {"metadata", "timestamp", "window", "containers"}
    assert item["metadata"]["labels"] == {"app": "web", "tier": "a"}
    assert item["containers"] == [{"name": "web", "usage": {"cpu": "500m", "memory": "8Mi"}}]
    assert body["items"][1]["containers"][0]["name"] == m.DEFAULT_CONTAINER


def test_namespaced_single_and_selected_pods(api, fake):
    fake.cpu = {name: 0 for name in ALL}
    _run(fake, api.sampler, 3, ALL)
    _, body = api.get(m.PREFIX + "/namespaces/other/pods", {})
    assert [i["metadata"]["name"] for i in body["items"]] == ["pod-1-2"]
    code, one = api.get(m.PREFIX + "/namespaces/default/pods/pod-2-1", {})
    assert code == 200 and one["kind"] == "PodMetrics" and one["apiVersion"] == m.GROUP_VERSION
    code, node = api.get(m.PREFIX + "/nodes/node-2", {})
    assert code == 200 and node["kind"] == "NodeMetrics" and node["usage"]["cpu"] == "100m"
    _, sel = api.get(m.PREFIX + "/pods", {"labelSelector": ["app=web,tier!=a"]})
    assert [i["metadata"]["name"] for i in sel["items"]] == ["pod-2-1"]


def test_unknown_objects_are_404_status(api):
    code, body = api.get(m.PREFIX + "/nodes/node-9", {})
    assert code == 404 and body["kind"] == "Status" and body["reason"] == "NotFound"
    assert api.get(m.PREFIX + "/services", {})[0] == 404
    assert api.get("/apis/other.k8s.io/v1", {})[0] == 404


def test_failing_source_is_503_but_discovery_answers(api):
    api.failing = True
    code, body = api.get(m.PREFIX + "/pods", {})
    assert code == 503 and body["reason"] == "ServiceUnavailable"
    assert api.get(m.PREFIX, {})[0] == 200


def test_discovery_documents(api):
    _, groups = api.get("/apis", {})
    assert groups["kind"] == "APIGroupList"
    assert groups["groups"][0]["preferredVersion"] == {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}
    _, group = api.get("/apis/metrics.k8s.io", {})
    assert group["kind"] == "APIGroup" and group["name"] == "metrics.k8s.io"
    _, resources = api.get("/apis/metrics.k8s.io/v1beta1", {})
    assert resources["kind"] == "APIResourceList" and resources["groupVersion"] == "metrics.k8s.io/v1beta1"
    assert {(r["name"], r["kind"], r["namespaced"]) for r in resources["resources"]} == {
        ("nodes", "NodeMetrics", False), ("pods", "PodMetrics", True)}


def test_apiservice_object():
    obj = m.apiservice()
    assert obj["apiVersion"] == "apiregistration.k8s.io/v1" and obj["kind"] == "APIService"
    assert obj["metadata"]["name"] == "v1beta1.metrics.k8s.io"
    assert obj["spec"] == {"group": "metrics.k8s.io", "version": "v1beta1",
                           "service": {"namespace": "kube-system", "name": "rap-metrics", "port": 443},
                           "insecureSkipTLSVerify": True, "groupPriorityMinimum": 100, "versionPriority": 100}
    assert json.loads(m.apiservice_yaml()) == obj
    svc, eps = m.service_objects("10.213.0.1", 4443)
    assert svc["spec"]["ports"][0]["name"] == eps["subsets"][0]["ports"][0]["name"]
    assert eps["subsets"][0] == {"addresses": [{"ip": "10.213.0.1"}],
                                 "ports": [{"name": "https", "port": 4443, "protocol": "TCP"}]}


# -- the registry ------------------------------------------------------------------------


@pytest.mark.parametrize("data, needle", [
    ([], "JSON object"),
    ({"nodes": {"node-1": 3}}, "'nodes'"),
    ({"pods": {"nonamespace": {"cgroup": "x"}}}, "namespace/name"),
    ({"pods": {"a/b": {"node": "n"}}}, "'cgroup'"),
])
def test_bad_registry_names_the_field(data, needle):
    with pytest.raises(m.RegistryError, match=needle):
        m.parse_registry(data)


def test_registry_is_reread_when_it_changes_and_keeps_last_good(tmp_path):
    path = tmp_path / "r.json"
    reg = m.RegistryFile(path)
    assert reg.get().nodes == {} and "no such file" in reg.error
    m.write_registry(path, {"node-1": "g/1"}, {})
    assert reg.get().nodes == {"node-1": "g/1"}
    m.write_registry(path, {"node-1": "g/1", "node-2": "g/2"}, {})
    assert set(reg.get().nodes) == {"node-1", "node-2"}
    path.write_text("{not json")
    assert set(reg.get().nodes) == {"node-1", "node-2"} and reg.error
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp files left


# -- the HTTPS server ----------------------------------------------------------------------


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


# -- cgroup hierarchy detection (no cgroups touched) -------------------------------------------

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

