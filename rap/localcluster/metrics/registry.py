"""The registry: which cgroups stand for which nodes and pods, written by the cluster code.

A JSON file (written with ``write_registry``, re-read by the server when it
changes)::

    {"nodes": {"node-1": "rap-local/node-1"},
     "pods": {"default/pod-1-1": {"node": "node-1", "cgroup": "rap-local/node-1/pod-1-1",
                                  "container": "backend", "labels": {"app": "web"}}}}

Not where cgroups are read (``sampler``, through ``rap.localcluster.cgroups``).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CONTAINER = "backend"


class RegistryError(ValueError):
    """The registry file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class PodEntry:
    namespace: str
    name: str
    node: str
    cgroup: str
    container: str = DEFAULT_CONTAINER
    labels: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Registry:
    nodes: dict  # node name -> cgroup name
    pods: dict  # "namespace/name" -> PodEntry

    def cgroups(self) -> set[str]:
        return set(self.nodes.values()) | {p.cgroup for p in self.pods.values()}


def _pod_entry(key: str, raw: dict, where: str) -> PodEntry:
    ns, sep, name = key.partition("/")
    if not sep or not ns or not name:
        raise RegistryError(f"{where}: pod key {key!r} must be 'namespace/name'")
    if not isinstance(raw, dict) or not isinstance(raw.get("cgroup"), str):
        raise RegistryError(f"{where}: pods[{key!r}] needs a 'cgroup' string")
    return PodEntry(ns, name, str(raw.get("node", "")), raw["cgroup"],
                    str(raw.get("container") or DEFAULT_CONTAINER), dict(raw.get("labels") or {}))


def parse_registry(data: dict, where: str = "registry") -> Registry:
    if not isinstance(data, dict):
        raise RegistryError(f"{where}: must be a JSON object with 'nodes' and 'pods'")
    nodes, pods = data.get("nodes") or {}, data.get("pods") or {}
    if not isinstance(nodes, dict) or not all(isinstance(v, str) for v in nodes.values()):
        raise RegistryError(f"{where}: 'nodes' must map node name -> cgroup name")
    if not isinstance(pods, dict):
        raise RegistryError(f"{where}: 'pods' must map 'namespace/name' -> {{node, cgroup, container}}")
    return Registry(dict(nodes), {k: _pod_entry(k, v, where) for k, v in pods.items()})


def write_registry(path: Path | str, nodes: dict, pods: dict) -> None:
    """Atomically replace the registry (the server never sees half a file)."""
    parse_registry({"nodes": nodes, "pods": pods}, str(path))
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"nodes": nodes, "pods": pods}, indent=1, sort_keys=True))
    os.replace(tmp, path)


class RegistryFile:
    """The registry, re-read whenever the file's identity or mtime changes."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._stamp: tuple | None = None
        self.current = Registry({}, {})
        self.error: str | None = None

    def get(self) -> Registry:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self.error = f"{self.path}: no such file (the cluster code writes it)"
            return self.current
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self.current = parse_registry(json.loads(self.path.read_text()), str(self.path))
                self.error = None
            except (ValueError, OSError) as e:  # keep the last good registry
                self.error = str(e)
                print(f"metrics: {e}", file=sys.stderr, flush=True)
        return self.current
