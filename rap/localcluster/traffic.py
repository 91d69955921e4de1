"""Requests from inside a node's namespace, through the real proxy, to the Service."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

from rap.loadgen import Sample


@dataclass
class ProbeResult:
    ok: bool
    error: str = ""


def load(netns: str, ip: str, port: int, *, mode: str = "closed", rate: float = 100,
         concurrency: int = 4, duration: float = 5, max_requests: int = 1000,
         timeout: float = 10, path: str = "/", think_ms: float = 0.0) -> list[Sample]:
    """Run rap.loadgen inside ``netns``; its samples."""
    cmd = ["ip", "netns", "exec", netns, sys.executable, "-m", "rap.loadgen",
           "--url", f"http://{ip}:{port}{path}", "--mode", mode, "--rate", str(rate),
           "--concurrency", str(concurrency), "--think-ms", str(think_ms), "--duration", str(duration),
           "--max-requests", str(max_requests), "--timeout", str(timeout)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + timeout + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed in {netns}: {proc.stderr.strip()}")
    return [Sample(**json.loads(line)) for line in proc.stdout.splitlines() if line.strip()]


def probe(netns: str, ip: str, port: int) -> ProbeResult:
    try:
        [s] = load(netns, ip, port, concurrency=1, duration=3, max_requests=1, timeout=2)
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
        return ProbeResult(False, str(exc))
    return ProbeResult(s.status == 200, s.error or f"HTTP {s.status}")
