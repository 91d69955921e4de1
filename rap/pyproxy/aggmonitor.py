"""The Python proxy's reader of rap.aggregator's objects (``--monitor aggregator``).

The same contract as rap.go's aggregated monitor (docs/scale.md "The
aggregator's objects"): every published sample is stamped with the heartbeat
Lease's metrics timestamp, so all of it goes stale together when the
aggregator stops; RTTs are probed for at most ``rtt_probes`` nodes per period,
those hosting endpoints and the longest unmeasured first. Unlike rap.go it
lists the objects each period instead of watching them: the Python proxy is
the reference the Go one is compared with, not the one that has to scale.

``parse_load`` and ``published_samples`` are the translation of the objects
into the decision's samples; the conformance vectors' ``published``
(rap.vectors) go through them, as rap.go's harness goes through parseRAPLoad
and rapAggSnapshot, so the two readers are checked against each other.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Mapping, NamedTuple

from rap.aggregator.publish import NODE_LABEL, node_id
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


# The heartbeat's timestamp, as rap.go's aggregated monitor reads it too (rapAggRFC3339): RFC 3339 with
# an upper-case T and Z, at most nanoseconds. Alone, each parser took forms the other refused:
# fromisoformat a space for the T or no separators at all, Go's time.Parse a one-digit hour or +24:00.
RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
                     r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])")


class Record(NamedTuple):
    """One node's published record, parsed: what the decision may use of it."""

    node: str  # the node's name
    ip: str  # its InternalIP, "" when none (no RTT probe)
    usage: tuple[float, float] | None  # the node's (cpu, mem); None when it has no usable sample
    pods: dict[str, tuple[float, float]]  # (cpu, mem) by pod IP, only the usable samples


def _not_json(constant: str) -> float:
    raise ValueError(f"{constant} is not a JSON value")


def _object(name: str, key: str, text: str) -> dict:
    """The JSON object in ``text``; RecordError when it is not JSON or not an object."""
    try:
        # Integers read as floats: one too large for a double is a fraction out of range (as in rap.go), not a
        # Python int past its digit limit; NaN and Infinity are not JSON (rap.go refuses them).
        value = json.loads(text, parse_int=float, parse_constant=_not_json)
    except (ValueError, RecursionError) as e:
        raise RecordError(f"ConfigMap {NAMESPACE}/{name}: key {key}: not JSON ({e})") from None
    if not isinstance(value, dict):
        raise RecordError(f"ConfigMap {NAMESPACE}/{name}: key {key}: not a JSON object")
    return value


