"""A load generator for the Service: open-loop (fixed rate) or closed-loop, bounded.

Every request opens a new TCP connection, because kube-proxy (and RAP) balance
per connection: a kept-alive connection would be one decision for many
requests. Open-loop latency is measured from each request's *scheduled* start,
so a slow proxy cannot hide its queueing (no coordinated omission).

    python3 -m rap.loadgen --url http://10.215.0.10:80/ --mode open --rate 200 \
        --duration 10 --max-requests 5000 --out samples.jsonl

Run it inside a node's namespace (``ip netns exec rap-node-1 ...``) to load the
Service from that node. It stops by itself at --duration or --max-requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

MAX_DURATION_S = 600
MAX_REQUESTS = 1_000_000
MAX_THINK_MS = 60_000


@dataclass
class Sample:
    start: float  # seconds since the run began (scheduled start in open loop)
    latency_ms: float
    status: int  # HTTP status, 0 on a transport error
    pod: str = ""
    node: str = ""
    error: str = ""


async def one_request(host: str, port: int, path: str, timeout: float) -> tuple[int, str, str, str]:
    """(status, pod, node, error) of one GET on a fresh connection."""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout)
        if not raw:  # the proxy closed the connection without a byte (e.g. killed with it open)
            return 0, "", "", "EmptyResponse: closed before any byte of a response"
        head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        return status, headers.get("x-pod", ""), headers.get("x-node", ""), ""
    except (OSError, asyncio.TimeoutError, IndexError, ValueError) as exc:
        return 0, "", "", type(exc).__name__ + (f": {exc}" if str(exc) else "")
    finally:
        if writer is not None:
            writer.close()


async def _timed(url, t0: float, scheduled: float, timeout: float) -> Sample:
    status, pod, node, err = await one_request(url.hostname, url.port or 80, url.path or "/", timeout)
    return Sample(scheduled - t0, (time.monotonic() - scheduled) * 1000, status, pod, node, err)


async def open_loop(url, rate: float, duration: float, max_requests: int, timeout: float) -> list[Sample]:
    t0 = time.monotonic()
    tasks = []
    n = min(max_requests, int(rate * duration))
    for i in range(n):
        scheduled = t0 + i / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_timed(url, t0, scheduled, timeout)))
    return list(await asyncio.gather(*tasks))


async def closed_loop(url, concurrency: int, duration: float, max_requests: int, timeout: float,
                      think: float = 0.0) -> list[Sample]:
    """``concurrency`` workers, each sending its next request ``think`` seconds after the last answer.

    With no think time the workers drive the slowest part of the path to
    saturation; a think time models users who read before they click again,
    so the offered load stays bounded while throughput still follows latency.
    """
    t0 = time.monotonic()
    samples: list[Sample] = []
    end = t0 + duration

    async def worker() -> None:
        while time.monotonic() < end and len(samples) < max_requests:
            samples.append(await _timed(url, t0, time.monotonic(), timeout))
            if think > 0:
                if time.monotonic() + think >= end:
                    return  # the next request would start after the window
                await asyncio.sleep(think)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples[:max_requests]


def run(url: str, mode: str, *, rate: float = 100, concurrency: int = 8, duration: float = 5,
        max_requests: int = 10_000, timeout: float = 10, think_ms: float = 0.0) -> list[Sample]:
    parsed = urlsplit(url)
    if mode == "open":
        return asyncio.run(open_loop(parsed, rate, duration, max_requests, timeout))
    return asyncio.run(closed_loop(parsed, concurrency, duration, max_requests, timeout, think_ms / 1000))


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Bounded HTTP load against a Service, one connection per request.")
    p.add_argument("--url", required=True, help="target, e.g. http://10.215.0.10:80/")
    p.add_argument("--mode", choices=["open", "closed"], default="closed",
                   help="open: fixed request rate; closed: N workers back to back (default closed)")
    p.add_argument("--rate", type=float, default=100, help="open loop: requests per second (default 100)")
    p.add_argument("--concurrency", type=int, default=8, help="closed loop: concurrent workers (default 8)")
    p.add_argument("--think-ms", type=float, default=0,
                   help=f"closed loop: each worker's pause after an answer, 0..{MAX_THINK_MS:g} ms (default 0)")
    p.add_argument("--duration", type=float, default=5, help=f"seconds, at most {MAX_DURATION_S} (default 5)")
    p.add_argument("--max-requests", type=int, default=10_000, help="stop after this many (default 10000)")
    p.add_argument("--timeout", type=float, default=10, help="per-request timeout in seconds (default 10)")
    p.add_argument("--out", help="write samples as JSON lines here (default: stdout)")
    args = p.parse_args(argv)
    if not 0 < args.duration <= MAX_DURATION_S:
        p.error(f"--duration must be in (0, {MAX_DURATION_S}] seconds")
    if not 0 < args.max_requests <= MAX_REQUESTS:
        p.error(f"--max-requests must be in 1..{MAX_REQUESTS}")
    if args.rate <= 0 or args.concurrency <= 0:
        p.error("--rate and --concurrency must be > 0")
    if not 0 <= args.think_ms <= MAX_THINK_MS:
        p.error(f"--think-ms must be in [0, {MAX_THINK_MS:g}] ms")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    samples = run(args.url, args.mode, rate=args.rate, concurrency=args.concurrency,
                  duration=args.duration, max_requests=args.max_requests, timeout=args.timeout,
                  think_ms=args.think_ms)
    lines = "".join(json.dumps(asdict(s)) + "\n" for s in samples)
    if args.out:
        with open(args.out, "w") as out:
            out.write(lines)
    else:
        sys.stdout.write(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
