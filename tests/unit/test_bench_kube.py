"""rap.bench.kube: the objects deployed on a real cluster, and --target errors (no cluster needed)."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from rap.bench import kube, target
from rap.bench.scenarios import SCENARIOS


def test_target_parse():
    assert isinstance(target.parse("local"), target.LocalTarget)
    assert isinstance(target.parse(None), target.LocalTarget)
    t = target.parse("kubeconfig=/some/path", rap_image="r:1")
    assert isinstance(t, kube.KubeTarget) and t.kubeconfig == "/some/path" and t.image == kube.DEFAULT_IMAGE
    for bad, words in (("cloud", "neither"), ("kubeconfig=", "PATH is empty")):
        with pytest.raises(target.TargetError, match=words):
            target.parse(bad)


def test_missing_kubeconfig_is_one_clear_message():
    with pytest.raises(target.TargetError, match="kubeconfig=/nonexistent: no such file"):
        target.parse("kubeconfig=/nonexistent").check()


def test_kubeconfig_without_rap_image(tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(target.TargetError, match="--rap-image"):
        target.parse(f"kubeconfig={cfg}").check()


def test_unreachable_cluster_is_one_clear_message(tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    with pytest.raises(target.TargetError, match="cannot use this cluster"):
        target.parse(f"kubeconfig={cfg}", rap_image="r:1").check()


def test_backend_deployment_pins_pods_to_the_node_with_the_scenario_shape():
    s = SCENARIOS["overload"]
    d = kube.backend_manifest(s, 1, "worker-a", "img:1")
    assert d["kind"] == "Deployment" and d["metadata"]["namespace"] == kube.NAMESPACE
    assert d["spec"]["replicas"] == s.pods_on(1) == 5
    pod = d["spec"]["template"]
    assert pod["metadata"]["labels"]["app"] == kube.APP
    assert d["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "worker-a"}
    c = pod["spec"]["containers"][0]
    assert c["image"] == "img:1"
    assert c["resources"]["limits"]["cpu"] == "150m" == c["resources"]["requests"]["cpu"]
    assert c["command"][:2] == ["python3", "/rap/backend.py"] and "--cpu-ms" in c["command"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_code_configmap_holds_stdlib_only_sources():
    data = kube.code_manifest()["data"]
    assert set(data) == {"backend.py", "loadgen.py", "overload.py"}
    for name, text in data.items():
        # runs on a plain Python image: no module-level import of the rap package
        # (backend.py imports rap only under --cgroup, which the Deployment does not pass)
        top = [ln for ln in text.splitlines() if ln.startswith(("from rap", "import rap"))]
        assert top == [], name
        compile(text, name, "exec")
    cmd = kube.backend_manifest(SCENARIOS["geo"], 1, "n", "img")["spec"]["template"]["spec"]["containers"][0]
    assert "--cgroup" not in cmd["command"]


def test_service_selects_the_backends():
    svc = kube.service_manifest()
    assert svc["spec"]["selector"] == {"app": kube.APP}
    assert svc["spec"]["ports"][0] == {"port": 80, "targetPort": 8080, "protocol": "TCP"}


def test_loadgen_pod_closed_and_open():
    s = SCENARIOS["geo"]
    p = kube.loadgen_manifest("loadgen-1", "worker-a", "img", "http://10.0.0.1:80/", s, None)
    assert p["spec"]["nodeName"] == "worker-a" and p["spec"]["restartPolicy"] == "Never"
    cmd = p["spec"]["containers"][0]["command"]
    assert cmd[cmd.index("--mode") + 1] == "closed" and cmd[cmd.index("--concurrency") + 1] == "8"
    assert cmd[cmd.index("--think-ms") + 1] == "0"
    b = SCENARIOS["balanced"]
    cmd = kube.loadgen_manifest("l", "n", "img", "http://x/", b, None)["spec"]["containers"][0]["command"]
    assert cmd[cmd.index("--think-ms") + 1] == f"{b.think_ms:g}"
    r = SCENARIOS["rates"]
    cmd = kube.loadgen_manifest("l", "n", "img", "http://x/", r, 40)["spec"]["containers"][0]["command"]
    assert cmd[cmd.index("--rate") + 1] == "40" and cmd[cmd.index("--max-requests") + 1] == str(int(40 * r.duration_s))


def test_overload_pod_and_proxy_patch():
    s = SCENARIOS["overload"]
    p = kube.overload_manifest("o", "worker-a", "img", ["10.1.1.1:8080"], s, 100)
    cmd = p["spec"]["containers"][0]["command"]
    assert cmd[1] == "/rap/overload.py" and cmd[-1] == "10.1.1.1:8080"
    assert cmd[cmd.index("--concurrency") + 1] == str(s.overload.threads_per_pod)
    patch = kube.proxy_image_patch("rap:1")
    assert patch["spec"]["template"]["spec"]["containers"] == [{"name": "kube-proxy", "image": "rap:1"}]


def test_parse_samples_adds_the_client():
    log = 'noise\n{"start": 0, "latency_ms": 3, "status": 200, "pod": "p", "node": "w1", "error": ""}\n'
    assert kube.parse_samples(log, "w1") == [
        {"start": 0, "latency_ms": 3, "status": 200, "pod": "p", "node": "w1", "error": "", "client": "w1"}]


def test_worker_names_skip_control_plane_and_tainted():
    def node(name, labels=None, taints=None, unschedulable=False):
        return NS(metadata=NS(name=name, labels=labels or {}),
                  spec=NS(taints=[NS(effect=e) for e in taints or []], unschedulable=unschedulable))
    nodes = [node("w2"), node("cp", {"node-role.kubernetes.io/control-plane": ""}), node("w1"),
             node("t", taints=["NoSchedule"]), node("off", unschedulable=True)]
    assert kube.worker_names(nodes) == ["w1", "w2"]
