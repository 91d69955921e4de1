"""The pure parts of `invoke deploy` / `rollback` (rap.deploy.spec) and its option and kubeconfig errors.

The same code against a real kube-apiserver: tests/e2e/test_deploy.py.
"""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import sys

import pytest
import yaml

from rap.deploy import spec
from rap.deploy.kube import Cluster, resolve_kubeconfig
from rap.deploy.spec import DeployError, parse_options
from rap.paths import REPO

# What kubeadm 1.21 writes into kube-system/kube-proxy's config.conf (abridged
# only where the fields are irrelevant here), with the mode the test starts from.
KUBEADM_CONFIG = (REPO / "tests" / "data" / "kubeadm-kube-proxy-config.conf").read_text()


def daemonset() -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "kube-proxy", "namespace": "kube-system", "generation": 1,
                     "resourceVersion": "42"},
        "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}}, "template": {
            "metadata": {"labels": {"k8s-app": "kube-proxy"}},
            "spec": {
                "containers": [{
                    "name": "kube-proxy", "image": "k8s.gcr.io/kube-proxy:v1.21.14",
                    "command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                                "--hostname-override=$(NODE_NAME)"],
                    "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                                            "fieldPath": "spec.nodeName"}}}],
                    "volumeMounts": [{"mountPath": "/var/lib/kube-proxy", "name": "kube-proxy"},
                                     {"mountPath": "/lib/modules", "name": "lib-modules", "readOnly": True}],
                }],
                "volumes": [{"name": "kube-proxy", "configMap": {"name": "kube-proxy"}},
                            {"name": "lib-modules", "hostPath": {"path": "/lib/modules"}}],
            }}},
    }


def configmap() -> dict:
    return {"metadata": {"name": "kube-proxy", "namespace": "kube-system"},
            "data": {"config.conf": KUBEADM_CONFIG, "kubeconfig.conf": "apiVersion: v1\nkind: Config\n"}}


# ---- options ----

def test_defaults_are_raps_defaults():
    opts = parse_options("reg.example:5000/rap/kube-proxy:v1")
    assert opts.image == "reg.example:5000/rap/kube-proxy:v1"
    assert opts.rap.as_dict() == {"mode": "adaptive", "period_s": 5.0, "stale_after_s": 15.0, "cpu_threshold": 0.8,
                                  "mem_threshold": 0.9, "w_cpu": 0.5, "w_mem": 0.2, "w_net": 0.3,
                                  "hysteresis": 0.1, "rtt_per_conn_ms": 10.0, "eject_s": 10.0}
    assert opts.rtt_port == 10250 and opts.timeout_s == 300


@pytest.mark.parametrize("kwargs, message", [
    ({"cpu_threshold": "1.5"}, "--cpu-threshold: must be in (0, 1]"),
    ({"mem_threshold": "0"}, "--mem-threshold: must be in (0, 1]"),
    ({"period": "-1"}, "--period: must be > 0"),
    ({"stale_after": "0"}, "--stale-after: must be > 0"),
    ({"w_net": "-0.1"}, "--w-net: must be >= 0"),
    ({"w_cpu": "0", "w_mem": "0", "w_net": "0"}, "--w-cpu + --w-mem + --w-net: must be > 0"),
    ({"period": "five"}, "--period: must be a number, got 'five'"),
    ({"rtt_port": "70000"}, "--rtt-port: must be a TCP port in 1..65535"),
    ({"rtt_port": "80.5"}, "--rtt-port: must be a TCP port"),
    ({"timeout": "0"}, "--timeout: must be > 0 seconds"),
    ({"mode": "fast"}, "--mode: must be one of adaptive, classic, got 'fast'"),
    ({"hysteresis": "1"}, "--hysteresis: must be in [0, 1)"),
    ({"rtt_per_conn": "0"}, "--rtt-per-conn: must be > 0"),
    ({"eject": "-1"}, "--eject: must be > 0"),
])
def test_a_bad_option_is_one_message_naming_it(kwargs, message):
    with pytest.raises(DeployError) as exc:
        parse_options("rap:v1", **kwargs)
    assert str(exc.value).startswith(message), str(exc.value)


@pytest.mark.parametrize("image", [None, "", "rap", "rap:", ":v1", "reg.example:5000/rap", "rap:v 1",
                                   "rap@sha256:abc"])
