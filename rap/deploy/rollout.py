"""`invoke deploy` and `invoke rollback`: switch kube-system/kube-proxy to RAP, and back.

deploy records what it replaces in the ConfigMap kube-system/rap-rollback
(so rollback works from any machine with the kubeconfig), creates what RAP's
monitor needs (spec.monitor_objects: the per-node monitor's ClusterRole, or
for ``--monitor aggregator`` the kube-proxies' Role in kube-system and the
aggregator's ServiceAccount, roles and Deployment), then changes the
kube-proxy ConfigMap (mode: userspace) and DaemonSet (image, RAP_* env,
restart stamp), and waits until the aggregator is available and every node
runs the new pods. If they are not all up within the timeout it puts back
what was there before this command ran and fails.

Deploying again while RAP is deployed updates it in place: the record keeps
the state from before the *first* deploy, so rollback always returns to the
stock kube-proxy. Once a deploy is up, what the other monitor needed is
removed, so a switch of monitor leaves no role behind; rollback removes what
either monitor needed.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

from rap.deploy import spec
from rap.deploy.kube import Cluster
from rap.deploy.spec import DeployError, DeployOptions
from rap.status import Status

Say = Callable[[str], None]


@contextmanager
def _connected(kubeconfig: str | None, say: Say) -> Iterator[Cluster]:
    """The API server, checked to answer; the connection is closed after use."""
    cluster = Cluster(kubeconfig, say)
    version = cluster.check_reachable()
    say(f"API server {cluster.host} (Kubernetes {version}), kubeconfig {cluster.kubeconfig}")
    try:
        yield cluster
    finally:
        cluster.close()


def _put_back(cluster: Cluster, state: dict, *, configmap: bool, daemonset: bool) -> None:
    """Write ``state`` (container fields and config.conf) back into the live objects."""
    if configmap:
        cluster.update_configmap(spec.CONFIGMAP, lambda cm: spec.with_config(cm, state["config.conf"]))
    if daemonset:
        when = spec.now_rfc3339()
        cluster.update_daemonset(lambda ds: spec.restored_daemonset(ds, state["daemonset"], when))


def deploy(opts: DeployOptions, kubeconfig: str | None = None, say: Say | None = None) -> spec.Rollout:
    """Switch the kube-proxy DaemonSet to ``opts.image`` with RAP's configuration, and wait for it.

    Progress goes to ``say``, by default ``[deploy] ...`` lines (rap.status).
    """
    say = say or Status("deploy").say
    with _connected(kubeconfig, say) as cluster:
        return _deploy(cluster, opts, say)


def _deploy(cluster: Cluster, opts: DeployOptions, say: Say) -> spec.Rollout:
    ds = cluster.read_daemonset()
    cm = cluster.read_configmap(spec.CONFIGMAP)
    current = spec.container_state(ds)  # also checks the container is there
    config_text = (cm.get("data") or {}).get(spec.CONFIG_KEY)
    if config_text is None:
        raise DeployError(f"ConfigMap {spec.NAMESPACE}/{spec.CONFIGMAP} has no {spec.CONFIG_KEY} key; "
                          "is this a kubeadm cluster?")
    new_config = spec.set_userspace(config_text)  # also checks it is a KubeProxyConfiguration
    when = spec.now_rfc3339()

    record_cm = cluster.read_configmap(spec.RECORD, missing_ok=True)
    first = record_cm is None
    if first:
        record = spec.make_record(ds, cm, opts.image, when)
        say(f"recording the current kube-proxy (image {current['image']}, mode "
            f"{spec.proxy_mode(config_text) or '(default)'}) in ConfigMap {spec.NAMESPACE}/{spec.RECORD}")
    else:
        record = spec.parse_record(record_cm)
        say(f"RAP is already deployed (since {record.get('recordedAt')}, image {record.get('deployedImage')}): "
            f"updating it in place; the record of the original kube-proxy "
            f"({record['daemonset']['image']}) is kept for `invoke rollback`")
    objects = spec.deployed_objects(opts)
    # An undo puts each of them back as it is now (an earlier deploy's), or deletes it if there is none.
    previous = {"daemonset": current, "config.conf": config_text,
                "objects": {spec.ref(o): cluster.read_object(spec.ref(o)) for o in objects}}

    env = spec.rap_env(opts, spec.kubeconfig_mount(ds, cm))
    done: set[str] = set()
    try:
        if first:
            cluster.create_configmap(spec.record_configmap(record))
            done.add("record")
        done.add("objects")  # before the first write: an undo of some of them is safe
        for obj in objects:
            cluster.apply_object(obj)
        say(f"what the {opts.monitor.monitor} monitor needs: {', '.join(str(spec.ref(o)) for o in objects)}")
        if new_config != config_text:
            cluster.update_configmap(spec.CONFIGMAP, lambda cm: spec.with_config(cm, new_config))
            done.add("configmap")
        say(f"ConfigMap {spec.NAMESPACE}/{spec.CONFIGMAP}: mode {spec.USERSPACE}")
        cluster.update_daemonset(lambda live: spec.deployed_daemonset(live, opts, env, when))
        done.add("daemonset")
        say(f"DaemonSet {spec.NAMESPACE}/{spec.DAEMONSET}: image {opts.image}, "
            f"{', '.join(e['name'] for e in env)}; restarting every kube-proxy pod")
    except BaseException as exc:
        say(f"deploy failed part-way ({exc.__class__.__name__}); putting back what it changed")
        try:
            _undo(cluster, previous, done, first, opts.timeout_s, say)
        except Exception as undo_exc:  # the first failure is the one to report
            say(f"could not put everything back ({undo_exc}); run `invoke rollback` once the API server answers")
        raise

    try:
        failed, state = _wait(cluster, opts, say)
    except KeyboardInterrupt:
        say("interrupted: kube-proxy is left as it is now; `invoke rollback` restores the original")
        raise
    if failed is None:
        removed = _remove(cluster, spec.other_monitor_refs(opts.monitor.monitor), opts.timeout_s, say)
        if removed:
            say(f"removed what another monitor needed: {', '.join(removed)}")
        if not first:
            record["deployedImage"] = opts.image
            text = spec.record_configmap(record)["data"][spec.RECORD_KEY]
            cluster.update_configmap(spec.RECORD, lambda cm: {**cm, "data": {**cm["data"], spec.RECORD_KEY: text}})
        say(f"RAP kube-proxy {opts.image} runs on every node ({state.desired})"
            + (f", fed by the aggregator {opts.aggregator_image}" if opts.aggregated else "")
            + f"; `invoke rollback` restores {record['daemonset']['image']}")
        return state

    progress = state.describe() if state else "no status"
    say(f"{failed} not ready within {opts.timeout_s:g}s ({progress}): rolling back to {current['image']}")
    _undo(cluster, previous, done, first, opts.timeout_s, say)
    back_ok, back_state = cluster.wait_rollout(opts.timeout_s, "kube-proxy (rolled back)")
    restored = (f"rolled back to {current['image']}, which runs on every node again" if back_ok else
                f"rolled back to {current['image']}, but that is not running on every node either "
                f"({back_state.describe() if back_state else 'no status'})")
    if failed == "kube-proxy":
        raise DeployError(
            f"RAP kube-proxy {opts.image} was not running on every node within {opts.timeout_s:g}s "
            f"({progress}); {restored}. Check that every node can pull the image and why the pods fail: "
            f"kubectl -n {spec.NAMESPACE} get pods -l k8s-app=kube-proxy -o wide; "
            f"kubectl -n {spec.NAMESPACE} describe pods -l k8s-app=kube-proxy")
    name = spec.AGGREGATOR_DEPLOYMENT.name
    raise DeployError(
        f"the aggregator ({spec.AGGREGATOR_DEPLOYMENT}, image {opts.aggregator_image}) was not available within "
        f"{opts.timeout_s:g}s ({progress}); {restored}. Check that the nodes can pull the image and that it holds "
        f"python3 and the rap package: kubectl -n {spec.NAMESPACE} describe deployment {name}; "
        f"kubectl -n {spec.NAMESPACE} logs deployment/{name}")


def _wait(cluster: Cluster, opts: DeployOptions, say: Say) -> tuple[str | None, spec.Rollout | None]:
    """Wait, within one --timeout, for the aggregator (if any) and then for every node to run the new kube-proxy.

    (None, the kube-proxies' rollout) when both are up, else (what was not, its rollout).
    """
    deadline = time.monotonic() + opts.timeout_s
    if opts.aggregated:
        say(f"waiting up to {opts.timeout_s:g}s for the aggregator {opts.aggregator_image} to be available "
            f"and every node to run {opts.image}")
        ok, state = cluster.wait_rollout(opts.timeout_s, "aggregator", spec.AGGREGATOR_DEPLOYMENT)
        if not ok:
            return "the aggregator", state
    else:
        say(f"waiting up to {opts.timeout_s:g}s for every node to run {opts.image}")
    ok, state = cluster.wait_rollout(max(0.0, deadline - time.monotonic()), "kube-proxy")
    return (None if ok else "kube-proxy"), state


def _remove(cluster: Cluster, refs: list[spec.Ref], timeout_s: float, say: Say) -> list[str]:
    """Delete ``refs`` (an absent one is fine) in reverse creation order: the Deployment, then bindings before roles.

    Once an aggregator's Deployment is deleted and its pods have stopped, what it
    published goes too (deleted while it still ran, it would write them again).
    What was deleted, by name.
    """
    removed, selectors = [], []
    for ref in reversed(refs):
        if ref.kind == "Deployment":
            live = cluster.read_object(ref)
            if live is not None:
                selectors.append(live["spec"]["selector"].get("matchLabels") or {})
        if cluster.delete_object(ref):
            removed.append(str(ref))
    if any(ref == spec.AGGREGATOR_DEPLOYMENT for ref in refs):
        if not all(cluster.wait_pods_gone(s, timeout_s, "aggregator") for s in selectors):
            say(f"the aggregator's pods are still stopping after {timeout_s:g}s; deleting what it published "
                "anyway (its roles are gone, so it can write no more)")
        for ref in [*cluster.configmaps_labelled(spec.PUBLISHED_SELECTOR), spec.AGGREGATOR_LEASE]:
            if cluster.delete_object(ref):
                removed.append(str(ref))
    return removed


def _undo(cluster: Cluster, previous: dict, done: set[str], first: bool, timeout_s: float, say: Say) -> None:
    """Put back what this deploy changed. On a first deploy also drop the record."""
    _put_back(cluster, previous, configmap="configmap" in done, daemonset="daemonset" in done)
    if "objects" in done:
        before = previous["objects"]
        _remove(cluster, [ref for ref, live in before.items() if live is None], timeout_s, say)
        for live in before.values():
            if live is not None:
                cluster.apply_object(spec.restorable(live))
    if first and "record" in done:
        cluster.delete_configmap(spec.RECORD)
    say(f"put back: image {previous['daemonset']['image']}, the previous {spec.CONFIG_KEY} and the monitor's objects"
        + ("; removed the record" if first else "; the record of the original is kept"))


def rollback(kubeconfig: str | None = None, timeout_s: float = spec.DEFAULT_TIMEOUT_S,
             say: Say | None = None) -> spec.Rollout:
    """Put back exactly what the first deploy recorded, remove what either monitor needed and the record, and wait.

    Progress goes to ``say``, by default ``[rollback] ...`` lines (rap.status).
    """
    if not timeout_s > 0:
        raise DeployError(f"--timeout: must be > 0 seconds, got {timeout_s!r}")
    say = say or Status("rollback").say
    with _connected(kubeconfig, say) as cluster:
        return _rollback(cluster, timeout_s, say)


def _rollback(cluster: Cluster, timeout_s: float, say: Say) -> spec.Rollout:
    record_cm = cluster.read_configmap(spec.RECORD, missing_ok=True)
    if record_cm is None:
        raise DeployError(f"nothing to roll back: there is no record ConfigMap {spec.NAMESPACE}/{spec.RECORD} "
                          f"on {cluster.host}; `invoke deploy` has not run on this cluster, "
                          "or it was already rolled back")
    record = spec.parse_record(record_cm)
    original = record["daemonset"]
    say(f"restoring kube-proxy as recorded at {record.get('recordedAt')}: image {original['image']}, "
        f"mode {spec.proxy_mode(record['configmap'][spec.CONFIG_KEY]) or '(default)'}")
    _put_back(cluster, {"daemonset": original, "config.conf": record["configmap"][spec.CONFIG_KEY]},
              configmap=True, daemonset=True)
    removed = _remove(cluster, spec.all_monitor_refs(), timeout_s, say)
    say(f"removed {', '.join(removed) if removed else 'no monitor object (none was there)'}")
    cluster.delete_configmap(spec.RECORD)
    say(f"deleted the record {spec.NAMESPACE}/{spec.RECORD}")
    say(f"waiting up to {timeout_s:g}s for every node to run {original['image']}")
    ok, state = cluster.wait_rollout(timeout_s, "kube-proxy")
    if not ok:
        raise DeployError(
            f"kube-proxy is restored to {original['image']} but not running on every node within "
            f"{timeout_s:g}s ({state.describe() if state else 'no status'}); see "
            f"kubectl -n {spec.NAMESPACE} get pods -l k8s-app=kube-proxy -o wide")
    say(f"rolled back: {original['image']} runs on every node ({state.desired})")
    return state
