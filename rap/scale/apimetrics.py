"""kube-apiserver's own /metrics, read as the scale measurement needs: counters by series, windows, differences.

Three families are read: ``apiserver_request_total`` (requests, by verb,
resource, group, code, ...), ``apiserver_response_sizes`` (a histogram of
response bytes; its ``_sum`` is the bytes sent, its ``_count`` the responses)
and ``apiserver_watch_events_sizes`` (bytes of watch events, by kind). A
``Scrape`` holds them at one moment; ``Window`` is the rate between two
scrapes, per series; ``cost`` subtracts a baseline window series by series
(so that KWOK's own steady traffic, leases and heartbeats, cancels where it
is) and divides by the RAP nodes. Pure: no HTTP here (the harness fetches the
text), so it is tested on recorded text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

REQUESTS = "apiserver_request_total"
RESPONSE_BYTES = "apiserver_response_sizes_sum"
WATCH_BYTES = "apiserver_watch_events_sizes_sum"
FAMILIES = (REQUESTS, RESPONSE_BYTES, WATCH_BYTES)

_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Series = tuple[str, tuple[tuple[str, str], ...]]  # (metric name, sorted labels)


class MetricsTextError(ValueError):
    """The text is not Prometheus exposition format where it matters; the message names the line."""


def parse(text: str, families=FAMILIES) -> dict[Series, float]:
    """The samples of ``families`` in a Prometheus text exposition, by (name, sorted labels)."""
    out: dict[Series, float] = {}
    wanted = set(families)
    for n, line in enumerate(text.splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name not in wanted:
            continue
        m = _LINE.match(line.strip())
        if not m:
            raise MetricsTextError(f"/metrics line {n}: not a sample: {line[:120]!r}")
        labels = tuple(sorted((k, v.replace('\\"', '"').replace("\\\\", "\\"))
                              for k, v in _LABEL.findall(m.group(2) or "")))
        try:
            value = float(m.group(3))
        except ValueError:
            raise MetricsTextError(f"/metrics line {n}: value {m.group(3)!r} is not a number") from None
        out[(name, labels)] = out.get((name, labels), 0.0) + value
    return out


@dataclass(frozen=True)
class Scrape:
    """The counters at ``at`` (seconds, monotonic)."""

    at: float
    values: dict[Series, float]


@dataclass(frozen=True)
class Window:
    """Per-series rates (per second) between two scrapes, and the window's length."""

    seconds: float
    rates: dict[Series, float] = field(default_factory=dict)

    @staticmethod
    def between(first: Scrape, last: Scrape) -> "Window":
        seconds = last.at - first.at
        if seconds <= 0:
            raise ValueError(f"a window must end after it starts ({first.at} .. {last.at})")
        rates = {}
        for key, end in last.values.items():
            start = first.values.get(key, 0.0)
            # A counter that went back is a restarted server: the window is not comparable.
            if end < start:
                raise ValueError(f"{key[0]}{dict(key[1])} went back from {start} to {end}: "
                                 "kube-apiserver restarted during the window")
            if end != start:
                rates[key] = (end - start) / seconds
        return Window(seconds, rates)

    def minus(self, baseline: "Window") -> dict[Series, float]:
        """Per-series rate above the baseline's (negative where the baseline was busier)."""
        keys = set(self.rates) | set(baseline.rates)
        return {k: self.rates.get(k, 0.0) - baseline.rates.get(k, 0.0) for k in keys}


def total(rates: dict[Series, float], family: str, where=lambda labels: True) -> float:
    """The sum of ``family``'s per-series rates whose labels pass ``where``."""
    return sum(v for (name, labels), v in rates.items() if name == family and where(dict(labels)))


def not_watch(labels: dict) -> bool:
    return labels.get("verb") != "WATCH"


@dataclass(frozen=True)
class Cost:
    """What the difference of a window over a baseline costs per RAP node."""

    requests_per_s: float
    requests_per_period: float
    bytes_per_period: float  # responses + watch events
    response_bytes_per_period: float
    watch_bytes_per_period: float
    by_request: dict[str, float]  # "VERB group/resource" -> requests per second per node

    def as_dict(self) -> dict:
        return {"requests_per_s": self.requests_per_s, "requests_per_period": self.requests_per_period,
                "bytes_per_period": self.bytes_per_period, "response_bytes_per_period": self.response_bytes_per_period,
                "watch_bytes_per_period": self.watch_bytes_per_period, "by_request": self.by_request}


def request_name(labels: dict) -> str:
    resource = labels.get("resource") or "(non-resource)"
    if labels.get("subresource"):
        resource += "/" + labels["subresource"]
    group = labels.get("group") or "core"
    return f"{labels.get('verb', '?')} {group}/{resource}"


def cost(window: Window, baseline: Window, nodes: int, period_s: float) -> Cost:
    """Per RAP node: requests (WATCH excluded: a watch is counted when it ends, and its bytes are the
    watch events) per second and per period, and bytes per period, above ``baseline``, divided by ``nodes``."""
    if nodes < 1:
        raise ValueError(f"nodes must be 1 or more, got {nodes}")
    above = window.minus(baseline)
    reqs = total(above, REQUESTS, not_watch) / nodes
    resp = total(above, RESPONSE_BYTES, not_watch) / nodes * period_s
    watch = total(above, WATCH_BYTES) / nodes * period_s
    by_request: dict[str, float] = {}
    for (name, labels), v in above.items():
        if name == REQUESTS and not_watch(dict(labels)):
            key = request_name(dict(labels))
            by_request[key] = by_request.get(key, 0.0) + v / nodes
    by_request = {k: round(v, 4) for k, v in sorted(by_request.items()) if abs(v) >= 0.0005}
    return Cost(reqs, reqs * period_s, resp + watch, resp, watch, by_request)