def test_a_bad_image_names_the_option(image):
    with pytest.raises(DeployError, match="^--image"):
        parse_options(image)


def test_a_digest_image_is_accepted():
    ref = "reg.example/rap@sha256:" + "a" * 64
    assert parse_options(ref).image == ref


# ---- env ----

def test_env_carries_every_setting_and_the_node_name_from_the_downward_api():
    opts = parse_options("rap:v1", mode="classic", period="2", cpu_threshold="0.7", w_net="0", rtt_port="8080",
                         eject="3")
    env = {e["name"]: e for e in spec.rap_env(opts, "/var/lib/kube-proxy/kubeconfig.conf")}
    assert {k: v.get("value") for k, v in env.items()} == {
        "RAP_MODE": "classic", "RAP_PERIOD_S": "2.0", "RAP_STALE_AFTER_S": "6.0", "RAP_CPU_THRESHOLD": "0.7",
        "RAP_MEM_THRESHOLD": "0.9", "RAP_W_CPU": "0.5", "RAP_W_MEM": "0.2", "RAP_W_NET": "0.0",
        "RAP_HYSTERESIS": "0.1", "RAP_RTT_PER_CONN_MS": "10.0", "RAP_EJECT_S": "3.0",
        "RAP_NODE_NAME": None, "RAP_RTT_PORT": "8080", "RAP_MONITOR": "node", "RAP_RTT_PROBES": "16",
        "RAP_VIEW_NODES": "32",
        "RAP_KUBECONFIG": "/var/lib/kube-proxy/kubeconfig.conf"}
    assert env["RAP_NODE_NAME"]["valueFrom"] == {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}
    # every value reads back as the same float (rap.go parses them with strconv.ParseFloat)
    for name, value in parse_options("rap:v1", cpu_threshold="0.1").rap.as_dict().items():
        text = env_value(spec.rap_env(parse_options("rap:v1", cpu_threshold="0.1")), spec.OPTIONS[name][1])
        assert (text if isinstance(value, str) else float(text)) == value


def env_value(env, name):
    return next(e["value"] for e in env if e["name"] == name)


def test_merge_env_keeps_the_containers_own_and_replaces_old_rap_settings():
    own = [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
           {"name": "RAP_OBSOLETE", "value": "1"}, {"name": "RAP_PERIOD_S", "value": "9.0"}]
    rap = spec.rap_env(parse_options("rap:v1"))
    merged = spec.merge_env(own, rap)
    assert merged[0] == own[0]
    assert merged[1:] == rap
    assert [e["name"] for e in merged].count("RAP_PERIOD_S") == 1
    assert spec.merge_env(None, rap) == rap


