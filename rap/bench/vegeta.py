"""vegeta (github.com/tsenart/vegeta), pinned and built on first use; its attack and its output, parsed.

The cross-check's independent load generator (rap.bench.crosscheck). Built
with the project's Go toolchain (rap.build.toolchain) into
``<cache>/bin/vegeta``, from one version whose module checksum is kept here.
Its results become samples shaped like rap.loadgen's, so that one function
measures both. Not here: the comparison (rap.bench.crosscheck).
"""

from __future__ import annotations

import json
import resource
import subprocess
from datetime import datetime
from pathlib import Path

from rap.bench import stats
from rap.errors import UserError

MODULE = "github.com/tsenart/vegeta/v12"
VERSION = "v12.13.0"
# The module's go.sum hash: a release re-tagged upstream, or a proxy that
# serves other bytes, fails here instead of being measured against.
SUM = "h1:J/UiNS3f69MkL0tsRLVUUV8uXXQZxdRUchtS+GYiSFc="


class VegetaError(UserError):
    """vegeta could not be built or run, or wrote what it never writes; the message says which."""


def binary_path() -> Path:
    from rap.paths import cache_dir

    return cache_dir() / "bin" / "vegeta"


def build(force: bool = False) -> Path:
    """``<cache>/bin/vegeta`` at VERSION, built unless the stamp says it already is."""
    from rap.build import pinned

    return pinned.install(pinned.Pin("vegeta", MODULE, VERSION, SUM, MODULE, "rap/bench/vegeta.py",
                                     ldflags=f"-X main.Version={VERSION}", error=VegetaError), binary_path(), force)


def attack_flags(rate: int, duration_s: float, timeout_s: float) -> list[str]:
    """``vegeta attack``'s flags: a fixed rate, a new connection per request, bounded in time and workers."""
    # As many workers as rap.loadgen could have requests in flight (rate x timeout): never fewer, so
    # vegeta does not queue ticks behind busy workers; and a bound, as every load loop here has.
    return [f"-rate={rate}/1s", f"-duration={duration_s:g}s", f"-timeout={timeout_s:g}s", "-keepalive=false",
            "-http2=false", f"-max-workers={int(rate * timeout_s) + 10}", "-max-body=0"]


def attack(binary: Path, netns: str, url: str, results: Path, *, rate: int, duration_s: float,
           timeout_s: float) -> tuple[list[dict], dict, float]:
    """One ``GET url`` attack from ``netns``: its samples (parsed), its own report (parsed), its CPU seconds.

    ``results`` keeps vegeta's binary results (``vegeta report`` reads them again); the targets file goes beside it.
    """
    targets = results.with_suffix(".targets")
    targets.write_text(f"GET {url}\n")
    cpu0 = child_cpu_s()
    _vegeta(["ip", "netns", "exec", netns, str(binary), "attack", f"-targets={targets}",
             *attack_flags(rate, duration_s, timeout_s), f"-output={results}"], duration_s + timeout_s + 30)
    cpu = child_cpu_s() - cpu0
    encoded = _vegeta([str(binary), "encode", "-to=json", str(results)], 60)
    report = _vegeta([str(binary), "report", "-type=json", str(results)], 60)
    return parse_encoded(encoded), parse_report(report), cpu


def child_cpu_s() -> float:
    """CPU seconds of this process's finished children: a generator's own load on the shared machine."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _vegeta(cmd: list[str], timeout: float) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise VegetaError(f"vegeta did not finish within {timeout:g}s: {' '.join(cmd)}") from None
    if proc.returncode != 0:
        raise VegetaError(f"vegeta failed (exit {proc.returncode}): {' '.join(cmd)}: {proc.stderr.strip()}")
    return proc.stdout


def parse_encoded(text: str) -> list[dict]:
    """``vegeta encode -to=json`` lines -> samples like rap.loadgen's (start, latency_ms, status, pod, node, error).

    ``start``: seconds after request 0 actually started; ``seq``: vegeta's
    schedule index (request k was due k/rate after request 0).
    """
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            headers = {k.lower(): v for k, v in (r.get("headers") or {}).items()}
            rows.append((int(r["seq"]), datetime.fromisoformat(r["timestamp"]), float(r["latency"]) / 1e6,
                         int(r["code"]), (headers.get("x-pod") or [""])[0], (headers.get("x-node") or [""])[0],
                         str(r.get("error") or "")))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise VegetaError(f"vegeta encode, line {n}: not a vegeta result ({exc}): {line[:120]!r}") from None
    if not rows:
        return []
    rows.sort()
    t0 = rows[0][1]
    return [{"seq": seq, "start": (ts - t0).total_seconds(), "latency_ms": ms, "status": code, "pod": pod,
             "node": node, "error": err} for seq, ts, ms, code, pod, node, err in rows]


def parse_report(text: str) -> dict:
    """``vegeta report -type=json`` -> its own requests, success ratio, p50 and p95 (ms)."""
    try:
        r = json.loads(text)
        lat = r["latencies"]
        return {"requests": int(r["requests"]), "success": float(r["success"]),
                "p50_ms": float(lat["50th"]) / 1e6, "p95_ms": float(lat["95th"]) / 1e6}
    except (ValueError, KeyError, TypeError) as exc:
        raise VegetaError(f"vegeta report: not a vegeta JSON report ({exc}): {text[:200]!r}") from None


def start_lag_ms(samples: list[dict], rate: float) -> dict:
    """How late vegeta started each request against its own schedule (request k due k/rate after request 0)."""
    lags = [max((s["start"] - s["seq"] / rate) * 1000, 0.0) for s in samples]
    return {"p50": stats.percentile(lags, 50), "p95": stats.percentile(lags, 95),
            "max": max(lags) if lags else None}
