"""`--target kubeconfig=PATH`: the same scenarios on a real cluster (e.g. one made by `invoke up`).

The workload is deployed as pods with the kubernetes client, in its own
namespace (``rap-bench``), removed at the end:

- a ConfigMap holding the backend, the load generator and the overload
  workload (``rap/localcluster/backend.py``, ``rap/loadgen.py``,
  ``rap/bench/overload.py``: standard library only, so any Python 3.11 image
  runs them; ``--image``, default ``python:3.11-slim``);
- per scenario node i, a Deployment ``web-<i>`` pinned to the i-th worker
  (sorted by name) with the scenario's pod count, CPU limit and request cost;
- the Service ``web`` (port 80 -> 8080) in front of all of them;
- per load step and client node, a pod pinned to that node running the load
  generator against the Service's ClusterIP; its log is the samples (JSON lines).

Policies are switched by setting the image of the ``kube-proxy`` container of
the ``kube-system/kube-proxy`` DaemonSet (RAP: ``--rap-image``; round robin:
the image the DaemonSet had when the benchmark started, restored at the end),
then waiting for the rollout. Least-request exists only as the project's
Python proxy, which is not packaged as a DaemonSet, so it is not run here.
Round-trip times are the real network's (scenario RTTs are not applied).

Building the objects is pure (``*_manifest`` functions, unit-tested); talking
to the cluster is in KubeTarget.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from rap.bench.options import DEFAULT_IMAGE
from rap.bench.scenarios import Scenario
from rap.bench.target import Switching, TargetError, max_requests
from rap.quantity import milli_quantity

NAMESPACE = "rap-bench"
APP = "rap-bench-web"
CODE_FILES = {  # key in the ConfigMap -> source in this repository
    "backend.py": Path(__file__).resolve().parents[1] / "localcluster" / "backend.py",
    "loadgen.py": Path(__file__).resolve().parents[1] / "loadgen.py",
    "overload.py": Path(__file__).resolve().parent / "overload.py",
}
PROXY_DS = ("kube-system", "kube-proxy")
WAIT_S = 240


def _labels(extra: dict | None = None) -> dict:
    return {"app.kubernetes.io/part-of": "rap-bench", **(extra or {})}


def namespace_manifest() -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": _labels()}}


def code_manifest() -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "rap-bench-code", "namespace": NAMESPACE, "labels": _labels()},
            "data": {k: p.read_text() for k, p in CODE_FILES.items()}}


def _code_volume() -> tuple[dict, dict]:
    return ({"name": "code", "configMap": {"name": "rap-bench-code"}},
            {"name": "code", "mountPath": "/rap", "readOnly": True})


def backend_manifest(s: Scenario, i: int, node: str, image: str) -> dict:
    """Deployment of the scenario's node-i pods, pinned to the real node ``node``."""
    volume, mount = _code_volume()
    cpu = milli_quantity(s.pod_cpu)
    labels = _labels({"app": APP, "rap-bench/node": str(i)})
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"web-{i}", "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": s.pods_on(i),
            "selector": {"matchLabels": {"app": APP, "rap-bench/node": str(i)}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "volumes": [volume],
                    "containers": [{
                        "name": "backend", "image": image,
                        "command": ["python3", "/rap/backend.py", "--port", "8080", "--name", "$(POD_NAME)",
                                    "--node", "$(NODE_NAME)", "--cpu-ms", f"{s.cpu_ms:g}"],
                        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                        "ports": [{"containerPort": 8080, "name": "http"}],
                        "resources": {"requests": {"cpu": cpu, "memory": "64Mi"},
                                      "limits": {"cpu": cpu, "memory": "256Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 2},
                        "volumeMounts": [mount],
                    }],
                },
            },
        },
    }


def service_manifest() -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": NAMESPACE, "labels": _labels()},
            "spec": {"selector": {"app": APP}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}


def loadgen_manifest(name: str, node: str, image: str, url: str, s: Scenario, rate: float | None) -> dict:
    """A one-shot pod on ``node`` that runs rap.loadgen and prints its samples."""
    volume, mount = _code_volume()
    args = ["python3", "/rap/loadgen.py", "--url", url, "--mode", s.mode, "--duration", f"{s.duration_s:g}",
            "--max-requests", str(max_requests(s, rate)), "--timeout", f"{s.timeout_s:g}"]
    args += (["--rate", f"{rate:g}"] if rate is not None
             else ["--concurrency", str(s.concurrency), "--think-ms", f"{s.think_ms:g}"])
    return _one_shot(name, node, image, args, volume, mount, {"rap-bench/role": "loadgen"})