def _fraction(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e9
    return float(value) if ok else None


def _usage(value: Any) -> tuple[float, float] | None:
    """(cpu, mem) of ``{"cpu": F, "mem": F}`` when both are usable fractions, else None."""
    if not isinstance(value, dict):
        return None
    cpu, mem = _fraction(value.get("cpu")), _fraction(value.get("mem"))
    return (cpu, mem) if cpu is not None and mem is not None else None


def _is_ip(text: str) -> bool:
    """An IPv4 or IPv6 address as Go's net.ParseIP reads one (no zone)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return "%" not in text


def parse_load(name: str, data: Mapping[str, str] | None) -> Record:
    """One rap-load-<node> ConfigMap's data, by the rules of tests/vectors/README.md ("How published is read").

    RecordError (the whole record unusable) when ``node`` is not a JSON object with a non-empty string
    ``name``, when the ConfigMap is not named ``rap-load-<that name>``, or when ``pods`` is given and is
    not a JSON object. Within a usable record, a value that is not a usable sample is left out: no node
    usage unless ``cpu`` and ``mem`` are both numbers in [0, 1e9); no pod entry unless its key is an IP
    and its value such a pair; no IP unless ``ip`` is a string. rap.go's parseRAPLoad keeps the same rules.
    """
    data = data or {}
    node = _object(name, "node", data.get("node") or "")
    raw_pods = data.get("pods") or ""
    pods = _object(name, "pods", raw_pods) if raw_pods else {}
    node_name = node.get("name")
    if not isinstance(node_name, str) or not node_name:
        raise RecordError(f"ConfigMap {NAMESPACE}/{name}: key node has no name")
    if name != LOAD_PREFIX + node_name:
        raise RecordError(f"ConfigMap {NAMESPACE}/{name}: its record is node {node_name!r}'s, "
                          f"whose ConfigMap is {LOAD_PREFIX}{node_name}")
    ip = node.get("ip")
    by_ip = {}
    for pod_ip, u in pods.items():
        usage = _usage(u)
        if usage is not None and _is_ip(pod_ip):
            by_ip[pod_ip] = usage
    return Record(node_name, ip if isinstance(ip, str) else "", _usage(node), by_ip)


def read_records(maps: Iterable[tuple[str, Mapping[str, str] | None]]) -> tuple[list[Record], dict[str, RecordError]]:
    """The usable records of ``(ConfigMap name, data)`` pairs, and why each other one is not."""
    records, bad = [], {}
    for name, data in maps:
        try:
            records.append(parse_load(name, data))
        except RecordError as e:
            bad[name] = e
    return records, bad


def heartbeat_timestamp(annotations: Mapping[str, str] | None) -> str | None:
    """The Lease's metrics timestamp (RFC 3339 text), or None when absent or unreadable."""
    raw = (annotations or {}).get(METRICS_TIME)
    if not isinstance(raw, str) or not RFC3339.fullmatch(raw):
        return None
    return raw if parse_timestamp(raw) is not None else None


def published_samples(records: Iterable[Record], heartbeat: str | None, stamps: Stamps, now: float, wall: float,
                      stale_after_s: float) -> tuple[dict[str, Usage], dict[str, Usage], RecordError | None]:
    """(pods by IP, nodes by name, None) of what rap.aggregator published, or ({}, {}, why not).

    Every sample is stamped with the heartbeat's metrics timestamp (``heartbeat_timestamp``), carried onto
    the balancer's clock by ``stamps`` under one key, so all of it goes stale together: none at all without
    a heartbeat or with one older than ``stale_after_s``. The stamp is never pruned (it is one key): a
    heartbeat that stopped stays stale, even one ahead of ``wall``. A pod IP with a sample in more than one
    record is ambiguous (a pod that moved, a record not yet rewritten) and gets none. The proxy's refresh and
    the conformance vectors (rap.vectors) both build their samples here; rap.go's rapAggSnapshot is the same.
    """
    at = stamps.at("aggregator", heartbeat, now, wall) if heartbeat is not None else None
    if at is None:
        return {}, {}, RecordError(f"no heartbeat (Lease {NAMESPACE}/{LEASE}) from rap.aggregator")
    if now - at > stale_after_s:
        return {}, {}, RecordError(f"the aggregator's newest metrics are {now - at:.1f} s old "
                                   f"(stale after {stale_after_s:g} s)")
    records = list(records)
    listed = Counter(ip for r in records for ip in r.pods)
    nodes = {r.node: Usage(*r.usage, at) for r in records if r.usage is not None}
    pods = {ip: Usage(c, m, at) for r in records for ip, (c, m) in r.pods.items() if listed[ip] == 1}
    return pods, nodes, None


def _rank(local: str, node: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{local}\0{node}".encode()).digest()[:8], "big")


def watched_nodes(local: str, service_nodes: Iterable[Iterable[str]], k: int) -> frozenset[str] | None:
    """The bounded view (docs/scale.md "The bounded view"): for each Service port's endpoint nodes, the ``k``
    other nodes ranked highest by rendezvous hashing on (local, node), ties by lower name, united with
    ``local``; None (every node's record) when ``k`` is 0. rap.go's rapWatchedNodes picks the same."""
    if k <= 0:
        return None
    out = {local}
    for nodes in service_nodes:
        others = sorted({n for n in nodes if n and n != local}, key=lambda n: (-_rank(local, n), n))
        out.update(others[:k])
    return frozenset(out)


# Above this many nodes a view's selector would be longer than a URL should be (17 characters a node):
# every record is listed and the view applied by in_view alone, as rap.go does (rapMaxSelected).
MAX_SELECTED = 256


def label_selector(watched: frozenset[str] | None) -> str:
    """The label selector of the records the view holds, by their node ids, as rap.go's rapWatchSelector."""
    if watched is None or len(watched) > MAX_SELECTED:
        return LOAD_LABEL
    return f"{LOAD_LABEL},{NODE_LABEL} in ({','.join(sorted(node_id(n) for n in watched))})"


def in_view(records: Iterable[Record], watched: frozenset[str] | None) -> tuple[list[Record], frozenset[str] | None]:
    """The records of watched nodes, and the nodes they cover (the snapshot's ``watched``): the decision
    treats an endpoint anywhere else as overloaded, since no sample is no evidence that it is idle. rap.go's
    rapAggSnapshot filters alike. ``watched`` None: every record, and no bound."""
    records = list(records)
    if watched is None:
        return records, None
    kept = [r for r in records if r.node in watched]
    return kept, frozenset(r.node for r in kept)


def probe_order(candidates: Mapping[str, str], hosting: Iterable[str], last_at: Mapping[str, float],
                limit: int) -> list[str]:
    """At most ``limit`` node names: hosting endpoints first, then the longest unmeasured, then by name."""
    hosting = set(hosting)
    return sorted(candidates, key=lambda n: (n not in hosting, last_at.get(n, -1.0), n))[:limit]


class AggregatedMonitor:
    """One ``refresh`` per period, as rap.pyproxy.monitor.Monitor."""

    def __init__(self, api_client, policy, local_node: str, period_s: float, rtt_port: int, rtt_probes: int,
                 view_nodes: int = 0, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.api_client = api_client
        self.policy = policy
        self.local_node = local_node
        self.rtt_port = rtt_port
        self.rtt_probes = rtt_probes
        self.view_nodes = view_nodes
        self.clock, self.wall = clock, wall
        self.stale_after_s = policy.config.stale_after_s
        self.timeout_s = min(period_s, 2.0)
        self.snapshot = Snapshot()
        self.stamps = Stamps()
        self._bad: dict[str, str] = {}  # ConfigMap name -> resourceVersion already logged
        self._ok: bool | None = None
        self._watched: frozenset[str] | None = None  # this period's bounded view (None: every record)

    def refresh(self) -> Snapshot:
        self._watched = watched_nodes(self.local_node, self.policy.service_nodes(), self.view_nodes)
        try:
            maps, lease = self.fetch()
            error = None
        except Exception as e:  # noqa: BLE001 - any API failure: keep serving, go stale
            maps, lease, error = None, None, e
        now = self.clock()
        pods, nodes, addrs, watched = {}, {}, {}, None
        if maps is not None:
            records, watched = in_view(self._records(maps), self._watched)
            addrs = {r.node: r.ip for r in records if r.ip and r.node != self.local_node}
            pods, nodes, error = published_samples(records, heartbeat_timestamp(lease), self.stamps, now,
                                                   self.wall(), self.stale_after_s)
        self._note(error)
        rtt = merge(self.snapshot.rtt, self._rtts(addrs), self.clock(), self.stale_after_s)
        self.snapshot = self.policy.update_snapshot(Snapshot(pods=pods, nodes=nodes, rtt=rtt, watched=watched))
        return self.snapshot

    def fetch(self) -> tuple[list[tuple[str, str, Mapping[str, str]]], Mapping[str, str] | None]:
        """[(name, resourceVersion, data)] of the load ConfigMaps, and the Lease's annotations (None if absent)."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        core = client.CoreV1Api(self.api_client)
        listed = core.list_namespaced_config_map(NAMESPACE, label_selector=label_selector(self._watched),
                                                 _request_timeout=API_TIMEOUT_S)
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

    def _records(self, maps) -> list[Record]:
        """The usable records; an unusable one is logged once per resourceVersion."""
        records, bad = read_records((name, data) for name, _, data in maps)
        versions = {name: version for name, version, _ in maps}
        self._bad = {name: v for name, v in self._bad.items() if name in bad}
        for name, e in bad.items():
            if self._bad.get(name) != versions[name]:
                self._bad[name] = versions[name]
                log.error("rap: %s; that node's samples are ignored until it is rewritten", e)
        return records

    def _rtts(self, addrs: Mapping[str, str]) -> dict[str, Rtt]:
        hosting = {n for nodes in self.policy.service_nodes() for n in nodes}
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
