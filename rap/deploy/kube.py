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
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                return put(mutate(read()))
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

    def apply_rbac(self) -> None:
        """Create the monitor's ClusterRole and ClusterRoleBinding, or make them as spec says."""
        for kind, body, read, create, replace in (
            ("ClusterRole", spec.cluster_role(), self.rbac.read_cluster_role,
             self.rbac.create_cluster_role, self.rbac.replace_cluster_role),
            ("ClusterRoleBinding", spec.cluster_role_binding(), self.rbac.read_cluster_role_binding,
             self.rbac.create_cluster_role_binding, self.rbac.replace_cluster_role_binding),
        ):
            what = f"{kind} {spec.RBAC_NAME}"
            current = self.call(f"read {what}", read, spec.RBAC_NAME, _preload_content=False, missing_ok=True)
            if current is None:
                self.call(f"create {what}", create, body, _preload_content=False)
            else:
                body["metadata"]["resourceVersion"] = _loads(current)["metadata"]["resourceVersion"]
                self.call(f"update {what}", replace, spec.RBAC_NAME, body, _preload_content=False)

    def remove_rbac(self) -> None:
        self.call(f"delete ClusterRoleBinding {spec.RBAC_NAME}", self.rbac.delete_cluster_role_binding,
                  spec.RBAC_NAME, missing_ok=True)
        self.call(f"delete ClusterRole {spec.RBAC_NAME}", self.rbac.delete_cluster_role,
                  spec.RBAC_NAME, missing_ok=True)

    # ---- waiting ----

    def wait_rollout(self, timeout_s: float, what: str) -> tuple[bool, spec.Rollout | None]:
        """Poll the DaemonSet until every node runs the current template, or the time is up.

        Prints a line whenever the progress changes. Transient API failures
        while waiting are reported and retried until the deadline.
        """
        deadline = time.monotonic() + timeout_s
        last_text, state = None, None
        while True:
            try:
                state = spec.rollout(self.read_daemonset())
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