def test_the_kubeconfig_is_found_where_the_container_mounts_the_configmap():
    assert spec.kubeconfig_mount(daemonset(), configmap()) == "/var/lib/kube-proxy/kubeconfig.conf"
    cm = configmap()
    del cm["data"]["kubeconfig.conf"]
    assert spec.kubeconfig_mount(daemonset(), cm) is None
    ds = daemonset()
    ds["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] = "other"
    assert spec.kubeconfig_mount(ds, configmap()) is None


# ---- the DaemonSet ----

def test_deployed_daemonset_changes_only_image_env_probe_and_the_restart_stamp():
    before = daemonset()
    opts = parse_options("rap:v1")
    env = spec.rap_env(opts)
    after = spec.deployed_daemonset(before, opts, env, "2024-01-01T00:00:00Z")
    assert before == daemonset()  # the input is not modified
    c = after["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "rap:v1"
    assert c["env"] == daemonset()["spec"]["template"]["spec"]["containers"][0]["env"] + env
    assert after["spec"]["template"]["metadata"]["annotations"] == {spec.RESTARTED_AT: "2024-01-01T00:00:00Z"}
    assert after["spec"]["template"]["metadata"]["labels"] == {"k8s-app": "kube-proxy"}
    assert c["readinessProbe"] == spec.readiness_probe()
    # everything but image, env, the probe and the annotation is as it was
    strip = copy.deepcopy(after)
    sc = strip["spec"]["template"]["spec"]["containers"][0]
    del sc["readinessProbe"]
    sc["image"], sc["env"] = before["spec"]["template"]["spec"]["containers"][0]["image"], \
        before["spec"]["template"]["spec"]["containers"][0]["env"]
    del strip["spec"]["template"]["metadata"]["annotations"]
    assert strip == before


def test_restored_daemonset_puts_back_exactly_what_was_recorded():
    original = daemonset()
    state = spec.container_state(original)
    deployed = spec.deployed_daemonset(original, parse_options("rap:v1"), spec.rap_env(parse_options("rap:v1")), "t1")
    deployed["spec"]["template"]["spec"]["containers"][0]["args"] = ["--added-later"]
    restored = spec.restored_daemonset(deployed, json.loads(json.dumps(state)), "t2")
    c = restored["spec"]["template"]["spec"]["containers"][0]
    assert {f: c.get(f) for f in spec.CONTAINER_FIELDS} == {f: state[f] for f in spec.CONTAINER_FIELDS}
    assert "args" not in c  # absent before, absent again


def test_a_daemonset_without_a_kube_proxy_container_is_a_clear_error():
    ds = daemonset()
    ds["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "x:1"})
    ds["spec"]["template"]["spec"]["containers"][0]["name"] = "proxy"
    with pytest.raises(DeployError, match="no container named 'kube-proxy'.*kubeadm"):
        spec.find_container(ds)


# ---- the KubeProxyConfiguration ----

def test_set_userspace_changes_only_the_mode_line():
    out = spec.set_userspace(KUBEADM_CONFIG)
    assert out == KUBEADM_CONFIG.replace("mode: iptables\n", "mode: userspace\n")
    assert yaml.safe_load(out) == {**yaml.safe_load(KUBEADM_CONFIG), "mode": "userspace"}
    assert spec.proxy_mode(out) == "userspace"
    assert spec.set_userspace(out) == out  # idempotent


@pytest.mark.parametrize("mode_line", ['mode: ""', "mode: ipvs", "mode: 'iptables'", 'mode: "userspace"'])
def test_set_userspace_from_any_mode(mode_line):
    text = KUBEADM_CONFIG.replace("mode: iptables", mode_line)
    assert yaml.safe_load(spec.set_userspace(text)) == {**yaml.safe_load(text), "mode": "userspace"}


def test_set_userspace_adds_a_missing_mode():
    text = KUBEADM_CONFIG.replace("mode: iptables\n", "")
    out = spec.set_userspace(text)
    assert out.startswith(text) and out.endswith("mode: userspace\n")


def test_set_userspace_with_a_layout_a_line_edit_cannot_handle_keeps_every_field():
    text = "{kind: KubeProxyConfiguration, apiVersion: kubeproxy.config.k8s.io/v1alpha1, mode: ipvs, " \
           "clusterCIDR: 10.244.0.0/16}\n"
    out = spec.set_userspace(text)
    assert yaml.safe_load(out) == {**yaml.safe_load(text), "mode": "userspace"}
    nested = KUBEADM_CONFIG.replace("  scheduler: \"\"\n", "  scheduler: \"\"\n  mode: nested\n")
    assert yaml.safe_load(spec.set_userspace(nested))["ipvs"]["mode"] == "nested"


@pytest.mark.parametrize("text", ["kind: KubeletConfiguration\n", "- a list\n", "a: [unclosed\n"])
def test_a_configmap_that_is_no_kube_proxy_configuration_is_a_clear_error(text):
    with pytest.raises(DeployError, match="ConfigMap kube-system/kube-proxy key config.conf"):
        spec.set_userspace(text)


def test_with_config_keeps_other_keys():
    cm = spec.with_config(configmap(), "x")
    assert cm["data"] == {"config.conf": "x", "kubeconfig.conf": configmap()["data"]["kubeconfig.conf"]}


# ---- the record ----

def test_the_record_round_trips_through_its_configmap():
    record = spec.make_record(daemonset(), configmap(), "rap:v1", "2024-01-01T00:00:00Z")
    cm = spec.record_configmap(record)
    assert cm["metadata"]["name"] == "rap-rollback" and cm["metadata"]["namespace"] == "kube-system"
    back = spec.parse_record(json.loads(json.dumps(cm)))
    assert back == record
    assert back["configmap"]["config.conf"] == KUBEADM_CONFIG
    assert back["daemonset"]["image"] == "k8s.gcr.io/kube-proxy:v1.21.14"
    assert back["daemonset"]["args"] is None


@pytest.mark.parametrize("data", [{}, {"record.json": "not json"}, {"record.json": '{"version": 99}'}])
def test_an_unreadable_record_is_a_clear_error(data):
    with pytest.raises(DeployError, match="kube-system/rap-rollback is not a rollback record"):
        spec.parse_record({"data": data})


# ---- RBAC and rollout progress ----

# What the role allows is proven by behaviour against a real kube-apiserver
# (tests/e2e/test_deploy.py::test_rap_role_allows_the_monitor_and_nothing_else);
# here only that the binding gives it to kube-proxy's ServiceAccount.
def test_rbac_binds_the_monitor_role_to_kube_proxy():
    role, binding = spec.cluster_role(), spec.cluster_role_binding()
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kube-proxy", "namespace": "kube-system"}]


@pytest.mark.parametrize("gen, status, done, text", [
    (2, {"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3,
         "numberAvailable": 3}, False, "waiting for the DaemonSet controller"),
    (2, {"observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 1,
         "numberAvailable": 2}, False, "1/3 nodes updated, 2/3 available"),
    (2, {"observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3,
         "numberAvailable": 2}, False, "3/3 nodes updated, 2/3 available"),
    (2, {"observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3,
         "numberAvailable": 3}, True, "3/3 nodes updated, 3/3 available"),
    (1, {}, False, "waiting for the DaemonSet controller"),
])
def test_rollout_progress(gen, status, done, text):
    r = spec.rollout({"metadata": {"generation": gen}, "status": status})
    assert r.done is done
    assert r.describe().startswith(text)


# ---- kubeconfig and API server errors ----

def test_missing_kubeconfig_messages(tmp_path, monkeypatch):
    with pytest.raises(DeployError, match=r"^--kubeconfig .*/nope: no such file"):
        resolve_kubeconfig(str(tmp_path / "nope"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    with pytest.raises(DeployError, match=r"^KUBECONFIG=.*: no such file"):
        resolve_kubeconfig(None)
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(DeployError, match=r"^no kubeconfig: .*\.kube/config does not exist"):
        resolve_kubeconfig(None)
    (tmp_path / "a").write_text("x")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{tmp_path / 'a'}")
    assert resolve_kubeconfig(None) == str(tmp_path / "a")


def _kubeconfig(tmp_path, server: str):
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "x", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}]}))
    return path


