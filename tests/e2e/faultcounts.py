"""The fault tests' load and counts: one open-loop load placed on the fault's clock, and what it saw.

A load is rap.loadgen run in a node's namespace, as ``traffic.load`` runs it, but started in the
background and printing its own start on ``time.monotonic()`` (one clock for every process of the
machine), so that every connection can be placed against the fault's marks (``faults.Marks``).

How a run is counted (docs/reliability.md, "Faults", says the same):

- *failed*: a connection not answered with HTTP 200 within the client's timeout, less the *excused*
  ones: those in flight (open at some moment) while the fault took a backend away (``Marks.lost``:
  while ``remove_pod`` took a pod out; the instant a node's packets began to be dropped), which no
  proxy can save (kube-proxy does not retry a connection it has handed over).
- *good*: answered with 200 within ``GOOD_MS``, kube-proxy's first dial timeout: a good connection
  cannot have waited out a dial to an endpoint that does not answer.
- *recovery*: from the fault's onset to the start of the first run of ``RUN`` consecutive good
  connections (in start order) that begins after the fault's last failed connection (after the onset
  when none failed); None ("never") when no such run starts within the load.
- *blind*: when the proxy's log says RAP balances as round robin: from "starting the resource
  monitor" (a new process has no snapshot) or from "cannot read resource metrics" plus stale_after_s
  (its old samples must expire first), to "resource metrics available".
"""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from rap.loadgen import Sample
from rap.localcluster import faults

GOOD_MS = 250.0  # EndpointDialTimeouts[0] in rap_patch/proxysocket.go (upstream's)
RUN = 10
FAILURES_SHOWN = 5

_LOADER = (
    "import dataclasses, json, sys, time\n"
    "from rap import loadgen\n"
    "url, rate, duration, timeout = sys.argv[1], *map(float, sys.argv[2:5])\n"
    "print(json.dumps({'t0': time.monotonic()}), flush=True)\n"
    "for s in loadgen.run(url, 'open', rate=rate, duration=duration, max_requests=int(rate * duration),"
    " timeout=timeout):\n"
    "    print(json.dumps(dataclasses.asdict(s)))\n"
)


class Load:
    """An open-loop load from ``netns`` at ``rate`` per second for ``duration`` s, in the background."""

    def __init__(self, netns: str, url: str, rate: float, duration: float, timeout: float):
        self.expected, self.timeout = int(rate * duration), duration + timeout + 30
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-c", _LOADER, url, str(rate), str(duration),
             str(timeout)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = self.proc.stdout.readline()
        if not first:
            raise RuntimeError(f"the load generator in {netns} did not start: {self.proc.stderr.read().strip()}")
        self.t0 = json.loads(first)["t0"]

    def samples(self) -> list[tuple[float, Sample]]:
        """(monotonic start, sample) of every connection, once the load has ended."""
        out, err = self.proc.communicate(timeout=self.timeout)
        if self.proc.returncode != 0:
            raise RuntimeError(f"the load generator failed: {err.strip()}")
        samples = [Sample(**json.loads(line)) for line in out.splitlines() if line.strip()]
        if len(samples) != self.expected:
            raise RuntimeError(f"the load made {len(samples)} of its {self.expected} connections")
        return sorted(((self.t0 + s.start, s) for s in samples), key=lambda pair: pair[0])


@dataclass(frozen=True)
class Tally:
    total: int
    failed: int
    excused: int
    slow: int  # answered, but not within GOOD_MS
    recovery_s: float | None
    blind_s: float  # of the load after the onset, how long RAP said it balanced as round robin
    before_share: dict  # node -> share of the answered connections started before the onset
    window_share: dict  # the same, of those started in the window where RAP's metrics were unusable
    window_n: int  # how many connections were answered in that window
    last_bad_s: float | None  # from the onset to the start of the last failed or slow connection
    failures: tuple[str, ...]  # the first few failed connections: when (from the onset) and why
    failed_after_gap: int = 0  # failed, and started after the restarted process served steadily (_gap_end)

    def recovery(self) -> str:
        return "never" if self.recovery_s is None else f"{self.recovery_s:.1f} s"

    def last_bad(self) -> str:
        return "none" if self.last_bad_s is None else f"{self.last_bad_s:.1f} s"

    def summary(self) -> str:
        excused = f" (+{self.excused} lost in flight)" if self.excused else ""
        return (f"{self.failed}/{self.total} failed{excused}, {self.slow} slow, recovery {self.recovery()}, "
                f"last failed or slow connection {self.last_bad()} after the onset, "
                f"blind {self.blind_s:.1f} s (log), served before the fault {_shares(self.before_share)}"
                + (f", while the metrics were unusable {_shares(self.window_share)} of {self.window_n}"
                   if self.window_n else "")
                + (f"; failures: {'; '.join(self.failures)}" if self.failures else ""))

    def as_dict(self) -> dict:
        return asdict(self)


