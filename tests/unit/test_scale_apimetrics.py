"""rap.scale.apimetrics and rap.scale.audit: /metrics text and audit lines parsed, windows, baselines, per node."""

from __future__ import annotations

import json

import pytest

from rap.scale import apimetrics, audit
from rap.scale.apimetrics import Scrape, Window

# As kube-apiserver v1.21 prints them (labels in its order; a histogram's other series and HELP lines kept).
METRICS_T0 = """\
# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, ...
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="nodes",scope="cluster",subresource="",verb="LIST",version="v1"} 10
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="cluster",subresource="",verb="LIST",version="v1"} 10
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="namespace",subresource="",verb="PUT",version="v1"} 1000
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="cluster",subresource="",verb="WATCH",version="v1"} 2
apiserver_request_total{code="200",component="",dry_run="",group="",resource="",scope="",subresource="/metrics",verb="GET",version=""} 4
# TYPE apiserver_response_sizes histogram
apiserver_response_sizes_bucket{component="apiserver",group="",resource="pods",scope="cluster",subresource="",verb="LIST",version="v1",le="1000"} 0
apiserver_response_sizes_sum{component="apiserver",group="",resource="pods",scope="cluster",subresource="",verb="LIST",version="v1"} 1e+06
apiserver_response_sizes_count{component="apiserver",group="",resource="pods",scope="cluster",subresource="",verb="LIST",version="v1"} 10
apiserver_response_sizes_sum{component="apiserver",group="",resource="nodes",scope="cluster",subresource="",verb="LIST",version="v1"} 50000
apiserver_response_sizes_sum{component="apiserver",group="coordination.k8s.io",resource="leases",scope="namespace",subresource="",verb="PUT",version="v1"} 300000
# TYPE apiserver_watch_events_sizes histogram
apiserver_watch_events_sizes_sum{group="",kind="Node",version="v1"} 2000
apiserver_watch_events_sizes_count{group="",kind="Node",version="v1"} 2
"""


def _later(text: str, changes: dict[str, str]) -> str:
    for old, new in changes.items():
        assert old in text
        text = text.replace(old, new)
    return text


# 60 s later, with 3 RAP nodes on the per-node monitor at period 5 s: 12 rounds x 3 nodes = 36 more LISTs each,
# KWOK's lease PUTs 6000 more in both the baseline and the measured window.
BASE_T1 = _later(METRICS_T0, {'verb="PUT",version="v1"} 1000': 'verb="PUT",version="v1"} 7000',
                             'verb="PUT",version="v1"} 300000': 'verb="PUT",version="v1"} 2100000',
                             "/metrics\",verb=\"GET\",version=\"\"} 4": "/metrics\",verb=\"GET\",version=\"\"} 6"})
RAP_T1 = _later(BASE_T1, {'resource="nodes",scope="cluster",subresource="",verb="LIST",version="v1"} 10':
                          'resource="nodes",scope="cluster",subresource="",verb="LIST",version="v1"} 46',
                          'resource="pods",scope="cluster",subresource="",verb="LIST",version="v1"} 10':
                          'resource="pods",scope="cluster",subresource="",verb="LIST",version="v1"} 46',
                          'verb="LIST",version="v1"} 1e+06': 'verb="LIST",version="v1"} 3.7e+06',
                          'verb="LIST",version="v1"} 50000': 'verb="LIST",version="v1"} 230000',
                          'verb="WATCH",version="v1"} 2': 'verb="WATCH",version="v1"} 5',
                          'kind="Node",version="v1"} 2000': 'kind="Node",version="v1"} 2360'})


def test_parse_reads_the_three_families_and_nothing_else():
    values = apimetrics.parse(METRICS_T0)
    names = {name for name, _ in values}
    assert names == {apimetrics.REQUESTS, apimetrics.RESPONSE_BYTES, apimetrics.WATCH_BYTES}
    key = (apimetrics.RESPONSE_BYTES, tuple(sorted({"component": "apiserver", "group": "", "resource": "pods",
                                                     "scope": "cluster", "subresource": "", "verb": "LIST",
                                                     "version": "v1"}.items())))
    assert values[key] == 1e6


def test_parse_names_a_broken_line():
    with pytest.raises(apimetrics.MetricsTextError, match="line 2"):
        apimetrics.parse('# x\napiserver_request_total{verb="LIST"} many\n')


