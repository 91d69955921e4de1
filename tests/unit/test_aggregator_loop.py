"""rap.aggregator.loop and .kube without a cluster: rounds over a fake API, the reflector over scripted responses."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timezone

import pytest
from kubernetes import client

from rap.aggregator import publish
from rap.aggregator.kube import NotSynced, Reflector
from rap.aggregator.loop import Aggregator, Settings
from rap.aggregator.usage import node_info, pod_info, pod_key
from rap.config import RapConfig

from tests.unit.test_aggregator_usage import node, node_item, pod, pod_item, res

SETTINGS = Settings.of(RapConfig(period_s=1.0))


class FakeKube:
    """The part of rap.aggregator.kube.Kube a round uses, in memory; ``fail`` names calls that raise."""

    namespace = "kube-system"

    def __init__(self, nodes, pods, pod_metrics, node_metrics):
        self.set_cluster(nodes, pods)
        self.pod_metrics, self.node_metrics = pod_metrics, node_metrics
        self.store: dict[str, dict] = {}  # ConfigMap name -> data
        self.writes: list[tuple[str, str]] = []
        self.renewals: list[datetime] = []
        self.fail: dict[str, Exception] = {}
        self.synced = True

    def set_cluster(self, nodes, pods):
        self.nodes = {n["metadata"]["name"]: node_info(n) for n in nodes}
        self.pods = {pod_key(p): i for p in pods if (i := pod_info(p)) is not None}

    def _maybe_fail(self, what):
        if what in self.fail:
            raise self.fail[what]

    def published(self):
        self._maybe_fail("published")
        return {name[len(publish.PREFIX):]: publish.read(data) for name, data in self.store.items()}

    def cluster(self):
        if not self.synced:
            raise NotSynced("pods: not listed yet")
        return dict(self.nodes), dict(self.pods)

    def metrics(self, plural):
        self._maybe_fail(f"metrics {plural}")
        return self.pod_metrics if plural == "pods" else self.node_metrics

    def create(self, record):
        self._write("create", record)

    def replace(self, record):
        self._write("replace", record)

    def _write(self, verb, record):
        self._maybe_fail(f"{verb} {record.name}")
        self.store[publish.configmap_name(record.name)] = publish.data(record)
        self.writes.append((verb, record.name))

    def delete(self, name):
        self._maybe_fail(f"delete {name}")
        del self.store[publish.configmap_name(name)]
        self.writes.append(("delete", name))

    def renew(self, metrics_time, duration_s, now=None):
        self._maybe_fail("renew")
        self.renewals.append(metrics_time)


def two_nodes(cpu="100m"):
    nodes = [node("node-1", "10.213.0.11", "1", "2Gi"), node("node-2", "10.213.0.12", "1", "2Gi")]
    pods = [pod("pod-1-1", "10.214.1.11", "node-1", {"limits": res("250m", "256Mi")}),
            pod("pod-2-1", "10.214.2.11", "node-2", {"limits": res("250m", "256Mi")})]
    pm = {"items": [pod_item("pod-1-1", res(cpu, "64Mi"), ts="2026-01-01T00:00:04Z"),
                    pod_item("pod-2-1", res("10m", "64Mi"), ts="2026-01-01T00:00:05Z")]}
    nm = {"items": [node_item("node-1", "200m", "512Mi"), node_item("node-2", "100m", "512Mi")]}
    return FakeKube(nodes, pods, pm, nm)


def test_steady_state_writes_only_the_lease():
    kube = two_nodes()
    agg = Aggregator(kube, SETTINGS)
    assert agg.step().created == 2
    kube.writes.clear()
    for _ in range(5):
        assert agg.step().writes == 0
    assert kube.writes == [] and len(kube.renewals) == 6
    assert kube.renewals[-1] == datetime(2026, 1, 1, 0, 0, 5, tzinfo=timezone.utc)  # the newest metrics timestamp
    assert json.loads(kube.store["rap-load-node-1"]["pods"]) == {"10.214.1.11": {"cpu": 0.4, "mem": 0.25}}


def test_a_restarted_aggregator_reads_what_is_published_and_writes_nothing_new():
    kube = two_nodes()
    Aggregator(kube, SETTINGS).step()
    kube.writes.clear()
    assert Aggregator(kube, SETTINGS).step().writes == 0 and kube.writes == []


def test_a_threshold_crossing_a_new_pod_and_a_gone_node_are_written():
    kube = two_nodes()
    agg = Aggregator(kube, SETTINGS)
    agg.step()
    kube.writes.clear()
    kube.pod_metrics["items"][0] = pod_item("pod-1-1", res("200m", "64Mi"))  # 0.4 -> 0.8: a step and a threshold
    agg.step()
    assert kube.writes == [("replace", "node-1")]
    kube.writes.clear()
    kube.pod_metrics["items"][0] = pod_item("pod-1-1", res("198m", "64Mi"))  # 0.79: below the threshold again
    agg.step()
    assert kube.writes == [("replace", "node-1")]
    kube.writes.clear()
    nodes = [node("node-1", "10.213.0.11", "1", "2Gi")]
    pods = [pod("pod-1-1", "10.214.1.11", "node-1", {"limits": res("250m", "256Mi")}),
            pod("pod-1-2", "10.214.1.12", "node-1", {"limits": res("250m", "256Mi")})]
    kube.set_cluster(nodes, pods)
    kube.pod_metrics["items"].append(pod_item("pod-1-2", res("0", "0")))
    agg.step()
    assert kube.writes == [("replace", "node-1"), ("delete", "node-2")]
    assert set(kube.store) == {"rap-load-node-1"}


@pytest.mark.parametrize("fault", ["metrics pods", "metrics nodes", "renew"])
def test_a_failed_round_does_not_renew_and_is_logged_once_per_change(caplog, fault):
    kube = two_nodes()
    agg = Aggregator(kube, SETTINGS)
    caplog.set_level(logging.INFO, "rap.aggregator")
    assert agg.step() is not None
    renewed = len(kube.renewals)
    kube.fail[fault] = client.ApiException(status=503, reason="Service Unavailable")
    for _ in range(4):
        assert agg.step() is None
    assert len(kube.renewals) == renewed
    del kube.fail[fault]
    assert agg.step() is not None and len(kube.renewals) == renewed + 1
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines  # working, failing (once, not four times), working again
    assert "HTTP 503 Service Unavailable" in lines[1] and "not renewed" in lines[1]
    assert caplog.records[1].exc_info is None  # an API error: no traceback


def test_a_failed_write_fails_the_round_and_is_retried_next_round():
    kube = two_nodes()
    kube.fail["create node-2"] = client.ApiException(status=403, reason="Forbidden")
    agg = Aggregator(kube, SETTINGS)
    assert agg.step() is None and kube.renewals == []
    assert kube.writes == [("create", "node-1")]  # the others are still written
    del kube.fail["create node-2"]
    assert agg.step().created == 1 and len(kube.renewals) == 1


def test_writes_go_out_side_by_side():
    # Every write of a round waits at one barrier for all the others: written one at a time, the
    # first would time out there and the round would fail (a 1,000-node round took six periods so).
    from rap.aggregator import loop

    count = loop.WRITERS
    names = [f"node-{i}" for i in range(1, count + 1)]
    kube = FakeKube([node(n, f"10.213.0.{i}", "1", "2Gi") for i, n in enumerate(names, 1)], [],
                    {"items": []}, {"items": [node_item(n, "100m", "512Mi") for n in names]})
    barrier = threading.Barrier(count, timeout=5)
    write = kube._write
    kube._write = lambda verb, record: (barrier.wait(), write(verb, record))
    result = Aggregator(kube, SETTINGS).step()
    assert result is not None and result.created == count and sorted(kube.store) == sorted(
        publish.configmap_name(n) for n in names)


def test_no_round_before_what_is_published_was_listed():
    kube = two_nodes()
    kube.fail["published"] = client.ApiException(status=500, reason="Internal Server Error")
    agg = Aggregator(kube, SETTINGS)
    assert agg.step() is None and kube.writes == [] and kube.renewals == []
    del kube.fail["published"]
    assert agg.step().created == 2


def test_no_round_before_the_reflectors_listed():
    kube = two_nodes()
    kube.synced = False
    agg = Aggregator(kube, SETTINGS)
    assert agg.step() is None and kube.renewals == [] and kube.writes == []


def test_a_bug_is_logged_with_its_traceback_and_the_loop_goes_on(caplog):
    kube = two_nodes()
    kube.fail["metrics pods"] = TypeError("a bug")
    agg = Aggregator(kube, SETTINGS)
    assert agg.step() is None
    assert caplog.records[-1].exc_info is not None
    del kube.fail["metrics pods"]
    assert agg.step() is not None


def test_run_ends_when_stopped():
    kube = two_nodes()
    stop = threading.Event()
    agg = Aggregator(kube, Settings.of(RapConfig(period_s=0.01)))
    t = threading.Thread(target=agg.run, args=(stop,))
    t.start()
    while len(kube.renewals) < 3:
        stop.wait(0.01)
    stop.set()
    t.join(5)
    assert not t.is_alive()


def test_the_lease_lasts_stale_after():
    assert Settings.of(RapConfig(period_s=5)).lease_s == 15
    assert Settings.of(RapConfig(period_s=0.1)).lease_s == 1


# ---- the reflector


class Resp:
    """A urllib3 response: a list's body, or a watch's lines."""

    def __init__(self, doc=None, events=()):
        self.data = json.dumps(doc).encode() if doc is not None else b""
        self.lines = [json.dumps(e).encode() + b"\n" for e in events]
        self.closed = False

    def stream(self, amt=None, decode_content=False):
        yield from self.lines

    def release_conn(self):
        pass

    def close(self):
        self.closed = True


class Script:
    """list_call: answers lists with ``lists`` in turn and watches with ``watches`` (a Resp or an exception)."""

    def __init__(self, lists, watches, stop):
        self.lists, self.watches, self.stop, self.calls = list(lists), list(watches), stop, []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        queue = self.watches if kwargs.get("watch") else self.lists
        if not queue:
            self.stop.set()
            return Resp(events=())
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def named(name, rv, **extra):
    return {"metadata": {"name": name, "resourceVersion": rv}, **extra}


def reflect(lists, watches):
    stop = threading.Event()
    script = Script(lists, watches, stop)
    r = Reflector("things", script, key=lambda o: o["metadata"]["name"],
                  convert=lambda o: None if o.get("skip") else o["metadata"]["resourceVersion"],
                  field_selector="status.phase=Running", backoff=(0.001, 0.002), watch_s=1)
    return r, script, stop


def test_the_reflector_lists_then_follows_the_watch_from_the_last_resource_version():
    r, script, stop = reflect(
        [Resp({"metadata": {"resourceVersion": "10"}, "items": [named("a", "9"), named("b", "8")]})],
        [Resp(events=[{"type": "ADDED", "object": named("c", "11")},
                      {"type": "MODIFIED", "object": named("a", "12")},
                      {"type": "DELETED", "object": named("b", "13")},
                      {"type": "MODIFIED", "object": named("c", "14", skip=True)},  # converts to None: gone
                      {"type": "BOOKMARK", "object": named("", "20")}]),
         Resp(events=[{"type": "ADDED", "object": named("d", "21")}])])
    with pytest.raises(NotSynced):
        r.items()
    r.run(stop)
    assert r.items() == {"a": "12", "d": "21"} and r.lists == 1
    watches = [c for c in script.calls if c.get("watch")]
    assert [w["resource_version"] for w in watches[:3]] == ["10", "20", "21"]
    assert all(c["field_selector"] == "status.phase=Running" for c in script.calls)
    assert script.calls[0]["resource_version"] == "0" and watches[0]["allow_watch_bookmarks"] is True


def test_the_reflector_relists_on_410_gone_and_after_an_error():
    r, script, stop = reflect(
        [Resp({"metadata": {"resourceVersion": "10"}, "items": [named("a", "9")]}),
         Resp({"metadata": {"resourceVersion": "30"}, "items": [named("b", "29")]}),
         OSError("connection refused"),
         Resp({"metadata": {"resourceVersion": "40"}, "items": [named("c", "39")]}),
         Resp({"metadata": {"resourceVersion": "50"}, "items": [named("e", "49")]})],
        [Resp(events=[{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}]),
         OSError("connection reset"),
         Resp(events=[{"type": "ERROR", "object": {"kind": "Status", "code": 500, "reason": "InternalError"}}])])
    r.run(stop)
    assert r.lists == 4 and r.items() == {"e": "49"}
    # list, watch (410) -> list at once, watch (reset) -> list (refused) -> list, watch (500) -> list, watch
    assert [c.get("watch", False) for c in script.calls] == [False, True, False, True, False, False, True, False, True]


def test_an_unsynced_reflector_says_so():
    r, script, stop = reflect([OSError("refused")], [])
    stop.set()
    with pytest.raises(NotSynced, match="things"):
        r.items()
