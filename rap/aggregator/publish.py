"""The aggregator's objects and the changes-only rule: last published + this round -> what to write.

The objects are the contract with rap.go's aggregated monitor (docs/scale.md,
"The aggregator's objects"): one ConfigMap ``rap-load-<node>`` per node in the
aggregator's namespace, labelled ``rap.io/load=true`` and ``rap.io/node-id=<node_id>``
(the label a kube-proxy's bounded view selects by), whose data keys ``node``
and ``pods`` hold JSON; and the heartbeat Lease ``rap-aggregator`` with the
round's newest metrics timestamp in the annotation ``rap.io/metrics-timestamp``.

A node's ConfigMap is rewritten only when its IP, its set of pod IPs or the
presence of its node sample changed, or when a published fraction moved by at
least ``publish_step`` from the value last published, or crossed a threshold
the decision reads (``cpu_threshold``, ``mem_threshold`` and each minus
``hysteresis``, subtracted as the decision subtracts them): in steady state a
round writes nothing but the Lease.

Pure: records in, objects (plain dicts, the API's JSON) and a plan out. Not
here: the API calls (``kube``), the fractions (``usage``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

from rap.aggregator.usage import Load, NodeRecord

DEFAULT_NAMESPACE = "kube-system"
PREFIX = "rap-load-"
LABEL = ("rap.io/load", "true")
LABEL_SELECTOR = f"{LABEL[0]}={LABEL[1]}"
NODE_LABEL = "rap.io/node-id"
LEASE = "rap-aggregator"
TIMESTAMP_ANNOTATION = "rap.io/metrics-timestamp"
MANAGED_BY = {"app.kubernetes.io/managed-by": "rap-aggregator"}
MAX_NAME = 253  # a ConfigMap's name is a DNS subdomain
DEFAULT_STEP = 0.05
# Published fractions are multiples of 0.01, so their differences carry float error (0.85 - 0.8 is
# 0.04999...): a move counts as a step when it is within this of one.
_EPSILON = 1e-9


@dataclass(frozen=True)
class Rule:
    """When a published fraction is stale: ``step`` away from this round's, or on the other side of a
    threshold (``cpu``/``mem``: the values at or above which the decision sees a change)."""

    step: float = DEFAULT_STEP
    cpu: tuple[float, ...] = ()
    mem: tuple[float, ...] = ()

    @classmethod
    def of(cls, config, step: float = DEFAULT_STEP) -> "Rule":
        """The rule for a RapConfig: its thresholds, and each minus its hysteresis."""
        return cls(step, (config.cpu_threshold, config.cpu_threshold - config.hysteresis),
                   (config.mem_threshold, config.mem_threshold - config.hysteresis))

    def moved(self, old: float, new: float, thresholds: tuple[float, ...]) -> bool:
        moved = abs(new - old)
        return (moved > _EPSILON and moved >= self.step - _EPSILON) or any((old >= t) != (new >= t) for t in thresholds)

    def load_moved(self, old: Load, new: Load) -> bool:
        return self.moved(old.cpu, new.cpu, self.cpu) or self.moved(old.mem, new.mem, self.mem)


def configmap_name(node: str) -> str:
    return PREFIX + node


def publishable(node: str) -> bool:
    """Whether ``node`` can have a ConfigMap: node names are DNS subdomains, so only the length can fail."""
    return bool(node) and len(configmap_name(node)) <= MAX_NAME


def node_id(node: str) -> str:
    """The first 16 hex digits of sha256(node): a node name may be 253 characters, a label value 63.
    rap.go's rapNodeID is the same."""
    return hashlib.sha256(node.encode()).hexdigest()[:16]


