"""rap.aggregator against the real local cluster: its objects appear, steady state writes only the Lease,
a pod added is published, the Lease stops being renewed while metrics fail (and resumes after), its
credential can do what its roles say and no more, and SIGTERM ends it.

One 2-node cluster (stock kube-proxy: the aggregator needs no RAP build), the aggregator added by
``rap.aggregator.local.start`` with the cluster's period (1 s). Run it as the others, one cluster at a time:
``flock /tmp/rap-cluster.lock python3 -m pytest -m e2e tests/e2e/test_aggregator.py -x``.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime, timezone

import pytest
from kubernetes import client

from rap.aggregator import local, publish
from rap.config import RapConfig
from rap.localcluster import cluster, config, objects, pki, procs
from rap.localcluster.metrics import control

from tests.e2e.clusters import running, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NS = publish.DEFAULT_NAMESPACE
PERIOD_S = 1.0


@pytest.fixture(scope="module")
def agg_cluster():
    c = config.ClusterConfig(nodes=2, proxy="stock", default_pods=1, rap_period_s=PERIOD_S)
    with running(c, rap=False) as (runtime, st):
        pid = local.start(runtime)
        yield runtime, st, objects.api_client(st.kubeconfig), pid


def loads(api) -> dict[str, client.V1ConfigMap]:
    items = client.CoreV1Api(api).list_namespaced_config_map(NS, label_selector=publish.LABEL_SELECTOR).items
    return {cm.metadata.name: cm for cm in items}


def lease(api) -> client.V1Lease | None:
    try:
        return client.CoordinationV1Api(api).read_namespaced_lease(publish.LEASE, NS)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def renewals(api, seconds: float) -> list[datetime]:
    """The distinct renewTimes seen while polling the Lease for ``seconds``."""
    seen: list[datetime] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t = lease(api).spec.renew_time
        if not seen or t != seen[-1]:
            seen.append(t)
        time.sleep(0.2)
    return seen


def log_text(runtime) -> str:
    return procs.log_path(runtime, local.PROCESS).read_text(errors="replace")


def test_the_objects_appear_with_the_contracts_content(agg_cluster):
    runtime, st, api, pid = agg_cluster
    maps = wait_for(lambda: (m := loads(api)) and len(m) == 2 and lease(api) is not None and m, 30,
                    "rap-load-node-1, rap-load-node-2 and the Lease")
    for i in (1, 2):
        cm = maps[f"rap-load-node-{i}"]
        assert cm.metadata.labels["rap.io/node-id"] == publish.node_id(f"node-{i}")  # what a bounded view selects by
        node = json.loads(cm.data["node"])
        assert node["name"] == f"node-{i}" and node["ip"] == config.node_ip(i)
        pods = json.loads(cm.data["pods"])
        assert set(pods) == {p["ip"] for p in st.pods if p["node"] == f"node-{i}"}
        for u in [*pods.values(), node]:
            assert 0 <= u["cpu"] <= 1.5 and 0 <= u["mem"] <= 1 and round(u["cpu"], 2) == u["cpu"]
    hb = lease(api)
    stamp = datetime.fromisoformat(hb.metadata.annotations[publish.TIMESTAMP_ANNOTATION])
    assert stamp.tzinfo is not None and abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 30
    assert hb.spec.lease_duration_seconds == 3 and hb.spec.holder_identity


def test_steady_state_writes_only_the_lease(agg_cluster):
    runtime, st, api, pid = agg_cluster
    wait_for(lambda: len(loads(api)) == 2, 30, "both ConfigMaps")
    time.sleep(3 * PERIOD_S)  # past the first rounds' settling
    before = {name: cm.metadata.resource_version for name, cm in loads(api).items()}
    seen = renewals(api, 6 * PERIOD_S)
    after = {name: cm.metadata.resource_version for name, cm in loads(api).items()}
    assert after == before, "a ConfigMap was rewritten in steady state"
    assert len(seen) >= 4, f"the Lease was renewed {len(seen) - 1} times in 6 periods"


def test_a_record_without_the_node_label_is_relabelled(agg_cluster):
    """A record an older aggregator wrote (no rap.io/node-id) would be outside every bounded view for good."""
    runtime, st, api, pid = agg_cluster
    wait_for(lambda: len(loads(api)) == 2, 30, "both ConfigMaps")
    core = client.CoreV1Api(api)
    core.patch_namespaced_config_map("rap-load-node-2", NS, {"metadata": {"labels": {"rap.io/node-id": None}}})
    assert "rap.io/node-id" not in loads(api)["rap-load-node-2"].metadata.labels
    # The running aggregator lists what is published only every RESYNC_S; a new one (here one round of
    # --once, on the same credential) lists it first, as after an upgrade.
    once = subprocess.run([*local.argv(runtime, RapConfig(period_s=PERIOD_S)), "--once"], capture_output=True,
                          text=True, timeout=60)
    assert once.returncode == 0, once.stderr[-2000:]
    assert loads(api)["rap-load-node-2"].metadata.labels.get("rap.io/node-id") == publish.node_id("node-2")


def test_a_new_pod_is_published(agg_cluster):
    runtime, st, api, pid = agg_cluster
    added = cluster.add_pod(1, runtime)
    wait_for(lambda: added["ip"] in json.loads(loads(api)["rap-load-node-1"].data["pods"]), 30,
             f"{added['name']} ({added['ip']}) in rap-load-node-1")


def test_the_lease_stops_while_metrics_fail_and_resumes_after(agg_cluster):
    runtime, st, api, pid = agg_cluster
    wait_for(lambda: lease(api) is not None, 30, "the Lease")
    control.set_failing(runtime, True)
    try:
        time.sleep(2 * PERIOD_S)  # a round in flight may still renew once
        stuck = renewals(api, 5 * PERIOD_S)
        assert len(stuck) == 1, f"the Lease was renewed while metrics failed: {stuck}"
        assert procs.alive(pid), "the aggregator exited on a metrics failure"
    finally:
        control.set_failing(runtime, False)
    frozen = stuck[0]
    wait_for(lambda: lease(api).spec.renew_time > frozen, 30, "the Lease renewed after metrics came back")
    text = log_text(runtime)
    assert text.count("503") == 1 and "Traceback" not in text, text[-2000:]  # once per change, not per period


def test_its_credential_does_what_its_roles_say_and_no_more(agg_cluster):
    runtime, st, api, pid = agg_cluster
    mine = objects.api_client(str(local.kubeconfig(runtime)))
    core = client.CoreV1Api(mine)
    core.list_node()
    core.list_pod_for_all_namespaces()
    core.list_namespaced_config_map(NS)
    for denied in (lambda: core.list_namespaced_secret(NS),
                   lambda: core.list_namespaced_config_map("default"),
                   lambda: core.create_namespaced_config_map("default", {"metadata": {"name": "x"}}),
                   lambda: core.delete_namespaced_pod(st.pods[0]["name"], "default")):
        with pytest.raises(client.ApiException) as info:
            denied()
        assert info.value.status == 403
    proxy = client.CoreV1Api(objects.api_client(str(pki.Pki(runtime / "pki").proxy_kubeconfig("node-1"))))
    proxy.list_namespaced_config_map(NS, label_selector=publish.LABEL_SELECTOR)  # the aggregated kube-proxy's Role
    client.CoordinationV1Api(proxy.api_client).read_namespaced_lease(publish.LEASE, NS)
    with pytest.raises(client.ApiException) as info:
        proxy.delete_namespaced_config_map("rap-load-node-1", NS)
    assert info.value.status == 403


def test_sigterm_ends_it_cleanly(agg_cluster):
    runtime, st, api, pid = agg_cluster
    local.stop(runtime)
    assert not procs.alive(pid) and local.running(runtime) is None
    assert "rap.aggregator stopped (signal)" in log_text(runtime)
