"""A process's own accounting from /proc: CPU seconds (utime + stime) and resident memory.

CPU over a window is the difference of ``cpu_seconds`` at its two ends;
memory is the largest ``VmRSS`` seen while sampling through the window
(``RssWatch``), beside the kernel's ``VmHWM`` (the peak since the process
started, start-up included). Pure readers over the /proc text, so they are
tested on recorded text.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def parse_stat_cpu(text: str, ticks: int = CLK_TCK) -> float:
    """utime + stime (fields 14 and 15 of /proc/PID/stat) in seconds. rsplit: the name may hold ") "."""
    fields = text.rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks


def parse_status_kb(text: str, key: str) -> int | None:
    """A ``Key:   123 kB`` line of /proc/PID/status, in kB; None if absent."""
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def cpu_seconds(pid: int) -> float:
    return parse_stat_cpu(Path(f"/proc/{pid}/stat").read_text())


def status_kb(pid: int, key: str) -> int | None:
    return parse_status_kb(Path(f"/proc/{pid}/status").read_text(), key)


class RssWatch:
    """Samples VmRSS of ``pids`` every ``interval`` seconds in a thread; ``max_kb()`` per pid."""

    def __init__(self, pids: list[int], interval: float = 1.0) -> None:
        self.pids, self.interval = list(pids), interval
        self._max = {p: 0 for p in self.pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-watch")
        self._sample()
        self._thread.start()

    def _sample(self) -> None:
        for p in self.pids:
            try:
                kb = status_kb(p, "VmRSS") or 0
            except OSError:
                continue
            self._max[p] = max(self._max[p], kb)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> dict[int, int]:
        self._stop.set()
        self._thread.join(timeout=self.interval + 2)
        self._sample()
        return dict(self._max)
