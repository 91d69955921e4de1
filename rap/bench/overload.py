"""A co-located workload that keeps chosen pods past the overload threshold.

It talks to the pods directly (their pod IPs, not the Service), so it is not
balanced by any proxy: it stands for another tenant's work on the same
pods' CPU. Each of ``concurrency`` threads per pod sends back-to-back
requests carrying ``X-Cost-Ms`` (the backend burns that much CPU for this
request only), on one kept-alive connection, so a few threads hold a pod at
its cgroup CPU limit at almost no cost to the machine.

    python3 -m rap.bench.overload --cost-ms 50 --concurrency 2 --duration 60 \
        10.214.1.11:8080 10.214.1.12:8080

Bounded: it stops at --duration (at most 900 s) or on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import http.client
import signal
import sys
import threading
import time

MAX_DURATION_S = 900


def _worker(host: str, port: int, cost_ms: float, end: float, stop: threading.Event) -> None:
    conn = None
    while not stop.is_set() and time.monotonic() < end:
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=30)
            conn.request("GET", "/?format=text", headers={"X-Cost-Ms": str(cost_ms)})
            conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            if conn is not None:
                conn.close()
            conn = None
            stop.wait(0.2)
    if conn is not None:
        conn.close()


def run(targets: list[str], cost_ms: float, concurrency: int, duration: float) -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    end = time.monotonic() + duration
    threads = []
    for target in targets:
        host, _, port = target.rpartition(":")
        for _ in range(concurrency):
            t = threading.Thread(target=_worker, args=(host, int(port), cost_ms, end, stop), daemon=True)
            t.start()
            threads.append(t)
    while any(t.is_alive() for t in threads) and not stop.is_set():
        stop.wait(0.5)
    stop.set()
    for t in threads:
        t.join(timeout=35)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Hold pods at their CPU limit with direct, costly requests.")
    p.add_argument("targets", nargs="+", help="pod IP:PORT, e.g. 10.214.1.11:8080")
    p.add_argument("--cost-ms", type=float, default=50, help="CPU ms each request burns (default 50)")
    p.add_argument("--concurrency", type=int, default=2, help="threads per pod (default 2)")
    p.add_argument("--duration", type=float, default=60, help=f"seconds, at most {MAX_DURATION_S} (default 60)")
    args = p.parse_args(argv)
    if not 0 < args.duration <= MAX_DURATION_S:
        p.error(f"--duration must be in (0, {MAX_DURATION_S}]")
    if args.concurrency < 1 or args.cost_ms <= 0:
        p.error("--concurrency must be >= 1 and --cost-ms > 0")
    run(args.targets, args.cost_ms, args.concurrency, args.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