def tally(timed: list[tuple[float, Sample]], marks: faults.Marks, blind: list[tuple[float, float]],
          window: tuple[float, float | None] | None = None) -> Tally:
    """The counts of one load under one fault; ``blind`` from ``blind_windows``, ``window`` the span
    (monotonic) where RAP's metrics could not be used, whose spread over nodes is reported."""
    excused = [i for i, (t, s) in enumerate(timed) if s.status != 200 and _in_flight(t, s, marks.lost)]
    failed = [i for i, (_, s) in enumerate(timed) if s.status != 200 and i not in excused]
    after = [i for i, (t, _) in enumerate(timed) if t >= marks.onset]
    end = timed[-1][0] if timed else marks.onset
    blind = [(max(a, marks.onset), min(b, end)) for a, b in blind if b > marks.onset and a < end]
    lo, hi = window or (0.0, None)
    in_window = [s for t, s in timed if window and lo <= t <= (end if hi is None else hi)]
    return Tally(
        total=len(timed), failed=len(failed), excused=len(excused),
        slow=sum(s.status == 200 and s.latency_ms >= GOOD_MS for _, s in timed),
        recovery_s=_recovery(timed, marks.onset, max(failed + [after[0] - 1 if after else -1])),
        blind_s=sum(b - a for a, b in blind),
        before_share=_share([s for t, s in timed if t < marks.onset]),
        window_share=_share(in_window),
        window_n=sum(s.status == 200 for s in in_window),
        last_bad_s=max((t - marks.onset for t, s in timed if t >= marks.onset and not _good(s)), default=None),
        failures=tuple(f"{timed[i][0] - marks.onset:+.1f} s {timed[i][1].error or timed[i][1].status}"
                       for i in failed[:FAILURES_SHOWN]),
        failed_after_gap=_failed_after_gap(timed, failed, marks.onset),
    )


def _failed_after_gap(timed, failed: list[int], onset: float) -> int:
    """With the fault a restart: the failures the restarted process itself caused, not its start-up gap."""
    end = _gap_end(timed, onset)
    return 0 if end is None else sum(timed[i][0] >= end for i in failed)


def _gap_end(timed, onset: float) -> float | None:
    """When the start-up gap ended: the start of the first RUN connections in a row answered after the
    onset. One early answer does not end it: upstream's userspace proxier answers while it is still
    writing its portal rules, and a connection a moment later can still be lost (seen: one at +0.3 s,
    after one answered at +0.1 s). With no such run the process never served steadily, and the gap is
    taken to end at its first answer (None: it never answered)."""
    after = [(t, s) for t, s in timed if t >= onset]
    for i in range(len(after) - RUN + 1):
        if all(s.status == 200 for _, s in after[i:i + RUN]):
            return after[i][0]
    return next((t for t, s in after if s.status == 200), None)


def _in_flight(t: float, s: Sample, lost) -> bool:
    return any(t <= to and t + s.latency_ms / 1000 >= began for _, began, to in lost)


def _recovery(timed, onset: float, last_bad: int) -> float | None:
    run = 0
    for i in range(last_bad + 1, len(timed)):
        t, s = timed[i]
        run = run + 1 if _good(s) else 0
        if run == RUN:
            return max(0.0, timed[i - RUN + 1][0] - onset)
    return None


def _good(s: Sample) -> bool:
    return s.status == 200 and s.latency_ms < GOOD_MS


def _share(samples: list[Sample]) -> dict:
    nodes = Counter(s.node for s in samples if s.status == 200)
    total = sum(nodes.values())
    return {n: round(c / total, 2) for n, c in sorted(nodes.items())} if total else {}


def _shares(share: dict) -> str:
    return ", ".join(f"{n} {v:.0%}" for n, v in share.items()) or "nothing"


# klog's header: severity, MMDD, wall-clock time in the process's (here the machine's) local zone.
_KLOG = re.compile(r"^[IWEF](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6})")
STARTED, UNREADABLE, AVAILABLE = ("starting the resource monitor", "cannot read resource metrics",
                                  "resource metrics available")


def blind_windows(log: str, stale_after_s: float, until: float) -> list[tuple[float, float]]:
    """RAP's round-robin spells in a proxy log, on the monotonic clock; one still open ends at ``until``."""
    windows, since = [], None
    for line in log.splitlines():
        t = _klog_time(line)
        if t is None:
            continue
        if STARTED in line or UNREADABLE in line:
            start = t + (stale_after_s if UNREADABLE in line else 0.0)
            since = start if since is None else min(since, start)
        elif AVAILABLE in line and since is not None:
            if t > since:
                windows.append((since, t))
            since = None
    if since is not None and until > since:
        windows.append((since, until))
    return windows


def _klog_time(line: str) -> float | None:
    m = _KLOG.match(line)
    if not m:
        return None
    month, day, hh, mm, ss, us = map(int, m.groups())
    year = datetime.date.today().year
    wall = datetime.datetime(year, month, day, hh, mm, ss, us).timestamp()  # naive: local time, as klog
    return wall - (time.time() - time.monotonic())


def log_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def log_since(path: Path, offset: int) -> str:
    with open(path, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")
