"""The fault switches of a running local cluster's metrics server, set from the root namespace.

``set_failing(runtime, on)`` makes the metric endpoints answer 503 (or recover);
``set_slow(runtime, seconds)`` makes them answer that many seconds late (0 = at
once); ``faults(runtime)`` reads both. ``runtime`` is the cluster's runtime
folder (None: ``state.runtime_dir()``). These are the HTTP switches of
``server`` (``POST /control/fail``, ``/control/slow``), reached the way only the
root namespace can: the server takes them on its own loopback listener (which no
node or pod namespace can reach), from the ``rap-metrics-control`` client
certificate in the cluster's 0700 pki folder. Not the server side (``api.control``).
"""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from rap.errors import UserError
from rap.localcluster import state
from rap.localcluster.pki import Pki

TIMEOUT_S = 10.0


class MetricsControlError(UserError, RuntimeError):
    """The switch could not be set; the message names why and the fix."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    context: ssl.SSLContext


CONTROL_FILE = "metrics-control.json"  # in the runtime folder; the metrics server writes it


def endpoint(runtime: Path) -> Endpoint:
    """Where the running cluster's metrics server takes its switches, and the TLS to use."""
    path = runtime / CONTROL_FILE
    try:
        where = json.loads(path.read_text())
    except FileNotFoundError:
        raise MetricsControlError(f"{path} does not exist: no local cluster's metrics server runs from "
                                  f"{runtime}; start one with `invoke local-up`") from None
    keys = Pki(runtime / "pki")
    ctx = ssl.create_default_context(cafile=str(keys.path("ca.crt")))
    ctx.load_cert_chain(str(keys.path("metrics-control.crt")), str(keys.path("metrics-control.key")))
    return Endpoint(where["host"], int(where["port"]), ctx)


def _call(runtime: Path | None, method: str, path: str, query: dict | None = None) -> dict:
    runtime = runtime or state.runtime_dir()
    where = endpoint(runtime)
    target = path + (f"?{urlencode(query)}" if query else "")
    conn = http.client.HTTPSConnection(where.host, where.port, timeout=TIMEOUT_S, context=where.context)
    try:
        conn.request(method, target)
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as e:
        raise MetricsControlError(
            f"the metrics server at {where.host}:{where.port} does not answer {method} {path} ({e}); "
            "if a test stopped it, start it again with rap.localcluster.cluster.restart_metrics()") from None
    finally:
        conn.close()
    if resp.status != 200:
        raise MetricsControlError(f"{method} {target}: {resp.status} {body.strip()}")
    return json.loads(body)


def set_failing(runtime: Path | None, on: bool) -> bool:
    """Metric endpoints answer 503 (``on``) or recover; returns the switch as the server now has it."""
    return _call(runtime, "POST", "/control/fail", {"on": "1" if on else "0"})["failing"]


def set_slow(runtime: Path | None, seconds: float) -> float:
    """Metric endpoints answer ``seconds`` late (0 = at once, at most api.MAX_SLOW_S); returns the delay set."""
    return _call(runtime, "POST", "/control/slow", {"seconds": repr(float(seconds))})["slow_s"]


def faults(runtime: Path | None = None) -> dict:
    """Both switches: ``{"failing": bool, "slow_s": float}``."""
    return {**_call(runtime, "GET", "/control/fail"), **_call(runtime, "GET", "/control/slow")}
