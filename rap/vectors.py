"""Conformance vectors: load and check them, run them on the Python reference.

A vector that breaks the schema (rap/schemas/vector.schema.json) or a rule the
schema cannot say (times going backwards, a config out of range) is rejected
with its file and the JSON path of the offending field.

A vector is one Service, ``default/vector``; each ``port_name`` of its
endpoints is a service port of its own (``default/vector:http``, ...), with the
vector's affinity, all on one balancer, so the metrics are shared.

A vector gives the monitor's snapshot directly (``metrics``) or as the objects
rap.aggregator publishes (``published``); those go through the Python proxy's
own reader of them (rap.pyproxy.aggmonitor), not a copy of it here.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import reprlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import jsonschema

from rap.config import ConfigError, RapConfig
from rap.errors import OptionError
from rap.policies import BalancerError, Endpoint, NoEndpointsError, Rap
from rap.pyproxy.aggmonitor import (METRICS_TIME, heartbeat_timestamp, in_view, published_samples, read_records,
                                    watched_nodes)
from rap.pyproxy.monitor import Stamps, parse_timestamp
from rap.snapshot import Snapshot

SCHEMA_PATH = Path(__file__).parent / "schemas" / "vector.schema.json"
DEFAULT_PORT_NAME = "http"
# A request's source port when the step does not give one: each step its own connection.
BASE_SRC_PORT = 40000


def service_key(port_name: str = DEFAULT_PORT_NAME) -> str:
    """kube-proxy's ServicePortName of one port of the vector's Service."""
    return f"default/vector:{port_name}"


SERVICE = service_key()


class VectorError(OptionError):
    """A vector file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Vector:
    path: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return self.data["name"]


@dataclass(frozen=True)
class Mismatch:
    vector: str
    request_index: int  # counts requests only, from 0
    step_index: int
    expected: str
    actual: str

    def __str__(self) -> str:
        return (
            f"{self.vector}: request {self.request_index} (step {self.step_index}): "
            f"expected {self.expected}, got {self.actual}"
        )


_FORMATS = jsonschema.FormatChecker(["ipv4"])


@_FORMATS.checks("ipv4-port", raises=ValueError)
def _ipv4_port(text: object) -> bool:
    """``10.0.1.1:8080``: the pattern admits 10.0.1.300:99999; this is what it means."""
    if not isinstance(text, str):
        return True
    ip, _, port = text.rpartition(":")
    ipaddress.IPv4Address(ip)
    return 1 <= int(port) <= 65535


@_FORMATS.checks("rfc3339")
def _rfc3339(text: object) -> bool:
    """``2027-01-15T08:00:00Z``: a time the aggregated monitor would read as the heartbeat's."""
    return not isinstance(text, str) or heartbeat_timestamp({METRICS_TIME: text}) is not None


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    # format_checker: a pattern alone reads 10.0.1.300 as an address.
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()), format_checker=_FORMATS)


def json_path(path: Iterable[Any]) -> str:
    """``['metrics', 'pods', '10.0.1.1']`` -> ``$.metrics.pods["10.0.1.1"]``, as messages name a field."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:  # a key such as a pod IP ("10.0.1.1") is quoted, so that its dots are not read as steps
            out += f".{part}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part) else f"[{json.dumps(part)}]"
    return out


class _NotFinite(str):
    """NaN, Infinity or a number too large for a double: Python's json reads them, JSON has none."""


def _float(text: str) -> float | _NotFinite:
    value = float(text)
    return value if math.isfinite(value) else _NotFinite(text)


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise VectorError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise VectorError(f"{path}: not UTF-8 text (byte {exc.start}): save the vector as UTF-8 JSON") from None
    try:
        return json.loads(text, parse_float=_float, parse_constant=_NotFinite)
    except json.JSONDecodeError as exc:
        raise VectorError(f"{path}: not valid JSON: {exc}") from None
    except RecursionError:
        raise VectorError(f"{path}: not usable JSON: nested too deeply") from None
    except ValueError as exc:  # an integer literal beyond Python's digit limit
        raise VectorError(f"{path}: not usable JSON: {exc}") from None


def _not_finite(data: Any) -> tuple[list[Any], str] | None:
    """The JSON path and text of the first NaN, Infinity or overflowing number in ``data``."""
    stack: list[tuple[list[Any], Any]] = [([], data)]
    while stack:
        at, value = stack.pop()
        if isinstance(value, _NotFinite):
            return at, str(value)
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        stack.extend((at + [k], v) for k, v in reversed(list(items)))
    return None


def _short_repr() -> reprlib.Repr:
    r = reprlib.Repr()  # Python 3.11's Repr takes no keyword arguments
    r.maxlevel, r.maxdict, r.maxlist, r.maxstring, r.maxother = 2, 3, 3, 24, 24
    return r


_SHORT = _short_repr()