def test_an_unreachable_api_server_is_one_clear_message(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cluster = Cluster(str(_kubeconfig(tmp_path, f"https://127.0.0.1:{port}")), say=lambda _: None)
    with pytest.raises(DeployError, match=rf"^cannot reach the API server at https://127.0.0.1:{port}"):
        cluster.check_reachable()


def test_a_broken_kubeconfig_is_one_clear_message(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(DeployError, match="cannot be used"):
        Cluster(str(path))


def test_tasks_report_errors_in_one_line(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=60)

    out = run("deploy", "--image", "rap:v1", "--cpu-threshold", "2")
    assert out.returncode == 1
    assert out.stderr.strip() == "error: --cpu-threshold: must be in (0, 1] (a fraction of the limit), got 2.0"
    out = run("rollback", "--kubeconfig", str(tmp_path / "nope"))
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "no such file" in out.stderr
    for task in ("deploy", "rollback"):
        help_text = run("--help", task).stdout
        assert "--kubeconfig" in help_text and "--timeout" in help_text


def test_deployed_kube_proxy_is_ready_only_when_its_healthz_answers():
    ds = {"spec": {"template": {"spec": {"containers": [{"name": "kube-proxy", "image": "stock"}]}}}}
    opts = parse_options("rap:1")
    out = spec.deployed_daemonset(ds, opts, [], "2026-01-01T00:00:00Z")
    probe = spec.find_container(out)["readinessProbe"]
    assert probe["httpGet"] == {"path": "/healthz", "port": 10256, "scheme": "HTTP"}
    # Rollback takes the probe away again: stock kube-proxy had none.
    back = spec.restored_daemonset(out, spec.container_state(ds), "2026-01-01T00:00:01Z")
    assert "readinessProbe" not in spec.find_container(back)
