"""The API server side of deploy/rollback: connect, read and write objects, wait for rollouts.

Objects are read and written as plain JSON dicts (what rap.deploy.spec edits);
every write of an existing object is a PUT carrying the resourceVersion it was
read at, so a concurrent change is a conflict, never silently overwritten.
Every API failure becomes one DeployError naming the object and the fix.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

from rap.deploy import spec
from rap.deploy.spec import DeployError

REQUEST_TIMEOUT_S = 15
POLL_S = 1.0


def resolve_kubeconfig(path: str | None) -> str:
    """--kubeconfig, else $KUBECONFIG (a ':'-separated list), else ~/.kube/config; must exist."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise DeployError(f"--kubeconfig {path}: no such file; give the kubeconfig of the cluster "
                              "(`invoke up` writes ~/.local/state/rap/cloud/NAME/kubeconfig)")
        return str(p)
    env = os.environ.get("KUBECONFIG", "").strip()
    if env:
        paths = [str(Path(x).expanduser()) for x in env.split(os.pathsep) if x.strip()]
        existing = [x for x in paths if Path(x).is_file()]
        if not existing:
            raise DeployError(f"KUBECONFIG={env}: no such file; set KUBECONFIG to the cluster's kubeconfig "
                              "or give --kubeconfig PATH")
        return os.pathsep.join(existing)
    default = Path("~/.kube/config").expanduser()
    if not default.is_file():
        raise DeployError(f"no kubeconfig: {default} does not exist and KUBECONFIG is not set; "
                          "give --kubeconfig PATH (`invoke up` writes ~/.local/state/rap/cloud/NAME/kubeconfig)")
    return str(default)


class Conflict(DeployError):
    """409: the object changed between our read and our write."""


CONFLICT_ATTEMPTS = 10

# The kinds of the monitors' objects: kind -> (Cluster attribute, the client's method stem), so
# that read_<stem>, create_, replace_ and delete_ (``namespaced_`` for a namespaced object) name its calls.
_KINDS = {
    "ServiceAccount": ("core", "service_account"),
    "ConfigMap": ("core", "config_map"),
    "ClusterRole": ("rbac", "cluster_role"),
    "ClusterRoleBinding": ("rbac", "cluster_role_binding"),
    "Role": ("rbac", "role"),
    "RoleBinding": ("rbac", "role_binding"),
    "Deployment": ("apps", "deployment"),
    "Lease": ("coordination", "lease"),
}


def _loads(resp) -> dict:
    return json.loads(resp.data)