def _reported(err: jsonschema.ValidationError) -> tuple[list[Any], str]:
    """The path and message to show for ``err``: inside a step's oneOf, the error of the kind it meant."""
    if err.validator == "oneOf" and isinstance(err.instance, dict):
        meant = [i for i, b in enumerate(err.validator_value) if set(b.get("required", ())) <= set(err.instance)]
        inner = [e for e in err.context if meant and e.relative_schema_path[0] == meant[0]]
        if len(meant) == 1 and inner:
            return _reported(min(inner, key=lambda e: len(e.absolute_path)))
        kinds = " | ".join("+".join(b.get("required", ())) for b in err.validator_value)
        return list(err.absolute_path), (f"keys {sorted(err.instance)} match no single kind; "
                                         f"it must have the keys of exactly one of: {kinds}")
    message = err.message
    if err.validator == "format":
        meaning = {"ipv4": "an IPv4 address", "ipv4-port": "an IPv4 address:port (port 1..65535)",
                   "rfc3339": "an RFC 3339 date and time such as 2027-01-15T08:00:00Z"}
        message = f"{err.instance!r} is not {meaning.get(err.validator_value, err.validator_value)}"
    shown = repr(err.instance)
    if message.startswith(shown) and len(shown) > 60:  # a whole object quoted would hide the point
        message = _SHORT.repr(err.instance) + message[len(shown):]
    return list(err.absolute_path), message


def load_vector(path: Path) -> Vector:
    data = _read_json(path)
    bad = _not_finite(data)
    if bad:
        raise VectorError(f"{path}: {json_path(bad[0])}: {bad[1]} is not a JSON number: write a finite number")
    errors = sorted(_validator().iter_errors(data), key=lambda e: [(isinstance(p, str), p) for p in e.absolute_path])
    if errors:
        at, message = _reported(errors[0])
        raise VectorError(f"{path}: {json_path(at)}: {message}")
    _check_semantics(path, data)
    return Vector(path, data)


def _check_semantics(path: Path, data: dict[str, Any]) -> None:
    if data["name"] != path.stem:
        raise VectorError(f"{path}: $.name: {data['name']!r} must equal the file name {path.stem!r}")
    try:
        RapConfig.from_mapping(data.get("config"))
    except ConfigError as exc:
        raise VectorError(f"{path}: $.config.{exc}") from None
    if "wall_clock_at_0" in data:
        if "published" not in data and not any("set_published" in s for s in data["steps"]):
            raise VectorError(f"{path}: $.wall_clock_at_0: only a vector with published or set_published "
                              "has a wall clock; remove it")
    last = 0.0
    for i, step in enumerate(data["steps"]):
        if "request" in step:
            at = step["request"]["at"]
            if at < last:
                raise VectorError(
                    f"{path}: $.steps[{i}].request.at: {at} is before the previous request's {last};"
                    " the balancer's clock never goes back"
                )
            last = at


def load_all(directory: Path) -> list[Vector]:
    paths = sorted(directory.glob("*.json"))
    if not paths:
        raise VectorError(f"{directory}: no *.json vectors found")
    return [load_vector(p) for p in paths]


def _by_port(items: list[dict[str, Any]]) -> dict[str, list[Endpoint]]:
    """An endpoint list split by port name, each part in the order given."""
    out: dict[str, list[Endpoint]] = {}
    for e in items:
        out.setdefault(e.get("port_name", DEFAULT_PORT_NAME), []).append(Endpoint(e["ip"], e["port"], e["node"]))
    return out


def _port_names(data: dict[str, Any]) -> list[str]:
    """Every port name the vector mentions, so that each is a service (with no endpoints until listed)."""
    names = {DEFAULT_PORT_NAME}
    lists = [data["endpoints"]] + [s.get("set_endpoints") or s.get("add_endpoints") or [] for s in data["steps"]]
    names.update(e.get("port_name", DEFAULT_PORT_NAME) for items in lists for e in items)
    for step in data["steps"]:
        item = step.get("request") or step.get("done")
        if item is not None:
            names.add(item.get("port_name", DEFAULT_PORT_NAME))
    return sorted(names)


def _update(rap: Rap, listed: set[str], items: list[dict[str, Any]]) -> set[str]:
    """OnEndpointsUpdate from the Endpoints that listed ``listed`` to ``items``: a port left out is emptied."""
    parts = _by_port(items)
    for port, eps in parts.items():
        rap.set_endpoints(service_key(port), eps)
    for port in listed - set(parts):
        rap.set_endpoints(service_key(port), [])
    return set(parts)


def _add(rap: Rap, items: list[dict[str, Any]]) -> set[str]:
    """OnEndpointsAdd: every port listed is replaced; the others are left as they are (as upstream)."""
    parts = _by_port(items)
    for port, eps in parts.items():
        rap.add_endpoints(service_key(port), eps)
    return set(parts)


def _endpoint(addr: str) -> Endpoint:
    ip, _, port = addr.rpartition(":")
    return Endpoint(ip, int(port))