def test_window_rates_and_a_restarted_server():
    w = Window.between(Scrape(0, apimetrics.parse(METRICS_T0)), Scrape(60, apimetrics.parse(BASE_T1)))
    assert apimetrics.total(w.rates, apimetrics.REQUESTS) == pytest.approx((6000 + 2) / 60)
    with pytest.raises(ValueError, match="restarted"):
        Window.between(Scrape(0, apimetrics.parse(BASE_T1)), Scrape(60, apimetrics.parse(METRICS_T0)))
    with pytest.raises(ValueError):
        Window.between(Scrape(5, {}), Scrape(5, {}))


def test_cost_subtracts_the_baseline_series_by_series_and_divides_by_the_rap_nodes():
    baseline = Window.between(Scrape(0, apimetrics.parse(METRICS_T0)), Scrape(60, apimetrics.parse(BASE_T1)))
    window = Window.between(Scrape(100, apimetrics.parse(METRICS_T0)), Scrape(160, apimetrics.parse(RAP_T1)))
    cost = apimetrics.cost(window, baseline, nodes=3, period_s=5)
    # 72 LISTs over 60 s and 3 nodes = 0.4/s each = 2 per 5 s period; the WATCHes are not requests here.
    assert cost.requests_per_s == pytest.approx(0.4)
    assert cost.requests_per_period == pytest.approx(2.0)
    # (2.7 MB of pods + 180 kB of nodes) / 60 s / 3 nodes x 5 s; watch events 360 B the same way.
    assert cost.response_bytes_per_period == pytest.approx((2.7e6 + 1.8e5) / 60 / 3 * 5)
    assert cost.watch_bytes_per_period == pytest.approx(360 / 60 / 3 * 5)
    assert cost.bytes_per_period == pytest.approx(cost.response_bytes_per_period + cost.watch_bytes_per_period)
    assert cost.by_request == {"LIST core/nodes": pytest.approx(0.2), "LIST core/pods": pytest.approx(0.2)}
    with pytest.raises(ValueError):
        apimetrics.cost(window, baseline, nodes=0, period_s=5)


def test_cost_against_itself_is_zero():
    w = Window.between(Scrape(0, apimetrics.parse(METRICS_T0)), Scrape(60, apimetrics.parse(RAP_T1)))
    cost = apimetrics.cost(w, w, nodes=3, period_s=5)
    assert (cost.requests_per_s, cost.bytes_per_period, cost.by_request) == (0, 0, {})


def _event(user, verb, stage, resource="pods", group=""):
    return json.dumps({"kind": "Event", "stage": stage, "verb": verb, "user": {"username": user},
                       "objectRef": {"resource": resource, "apiGroup": group}, "requestURI": "/api/v1/" + resource})


def test_audit_counts_answered_requests_per_user_and_watches_apart(tmp_path):
    lines = [_event("rap-proxy:node-1", "list", "ResponseComplete"),
             _event("rap-proxy:node-1", "list", "ResponseComplete", "nodes"),
             _event("rap-proxy:node-2", "list", "ResponseComplete"),
             _event("rap-proxy:node-1", "watch", "ResponseStarted", "configmaps"),
             _event("rap-proxy:node-1", "watch", "ResponseComplete", "configmaps"),
             _event("rap-proxy:node-1", "get", "ResponseStarted"),  # not an answer yet
             "not json", "[1]"]
    counts = audit.count(lines)
    assert counts.requests == {"rap-proxy:node-1": 2, "rap-proxy:node-2": 1}
    assert counts.watches == {"rap-proxy:node-1": 1}
    assert counts.by_request["rap-proxy:node-1"] == {"list core/pods": 1, "list core/nodes": 1}
    log = audit.AuditLog(tmp_path / "audit.log")
    assert log.mark() == 0 and log.since(0).requests == {}
    log.path.write_text(lines[0] + "\n")
    mark = log.mark()
    with open(log.path, "a") as f:
        f.write(lines[2] + "\n" + lines[1][:20])  # the last line is still being written
    assert log.since(mark).requests == {"rap-proxy:node-2": 1}


def test_audit_policy_records_only_rap_clients():
    doc = json.loads(audit.policy(users=("rap-aggregator",)))
    assert doc["rules"][-1] == {"level": "None"}
    assert {"level": "Metadata", "userGroups": ["rap:node-proxies"]} in doc["rules"]
    assert {"level": "Metadata", "users": ["rap-aggregator"]} in doc["rules"]
    assert "RequestReceived" in doc["omitStages"]