def labels(node: str) -> dict[str, str]:
    """A record's labels: the load label, and its node's id (what a bounded view selects by)."""
    return {LABEL[0]: LABEL[1], **MANAGED_BY, NODE_LABEL: node_id(node)}


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def data(record: NodeRecord) -> dict[str, str]:
    """The ConfigMap's data: ``node`` and ``pods``, each a JSON object."""
    node: dict[str, Any] = {"name": record.name, "ip": record.ip}
    if record.node is not None:
        node.update(cpu=record.node.cpu, mem=record.node.mem)
    pods = {ip: {"cpu": u.cpu, "mem": u.mem} for ip, u in record.pods.items()}
    return {"node": _json(node), "pods": _json(pods)}


def configmap(record: NodeRecord, namespace: str) -> dict:
    """The whole ConfigMap of ``record``, as the API takes it."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": configmap_name(record.name), "namespace": namespace,
                         "labels": labels(record.name)},
            "data": data(record)}


def _load(value: Any) -> Load | None:
    if not isinstance(value, dict):
        return None
    cpu, mem = value.get("cpu"), value.get("mem")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (cpu, mem)):
        return None
    return Load(float(cpu), float(mem))


def read(cm_data: Mapping[str, str] | None) -> NodeRecord | None:
    """A published ConfigMap's data as a record (what a restarted aggregator compares against);
    None when it is not one this module wrote, so that it is rewritten."""
    try:
        node = json.loads((cm_data or {})["node"])
        pods = json.loads((cm_data or {})["pods"])
    except (KeyError, TypeError, ValueError):
        return None
    if not isinstance(node, dict) or not isinstance(pods, dict) or not isinstance(node.get("name"), str):
        return None
    loads = {ip: _load(u) for ip, u in pods.items()}
    if any(u is None for u in loads.values()):
        return None
    sample = _load(node) if "cpu" in node or "mem" in node else None
    if ("cpu" in node or "mem" in node) and sample is None:
        return None
    return NodeRecord(node["name"], str(node.get("ip") or ""), sample, loads)


def changed(old: NodeRecord | None, new: NodeRecord, rule: Rule) -> bool:
    """Whether ``new`` must replace the published ``old`` (None: unreadable, so yes)."""
    if old is None or old.name != new.name or old.ip != new.ip or set(old.pods) != set(new.pods):
        return True
    if (old.node is None) != (new.node is None):
        return True
    if new.node is not None and rule.load_moved(old.node, new.node):
        return True
    return any(rule.load_moved(old.pods[ip], u) for ip, u in new.pods.items())


@dataclass
class Plan:
    """One round's writes: records to create and to replace, nodes whose ConfigMap goes."""

    create: list[NodeRecord] = field(default_factory=list)
    replace: list[NodeRecord] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.create) + len(self.replace) + len(self.delete)


def plan(published: Mapping[str, NodeRecord | None], current: Mapping[str, NodeRecord], rule: Rule) -> Plan:
    """What to write so that what is published stands for ``current``. ``published``: by node name, what
    each existing ConfigMap holds (None: unreadable). Nodes that cannot have a ConfigMap are left out."""
    out = Plan()
    for name in sorted(current):
        if not publishable(name):
            continue
        if name not in published:
            out.create.append(current[name])
        elif changed(published[name], current[name], rule):
            out.replace.append(current[name])
    out.delete = sorted(name for name in published if name not in current)
    return out


def rfc3339(t: datetime) -> str:
    """``t`` in UTC as RFC 3339 with a ``Z`` (fractional seconds only when it has some)."""
    t = t.astimezone(timezone.utc)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{t.microsecond:06d}".rstrip("0") if t.microsecond else "") + "Z"


def micro_time(t: datetime) -> str:
    """A Lease's MicroTime (``renewTime``): RFC 3339 with microseconds."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease(namespace: str, holder: str, duration_s: int, metrics_time: datetime, now: datetime,
          acquired: str | None = None) -> dict:
    """The heartbeat Lease, renewed at ``now`` for the metrics measured up to ``metrics_time``."""
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": LEASE, "namespace": namespace, "labels": dict(MANAGED_BY),
                         "annotations": {TIMESTAMP_ANNOTATION: rfc3339(metrics_time)}},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration_s,
                     "acquireTime": acquired or micro_time(now), "renewTime": micro_time(now)}}