class _Published:
    """A vector's ``published`` objects read as the aggregated monitor reads them, on the vector's clocks.

    The wall clock reads ``wall_clock_at_0`` when the balancer's clock reads 0 and runs with it; the
    objects are read at the time of the previous request (0 before the first), with one ``Stamps`` for
    the whole vector, as one monitor keeps them.
    """

    def __init__(self, data: dict[str, Any], stale_after_s: float) -> None:
        at_0 = data.get("wall_clock_at_0")
        self.wall_at_0 = parse_timestamp(at_0) if at_0 is not None else 0.0
        self.stale_after_s = stale_after_s
        self.stamps = Stamps()

    def snapshot(self, published: dict[str, Any], now: float, rap: Rap) -> Snapshot:
        records, _ = read_records(published["configmaps"].items())
        # The view the proxy's list would select, drawn from the endpoints set by now; the records outside
        # it are read anyway, as a stale list might hold them, and must be left out.
        records, watched = in_view(records, watched_nodes(rap.local_node, rap.service_nodes(),
                                                          published.get("view_nodes", 0)))
        lease = published["lease"]
        annotations = None if lease is None else (
            {METRICS_TIME: lease["metrics_timestamp"]} if "metrics_timestamp" in lease else {})
        pods, nodes, _ = published_samples(records, heartbeat_timestamp(annotations), self.stamps, now,
                                           self.wall_at_0 + now, self.stale_after_s)
        rtt = Snapshot.from_json({"rtt_ms": published.get("rtt_ms", {})}).rtt  # probed by the proxy, not published
        return Snapshot(pods=pods, nodes=nodes, rtt=rtt, watched=watched)


def run_vector(vector: Vector) -> list[Mismatch]:
    """Replay a vector on the Python reference; [] when every request matches."""
    data = vector.data
    config = RapConfig.from_mapping(data.get("config"))
    rap = Rap(data["local_node"], config, shuffle=False)
    svc = data["service"]
    for port in _port_names(data):
        rap.new_service(service_key(port), svc["affinity"], svc.get("affinity_timeout_s", 0))
    listed = _update(rap, set(), data["endpoints"])
    published = _Published(data, config.stale_after_s)
    now = 0.0  # the previous request's time: when the monitor reads a set_published
    rap.update_snapshot(Snapshot.from_json(data["metrics"]) if "metrics" in data
                        else published.snapshot(data["published"], now, rap))
    mismatches: list[Mismatch] = []
    request_index = 0
    for step_index, step in enumerate(data["steps"]):
        if "set_endpoints" in step:
            listed = _update(rap, listed, step["set_endpoints"])
        elif "add_endpoints" in step:
            listed = _add(rap, step["add_endpoints"])
        elif "set_metrics" in step:
            rap.update_snapshot(Snapshot.from_json(step["set_metrics"]))
        elif "set_published" in step:
            rap.update_snapshot(published.snapshot(step["set_published"], now, rap))
        elif "done" in step:
            done = step["done"]
            rap.release(service_key(done.get("port_name", DEFAULT_PORT_NAME)), _endpoint(done["endpoint"]))
        else:
            expected = step.get("expect") or f"error {step['expect_error']}"
            actual = _request(rap, step["request"], step_index)
            now = step["request"]["at"]
            if actual != expected:
                mismatches.append(Mismatch(vector.name, request_index, step_index, expected, actual))
            request_index += 1
    return mismatches


def _request(rap: Rap, request: dict[str, Any], step_index: int) -> str:
    src = f"{request['client']}:{request.get('src_port', BASE_SRC_PORT + step_index)}"
    try:
        ep = rap.next_endpoint(
            service_key(request.get("port_name", DEFAULT_PORT_NAME)), request["client"], request["at"],
            request.get("affinity_reset", False), src=src,
        )
    except NoEndpointsError:
        return "error no-endpoints"
    except BalancerError as exc:
        return f"error {exc}"
    return ep.addr


@dataclass
class RunReport:
    vectors: int
    requests: int
    mismatches: list[Mismatch]

    @property
    def ok(self) -> bool:
        return not self.mismatches


def run_all(directory: Path) -> RunReport:
    vectors = load_all(directory)
    mismatches: list[Mismatch] = []
    requests = 0
    for vector in vectors:
        requests += sum(1 for s in vector.data["steps"] if "request" in s)
        mismatches.extend(run_vector(vector))
    return RunReport(len(vectors), requests, mismatches)


def run_and_report(directory: Path | str | None = None) -> tuple[str, bool]:
    """`invoke vectors`: every vector in ``directory`` (default tests/vectors); (text, all matched)."""
    from rap.paths import VECTORS_DIR

    report = run_all(Path(directory) if directory else VECTORS_DIR)
    lines = [f"MISMATCH {m}" for m in report.mismatches]
    lines.append(f"{report.vectors} vectors, {report.requests} requests, {len(report.mismatches)} mismatches")
    return "\n".join(lines), report.ok
