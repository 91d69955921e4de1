"""The metrics API, independent of HTTP: a GET path and query -> (status code, JSON object).

Routes the paths kube-apiserver's aggregation layer proxies here (discovery,
nodes, pods, namespaced pods, label selectors), and the fault switch
(``control``): while ``failing`` the metric paths answer 503, and while
``slow_s`` > 0 they answer that many seconds late, as an unavailable or an
overloaded metrics-server would. Not the HTTP(S) layer (``server``) nor the
shape of the objects (``wire``).
"""

from __future__ import annotations

import math
import re
import time
from typing import Callable

from rap.localcluster.metrics.registry import RegistryFile
from rap.localcluster.metrics.sampler import Sampler
from rap.localcluster.metrics.wire import (GROUP, PREFIX, api_group, api_group_list, api_resource_list,
                                           metrics_list, node_metrics, pod_metrics, single, status)


def match_labels(selector: str, labels: dict) -> bool:
    """Equality-based label selectors: a=b, a==b, a!=b, a, !a (comma = and)."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        m = re.fullmatch(r"([^!=\s]+)\s*(==|=|!=)\s*(\S*)", term)
        if m:
            key, op, value = m.groups()
            if (labels.get(key) == value) != (op != "!="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


MAX_SLOW_S = 300.0  # past kube-apiserver's own timeouts: longer adds nothing
CONTROL_PATHS = ("/control/fail", "/control/slow")


def _not_found(what: str) -> tuple[int, dict]:
    return 404, status(404, "NotFound", f"the server could not find the requested resource ({what})")


def check_slow(seconds) -> float:
    """The metric paths' delay in seconds: a number in [0, MAX_SLOW_S], 0 = answer at once."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise ValueError(f"{seconds!r} is not a number of seconds (0 turns the delay off)") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_SLOW_S:
        raise ValueError(f"{seconds!r} seconds: want 0..{MAX_SLOW_S:g} (0 turns the delay off)")
    return value


class MetricsAPI:
    """Answers GET paths with (status code, JSON object); the HTTP layer is thin."""

    def __init__(self, registry: RegistryFile, sampler: Sampler, failing: bool = False, slow_s: float = 0.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.registry, self.sampler, self.failing, self.sleep = registry, sampler, failing, sleep
        self.slow_s = check_slow(slow_s)

    def control(self, path: str, query: dict[str, list[str]], change: bool) -> tuple[int, dict]:
        """GET (``change`` False) or POST one fault switch: ``/control/fail?on=1|0`` answers
        ``{"failing": bool}``, ``/control/slow?seconds=X`` (0 = off) ``{"slow_s": X}``."""
        if path == "/control/fail":
            if change:
                on = (query.get("on") or [""])[0].lower()
                if on not in ("1", "0", "true", "false"):
                    return 400, {"error": "POST /control/fail?on=1 (fail) or on=0 (recover)"}
                self.failing = on in ("1", "true")
            return 200, {"failing": self.failing}
        if path == "/control/slow":
            if change:
                try:
                    self.slow_s = check_slow((query.get("seconds") or [""])[0])
                except ValueError as e:
                    return 400, {"error": f"POST /control/slow?seconds=X: {e}"}
            return 200, {"slow_s": self.slow_s}
        return _not_found(path)

    def get(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict]:
        static = {"/apis": api_group_list, f"/apis/{GROUP}": api_group, PREFIX: api_resource_list}
        if path.rstrip("/") in static:
            return 200, static[path.rstrip("/")]()
        if not path.startswith(PREFIX + "/"):
            return _not_found(path)
        if self.slow_s:
            self.sleep(self.slow_s)
        if self.failing:
            return 503, status(503, "ServiceUnavailable",
                               "the metrics source is failing (rap-local fault injection)")
        selector = (query.get("labelSelector") or [""])[0]
        return self._resource(path[len(PREFIX):].strip("/").split("/"), selector, time.time())

    def _resource(self, parts: list[str], selector: str, now: float) -> tuple[int, dict]:
        if parts == ["nodes"]:
            return 200, metrics_list("NodeMetrics", self._nodes(now))
        if len(parts) == 2 and parts[0] == "nodes":
            return self._one("NodeMetrics", "nodes", parts[1], self._nodes(now, parts[1]))
        if parts == ["pods"]:
            return 200, metrics_list("PodMetrics", self._pods(now, None, selector))
        if len(parts) == 3 and parts[0] == "namespaces" and parts[2] == "pods":
            return 200, metrics_list("PodMetrics", self._pods(now, parts[1], selector))
        if len(parts) == 4 and parts[0] == "namespaces" and parts[2] == "pods":
            return self._one("PodMetrics", "pods", parts[3], self._pods(now, parts[1], "", parts[3]))
        return _not_found("/".join(parts))

    @staticmethod
    def _one(kind: str, resource: str, name: str, items: list[dict]) -> tuple[int, dict]:
        if items:
            return 200, single(kind, items[0])
        return 404, status(404, "NotFound", f"{resource}.{GROUP} \"{name}\" not found")

    def _nodes(self, now: float, only: str | None = None) -> list[dict]:
        items = []
        for name, cgroup in sorted(self.registry.get().nodes.items()):
            u = self.sampler.usage(cgroup) if only in (None, name) else None
            if u:
                items.append(node_metrics(name, u, now))
        return items

    def _pods(self, now: float, namespace: str | None, selector: str, only: str | None = None) -> list[dict]:
        items = []
        for pod in sorted(self.registry.get().pods.values(), key=lambda p: (p.namespace, p.name)):
            if namespace not in (None, pod.namespace) or only not in (None, pod.name):
                continue
            if selector and not match_labels(selector, pod.labels):
                continue
            u = self.sampler.usage(pod.cgroup)
            if u:
                items.append(pod_metrics(pod, u, now))
        return items