class Cluster:
    """One API server, reached through a kubeconfig."""

    def __init__(self, kubeconfig: str | None = None, say: Callable[[str], None] = print):
        self.kubeconfig = resolve_kubeconfig(kubeconfig)
        self.say = say
        configuration = k8s.Configuration()
        configuration.retries = 1  # an unreachable server fails in seconds, not minutes
        try:
            self.api = k8s_config.new_client_from_config(
                config_file=self.kubeconfig, client_configuration=configuration, persist_config=False)
        except (ConfigException, OSError, ValueError, TypeError) as exc:
            raise DeployError(f"kubeconfig {self.kubeconfig} cannot be used: {exc}") from None
        self.host = configuration.host
        self.core = k8s.CoreV1Api(self.api)
        self.apps = k8s.AppsV1Api(self.api)
        self.rbac = k8s.RbacAuthorizationV1Api(self.api)
        self.coordination = k8s.CoordinationV1Api(self.api)

    def close(self) -> None:
        self.api.close()

    # ---- errors ----

    def _unreachable(self, exc: Exception) -> DeployError:
        reason = getattr(exc, "reason", None) or exc
        return DeployError(f"cannot reach the API server at {self.host} (from {self.kubeconfig}): {reason}. "
                           "Is the cluster up, and for `invoke up` clusters the SSH tunnel open?")

    def _failed(self, exc: ApiException, what: str) -> DeployError:
        detail = exc.reason or ""
        try:
            detail = json.loads(exc.body).get("message") or detail
        except (TypeError, ValueError, AttributeError):
            pass
        if exc.status == 409:
            return Conflict(f"{what}: {exc.status} {detail}")
        if exc.status in (401, 403):
            return DeployError(f"{what}: the API server refused it ({exc.status}: {detail}); the user of "
                               f"{self.kubeconfig} needs cluster-admin rights (kubeadm's admin.conf has them)")
        return DeployError(f"{what}: {exc.status} {detail}")

    def call(self, what: str, fn, *args, missing_ok: bool = False, **kwargs):
        """Run one API call; None for a 404 when missing_ok."""
        try:
            return fn(*args, _request_timeout=REQUEST_TIMEOUT_S, **kwargs)
        except ApiException as exc:
            if missing_ok and exc.status == 404:
                return None
            raise self._failed(exc, what) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unreachable(exc) from None

    # ---- reads and writes ----

    def check_reachable(self) -> str:
        info = self.call("GET /version", k8s.VersionApi(self.api).get_code)
        return info.git_version

    def read_daemonset(self, missing_ok: bool = False) -> dict | None:
        resp = self.call(f"read DaemonSet {spec.NAMESPACE}/{spec.DAEMONSET}", self.apps.read_namespaced_daemon_set,
                         spec.DAEMONSET, spec.NAMESPACE, _preload_content=False, missing_ok=True)
        if resp is None:
            if missing_ok:
                return None
            raise DeployError(f"no DaemonSet {spec.NAMESPACE}/{spec.DAEMONSET} on {self.host}: is this a "
                              "kubeadm cluster? (RAP replaces the kube-proxy that kubeadm installs)")
        return _loads(resp)

    def update_daemonset(self, mutate: Callable[[dict], dict]) -> dict:
        """Read, change with ``mutate``, write; again on a conflict (controllers write its status)."""
        def put(body):
            return _loads(self.call(f"update DaemonSet {spec.NAMESPACE}/{spec.DAEMONSET}",
                                    self.apps.replace_namespaced_daemon_set, spec.DAEMONSET, spec.NAMESPACE,
                                    body, _preload_content=False))
        return self._update(self.read_daemonset, put, mutate)

    def _update(self, read, put, mutate):
        return self._again_on_conflict(lambda: put(mutate(read())))

    def _again_on_conflict(self, write):
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                return write()
            except Conflict:
                if attempt == CONFLICT_ATTEMPTS - 1:
                    raise
                time.sleep(0.1 * (attempt + 1))

    def read_configmap(self, name: str, missing_ok: bool = False) -> dict | None:
        resp = self.call(f"read ConfigMap {spec.NAMESPACE}/{name}", self.core.read_namespaced_config_map,
                         name, spec.NAMESPACE, _preload_content=False, missing_ok=True)
        if resp is None:
            if missing_ok:
                return None
            raise DeployError(f"no ConfigMap {spec.NAMESPACE}/{name} on {self.host}: is this a kubeadm cluster? "
                              "(kubeadm keeps kube-proxy's KubeProxyConfiguration there)")
        return _loads(resp)

    def update_configmap(self, name: str, mutate: Callable[[dict], dict]) -> dict:
        """Read, change with ``mutate``, write; again on a conflict."""
        def put(body):
            return _loads(self.call(f"update ConfigMap {spec.NAMESPACE}/{name}",
                                    self.core.replace_namespaced_config_map, name, spec.NAMESPACE, body,
                                    _preload_content=False))
        return self._update(lambda: self.read_configmap(name), put, mutate)

    def create_configmap(self, body: dict) -> dict:
        name = body["metadata"]["name"]
        return _loads(self.call(f"create ConfigMap {spec.NAMESPACE}/{name}", self.core.create_namespaced_config_map,
                                spec.NAMESPACE, body, _preload_content=False))

    def delete_configmap(self, name: str) -> None:
        self.call(f"delete ConfigMap {spec.NAMESPACE}/{name}", self.core.delete_namespaced_config_map,
                  name, spec.NAMESPACE, missing_ok=True)

    # ---- the monitor's objects, any of the kinds in _KINDS, by spec.Ref ----

    def _method(self, verb: str, ref: spec.Ref):
        api, stem = _KINDS[ref.kind]
        return getattr(getattr(self, api), f"{verb}_{'namespaced_' if ref.namespace else ''}{stem}")

    def read_object(self, ref: spec.Ref) -> dict | None:
        """The object as the server has it; None when there is none."""
        where = (ref.namespace,) if ref.namespace else ()
        resp = self.call(f"read {ref}", self._method("read", ref), ref.name, *where,
                         _preload_content=False, missing_ok=True)
        return None if resp is None else _loads(resp)

    def apply_object(self, body: dict) -> None:
        """Create ``body``, or write it over the live object (spec.applied); again on a conflict."""
        ref = spec.ref(body)
        where = (ref.namespace,) if ref.namespace else ()

        def write():
            live = self.read_object(ref)
            if live is None:  # a create that races another is a 409 too: read again, then replace
                return self.call(f"create {ref}", self._method("create", ref), *where, body, _preload_content=False)
            return self.call(f"update {ref}", self._method("replace", ref), ref.name, *where,
                             spec.applied(live, body), _preload_content=False)
        self._again_on_conflict(write)

    def delete_object(self, ref: spec.Ref) -> bool:
        """Delete the object; False when there was none."""
        where = (ref.namespace,) if ref.namespace else ()
        return self.call(f"delete {ref}", self._method("delete", ref), ref.name, *where,
                         missing_ok=True) is not None

    def configmaps_labelled(self, selector: str) -> list[spec.Ref]:
        doc = _loads(self.call(f"list ConfigMaps {spec.NAMESPACE} -l {selector}", self.core.list_namespaced_config_map,
                               spec.NAMESPACE, label_selector=selector, _preload_content=False))
        return [spec.Ref("ConfigMap", item["metadata"]["name"], spec.NAMESPACE) for item in doc.get("items") or []]

    def wait_pods_gone(self, match_labels: dict, timeout_s: float, what: str) -> bool:
        """Poll until no Pod in kube-system carries ``match_labels`` (a Deployment's selector), or the time is up."""
        selector = ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))
        deadline = time.monotonic() + timeout_s
        said = False
        while True:
            doc = _loads(self.call(f"list Pods {spec.NAMESPACE} -l {selector}", self.core.list_namespaced_pod,
                                   spec.NAMESPACE, label_selector=selector, _preload_content=False))
            left = [item["metadata"]["name"] for item in doc.get("items") or []]
            if not left:
                return True
            if time.monotonic() >= deadline:
                return False
            if not said:
                self.say(f"  {what}: waiting for {', '.join(left)} to stop")
                said = True
            time.sleep(min(POLL_S, max(0.05, deadline - time.monotonic())))

    # ---- waiting ----

    def deployment_rollout(self, ref: spec.Ref) -> spec.Rollout:
        live = self.read_object(ref)
        if live is None:
            raise DeployError(f"{ref} is gone")
        return spec.deployment_rollout(live)

    def wait_rollout(self, timeout_s: float, what: str,
                     deployment: spec.Ref | None = None) -> tuple[bool, spec.Rollout | None]:
        """Poll the DaemonSet (or ``deployment``) until it runs the current template everywhere, or the time is up.

        Prints a line whenever the progress changes. Transient API failures
        while waiting are reported and retried until the deadline.
        """
        deadline = time.monotonic() + timeout_s
        last_text, state = None, None
        while True:
            try:
                state = (self.deployment_rollout(deployment) if deployment else
                         spec.rollout(self.read_daemonset()))
                text = state.describe()
            except DeployError as exc:
                text = f"API server not answering ({exc}); retrying"
            if text != last_text:
                left = max(0, deadline - time.monotonic())
                self.say(f"  {what}: {text} ({left:.0f}s left)")
                last_text = text
            if state is not None and state.done:
                return True, state
            if time.monotonic() >= deadline:
                return False, state
            time.sleep(min(POLL_S, max(0.05, deadline - time.monotonic())))
