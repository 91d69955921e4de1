"""Conformance vectors: load and check them, run them on the Python reference.

A vector that breaks the schema (rap/schemas/vector.schema.json) or a rule the
schema cannot say (times going backwards, a config out of range) is rejected
with its file and the JSON path of the offending field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import jsonschema

from rap.config import ConfigError, RapConfig
from rap.errors import OptionError
from rap.policies import BalancerError, Endpoint, NoEndpointsError, Rap
from rap.snapshot import Snapshot

SCHEMA_PATH = Path(__file__).parent / "schemas" / "vector.schema.json"
SERVICE = "default/vector:http"


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


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def _json_path(path: Iterable[Any]) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def load_vector(path: Path) -> Vector:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise VectorError(f"{path}: not valid JSON: {exc}") from None
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        raise VectorError(f"{path}: {_json_path(err.absolute_path)}: {err.message}")
    _check_semantics(path, data)
    return Vector(path, data)


def _check_semantics(path: Path, data: dict[str, Any]) -> None:
    if data["name"] != path.stem:
        raise VectorError(f"{path}: $.name: {data['name']!r} must equal the file name {path.stem!r}")
    try:
        RapConfig.from_mapping(data.get("config"))
    except ConfigError as exc:
        raise VectorError(f"{path}: $.config.{exc}") from None
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


def _endpoints(items: list[dict[str, Any]]) -> list[Endpoint]:
    return [Endpoint(e["ip"], e["port"], e["node"]) for e in items]


def run_vector(vector: Vector) -> list[Mismatch]:
    """Replay a vector on the Python reference; [] when every request matches."""
    data = vector.data
    rap = Rap(data["local_node"], RapConfig.from_mapping(data.get("config")), shuffle=False)
    svc = data["service"]
    rap.new_service(SERVICE, svc["affinity"], svc.get("affinity_timeout_s", 0))
    rap.set_endpoints(SERVICE, _endpoints(data["endpoints"]))
    rap.update_snapshot(Snapshot.from_json(data["metrics"]))
    mismatches: list[Mismatch] = []
    request_index = 0
    for step_index, step in enumerate(data["steps"]):
        if "set_endpoints" in step:
            rap.set_endpoints(SERVICE, _endpoints(step["set_endpoints"]))
        elif "set_metrics" in step:
            rap.update_snapshot(Snapshot.from_json(step["set_metrics"]))
        else:
            expected = step.get("expect") or f"error {step['expect_error']}"
            actual = _request(rap, step["request"])
            if actual != expected:
                mismatches.append(Mismatch(vector.name, request_index, step_index, expected, actual))
            request_index += 1
    return mismatches


def _request(rap: Rap, request: dict[str, Any]) -> str:
    try:
        ep = rap.next_endpoint(
            SERVICE, request["client"], request["at"], request.get("affinity_reset", False)
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