def overload_manifest(name: str, node: str, image: str, targets: list[str], s: Scenario, seconds: float) -> dict:
    o = s.overload
    volume, mount = _code_volume()
    args = ["python3", "/rap/overload.py", "--cost-ms", f"{o.cost_ms:g}", "--concurrency",
            str(o.threads_per_pod), "--duration", f"{seconds:g}", *targets]
    return _one_shot(name, node, image, args, volume, mount, {"rap-bench/role": "overload"})


def _one_shot(name, node, image, command, volume, mount, labels) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": _labels(labels)},
            "spec": {"nodeName": node, "restartPolicy": "Never", "volumes": [volume],
                     "containers": [{"name": "main", "image": image, "command": command,
                                     "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                                     "volumeMounts": [mount]}]}}


def proxy_image_patch(image: str) -> dict:
    """Strategic-merge patch of the kube-proxy DaemonSet: only the container's image."""
    return {"spec": {"template": {"spec": {"containers": [{"name": "kube-proxy", "image": image}]}}}}


def parse_samples(log: str, client: str) -> list[dict]:
    out = []
    for line in log.splitlines():
        line = line.strip()
        if line.startswith("{"):
            d = json.loads(line)
            d["client"] = client
            out.append(d)
    return out


class KubeTarget(Switching):
    name = "kubeconfig"
    applies_rtt = False

    def __init__(self, kubeconfig: str, image: str | None = None, rap_image: str | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.image = image or DEFAULT_IMAGE
        self.rap_image = rap_image
        self.policies = ["round-robin", "rap"]
        self.api = None
        self.workers: list[str] = []
        self.original_image: str | None = None
        self.cluster_ip = None
        self.pods_by_node: dict[int, list[str]] = {}
        self.serial = 0
        self.current: str | None = None

    # -- connection and checks --

    def check(self) -> None:
        path = Path(self.kubeconfig).expanduser()
        if not path.is_file():
            raise TargetError(f"--target kubeconfig={self.kubeconfig}: no such file; give the kubeconfig of a "
                              "running cluster (e.g. the one `invoke up` wrote)")
        if not self.rap_image:
            raise TargetError("--target kubeconfig=...: --rap-image is needed (the RAP kube-proxy image that "
                              "`invoke build-proxy --image NAME:TAG --push` pushed)")
        try:
            from kubernetes import client, config

            self.api = config.new_client_from_config(config_file=str(path))
            nodes = client.CoreV1Api(self.api).list_node(_request_timeout=15).items
            ds = client.AppsV1Api(self.api).read_namespaced_daemon_set(PROXY_DS[1], PROXY_DS[0],
                                                                       _request_timeout=15)
        except Exception as exc:  # noqa: BLE001 - any failure here is "cannot use this cluster"
            raise TargetError(f"--target kubeconfig={self.kubeconfig}: cannot use this cluster: "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
        self.workers = worker_names(nodes)
        self.original_image = next(c.image for c in ds.spec.template.spec.containers if c.name == "kube-proxy")

    # -- the runner's steps --

    @contextlib.contextmanager
    def cluster(self, s: Scenario, say=print):
        from kubernetes import client, utils

        if s.nodes > len(self.workers):
            raise TargetError(f"scenario {s.name} needs {s.nodes} worker nodes; the cluster has "
                              f"{len(self.workers)} ({', '.join(self.workers)})")
        core = client.CoreV1Api(self.api)
        try:
            for m in [namespace_manifest(), code_manifest(), service_manifest()] + [
                    backend_manifest(s, i, self.workers[i - 1], self.image) for i in range(1, s.nodes + 1)]:
                utils.create_from_dict(self.api, m)
            self.cluster_ip = core.read_namespaced_service("web", NAMESPACE).spec.cluster_ip
            self._wait_ready(core, sum(s.pods_on(i) for i in range(1, s.nodes + 1)))
            if not self.applies_rtt and s.rtt_ms:
                say("  note: a real cluster's RTTs are its network's; the scenario's RTTs are not applied")
            yield self
        finally:
            with contextlib.suppress(Exception):
                core.delete_namespace(NAMESPACE)
            self.current = None
            with contextlib.suppress(Exception):
                self._set_proxy_image(self.original_image)
                self.current = "round-robin"
            self._wait_gone(core)

    def _wait_ready(self, core, want: int) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"app={APP}").items
            ready = [p for p in pods if p.status.pod_ip and any(
                c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))]
            if len(ready) >= want:
                self.pods_by_node = {}
                for p in ready:
                    self.pods_by_node.setdefault(int(p.metadata.labels["rap-bench/node"]), []).append(p.status.pod_ip)
                return
            time.sleep(2)
        raise TargetError(f"the benchmark's {want} backend pods were not ready after {WAIT_S}s "
                          f"(is the image {self.image} pullable?)")

    def _wait_gone(self, core) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                core.read_namespace(NAMESPACE)
            except Exception:  # noqa: BLE001 - 404: gone
                return
            time.sleep(2)

    def _set_proxy_image(self, image: str) -> None:
        from kubernetes import client

        apps = client.AppsV1Api(self.api)
        apps.patch_namespaced_daemon_set(PROXY_DS[1], PROXY_DS[0], proxy_image_patch(image))
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            ds = apps.read_namespaced_daemon_set(PROXY_DS[1], PROXY_DS[0])
            st = ds.status
            if (st.observed_generation or 0) >= ds.metadata.generation and \
                    st.updated_number_scheduled == st.desired_number_scheduled == (st.number_available or 0):
                return
            time.sleep(2)
        raise TargetError(f"kube-proxy did not roll out {image} within {WAIT_S}s")

    def _switch(self, policy: str) -> None:
        self._set_proxy_image(self.rap_image if policy == "rap" else self.original_image)

    @contextlib.contextmanager
    def overloaded(self, s: Scenario, seconds: float):
        if s.overload is None:
            yield
            return
        from kubernetes import client, utils

        core = client.CoreV1Api(self.api)
        name = self._name("overload")
        targets = [f"{ip}:8080" for ip in self.pods_by_node.get(s.overload.node, [])]
        utils.create_from_dict(self.api, overload_manifest(
            name, self.workers[s.overload.node - 1], self.image, targets, s, min(seconds, 900)))
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)

    def load(self, s: Scenario, rate: float | None) -> list[dict]:
        from kubernetes import client, utils

        core = client.CoreV1Api(self.api)
        names = {}
        for c in s.clients:
            names[c] = self._name("loadgen")
            utils.create_from_dict(self.api, loadgen_manifest(
                names[c], self.workers[c - 1], self.image, f"http://{self.cluster_ip}:80/", s, rate))
        deadline = time.monotonic() + s.duration_s + s.timeout_s + WAIT_S
        samples: list[dict] = []
        try:
            for c, name in names.items():
                while True:
                    phase = core.read_namespaced_pod(name, NAMESPACE).status.phase
                    if phase in ("Succeeded", "Failed"):
                        break
                    if time.monotonic() > deadline:
                        raise TargetError(f"load generator {name} did not finish in time")
                    time.sleep(1)
                log = core.read_namespaced_pod_log(name, NAMESPACE)
                if phase == "Failed":
                    raise TargetError(f"load generator {name} failed: {log[-300:]}")
                samples += parse_samples(log, self.workers[c - 1])
        finally:
            for name in names.values():
                with contextlib.suppress(Exception):
                    core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
        return samples

    def _name(self, kind: str) -> str:
        self.serial += 1
        return f"{kind}-{self.serial}"


def worker_names(nodes) -> list[str]:
    """Schedulable nodes without the control-plane/master role, sorted by name."""
    out = []
    for n in nodes:
        labels = n.metadata.labels or {}
        taints = n.spec.taints or []
        if "node-role.kubernetes.io/control-plane" in labels or "node-role.kubernetes.io/master" in labels:
            continue
        if n.spec.unschedulable or any(t.effect == "NoSchedule" for t in taints):
            continue
        out.append(n.metadata.name)
    return sorted(out)
