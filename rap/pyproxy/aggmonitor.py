"""The Python proxy's reader of rap.aggregator's objects (``--monitor aggregator``).

The same contract as rap.go's aggregated monitor (docs/scale.md "The
aggregator's objects"): every published sample is stamped with the heartbeat
Lease's metrics timestamp, so all of it goes stale together when the
aggregator stops; RTTs are probed for at most ``rtt_probes`` nodes per period,
those hosting endpoints and the longest unmeasured first. Unlike rap.go it
lists the objects each period instead of watching them: the Python proxy is
the reference the Go one is compared with, not the one that has to scale.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Mapping

from rap.pyproxy.monitor import API_TIMEOUT_S, Stamps, merge, parse_timestamp, probe_rtt_ms
from rap.snapshot import Rtt, Snapshot, Usage

log = logging.getLogger("rap.pyproxy")

NAMESPACE = "kube-system"
LOAD_LABEL = "rap.io/load=true"
LOAD_PREFIX = "rap-load-"
LEASE = "rap-aggregator"
METRICS_TIME = "rap.io/metrics-timestamp"


class RecordError(ValueError):
    """A published record this reader cannot use."""


def _fraction(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e9
    return float(value) if ok else None


def parse_load(name: str, data: Mapping[str, str] | None) -> tuple[str, str, tuple[float, float] | None,
                                                                   dict[str, tuple[float, float]]]:
    """(node, ip, node usage or None, pod usage by IP) of one rap-load-<node> ConfigMap's data."""
    data = data or {}
    try:
        node = json.loads(data.get("node", ""))
        pods = json.loads(data.get("pods") or "{}")
    except json.JSONDecodeError as e:
        raise RecordError(f"ConfigMap {NAMESPACE}/{name}: not JSON ({e})") from None
    if not isinstance(node, dict) or not node.get("name") or not isinstance(pods, dict):
        raise RecordError(f"ConfigMap {NAMESPACE}/{name}: key node has no name, or pods is not an object")
    cpu, mem = _fraction(node.get("cpu")), _fraction(node.get("mem"))
    usage = (cpu, mem) if cpu is not None and mem is not None else None
    by_ip = {}
    for ip, u in pods.items():
        if isinstance(u, dict):
            pc, pm = _fraction(u.get("cpu")), _fraction(u.get("mem"))
            if pc is not None and pm is not None:
                by_ip[ip] = (pc, pm)
    return str(node["name"]), str(node.get("ip") or ""), usage, by_ip


def heartbeat_timestamp(annotations: Mapping[str, str] | None) -> str | None:
    """The Lease's metrics timestamp (RFC 3339 text), or None when absent or unreadable."""
    raw = (annotations or {}).get(METRICS_TIME)
    return raw if parse_timestamp(raw) is not None else None


def probe_order(candidates: Mapping[str, str], hosting: Iterable[str], last_at: Mapping[str, float],
                limit: int) -> list[str]:
    """At most ``limit`` node names: hosting endpoints first, then the longest unmeasured, then by name."""
    hosting = set(hosting)
    return sorted(candidates, key=lambda n: (n not in hosting, last_at.get(n, -1.0), n))[:limit]


class AggregatedMonitor:
    """One ``refresh`` per period, as rap.pyproxy.monitor.Monitor."""

    def __init__(self, api_client, policy, local_node: str, period_s: float, rtt_port: int, rtt_probes: int,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.api_client = api_client
        self.policy = policy
        self.local_node = local_node
        self.rtt_port = rtt_port
        self.rtt_probes = rtt_probes
        self.clock, self.wall = clock, wall
        self.stale_after_s = policy.config.stale_after_s
        self.timeout_s = min(period_s, 2.0)
        self.snapshot = Snapshot()
        self.stamps = Stamps()
        self._bad: dict[str, str] = {}  # ConfigMap name -> resourceVersion already logged
        self._ok: bool | None = None

    def refresh(self) -> Snapshot:
        try:
            maps, lease = self.fetch()
            error = None
        except Exception as e:  # noqa: BLE001 - any API failure: keep serving, go stale
            maps, lease, error = None, None, e
        now = self.clock()
        pods, nodes, addrs = {}, {}, {}
        if maps is not None:
            ts = heartbeat_timestamp(lease)
            at = self.stamps.at("aggregator", ts, now, self.wall()) if ts is not None else None
            if at is None:
                error = RecordError(f"no heartbeat (Lease {NAMESPACE}/{LEASE}) from rap.aggregator")
            elif now - at > self.stale_after_s:
                error = RecordError(f"the aggregator's newest metrics are {now - at:.1f} s old")
            records = self._records(maps)
            for node, ip, usage, by_ip in records:
                if ip and node != self.local_node:
                    addrs[node] = ip
                if error is None:
                    if usage is not None:
                        nodes[node] = Usage(*usage, at)
                    pods.update({ip_: Usage(c, m, at) for ip_, (c, m) in by_ip.items()})
        self._note(error)
        rtt = merge(self.snapshot.rtt, self._rtts(addrs), self.clock(), self.stale_after_s)
        self.snapshot = self.policy.update_snapshot(Snapshot(pods=pods, nodes=nodes, rtt=rtt))
        return self.snapshot

    def fetch(self) -> tuple[list[tuple[str, str, Mapping[str, str]]], Mapping[str, str] | None]:
        """[(name, resourceVersion, data)] of the load ConfigMaps, and the Lease's annotations (None if absent)."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        core = client.CoreV1Api(self.api_client)
        listed = core.list_namespaced_config_map(NAMESPACE, label_selector=LOAD_LABEL, _request_timeout=API_TIMEOUT_S)
        maps = [(m.metadata.name, m.metadata.resource_version, m.data) for m in listed.items
                if m.metadata.name.startswith(LOAD_PREFIX)]
        try:
            lease = client.CoordinationV1Api(self.api_client).read_namespaced_lease(
                LEASE, NAMESPACE, _request_timeout=API_TIMEOUT_S)
        except ApiException as e:
            if e.status != 404:
                raise
            return maps, None
        return maps, lease.metadata.annotations or {}

    def _records(self, maps) -> list:
        out = []
        for name, version, data in maps:
            try:
                out.append(parse_load(name, data))
                self._bad.pop(name, None)
            except RecordError as e:
                if self._bad.get(name) != version:
                    self._bad[name] = version
                    log.error("rap: %s; that node's samples are ignored until it is rewritten", e)
        return out

    def _rtts(self, addrs: Mapping[str, str]) -> dict[str, Rtt]:
        hosting = {e.node for s in getattr(self.policy, "_services", {}) for e in self.policy.endpoints(s)}
        last = {n: r.at for n, r in self.snapshot.rtt.items()}
        chosen = probe_order(addrs, hosting, last, self.rtt_probes)
        if not chosen:
            return {}
        with ThreadPoolExecutor(max_workers=min(16, len(chosen))) as pool:
            results = dict(zip(chosen, pool.map(
                lambda n: probe_rtt_ms(addrs[n], self.rtt_port, self.timeout_s), chosen)))
        at = self.clock()
        return {n: Rtt(ms, at) for n, ms in results.items() if ms is not None}

    def _note(self, error: BaseException | None) -> None:
        ok = error is None
        if self._ok == ok:
            return
        self._ok = ok
        if ok:
            log.info("rap: resource metrics available (monitor aggregator)")
        else:
            log.error("rap: cannot read resource metrics (%s); balancing as round robin until they return", error)
