"""Progress while the benchmark runs: one line per run, with runs done/total and an ETA.

Printed through rap.status as ``[bench] ...`` lines: plain lines in a log,
a file or CI, and with ``with Progress(...)`` also a live bar on a terminal.
Not for results: the summary tables are the report's.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rap.status import Status


class Progress:
    """``start_run``/``end_run`` around every run; ``say`` for lines between runs."""

    def __init__(self, total_runs: int, estimate_s: float, out: TextIO | None = None) -> None:
        # Bound to today's stdout: the bench hushes the local cluster's own lines by
        # redirecting sys.stdout while it starts one, and its own lines must still show.
        self.status = Status("bench", out or sys.stdout)
        self.counter = self.status.counter("runs", total_runs, estimate_s)

    def __enter__(self) -> "Progress":
        self.counter.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.counter.__exit__(*exc)

    @property
    def total(self) -> int:
        return self.counter.total

    @property
    def done(self) -> int:
        return self.counter.done

    @done.setter
    def done(self, value: int) -> None:
        """Runs finished or given up (a cluster that did not start counts its runs as done)."""
        self.counter.done = value

    def say(self, text: str) -> None:
        self.status.say(text)

    def eta(self) -> str:
        return self.counter.eta()

    def start_run(self, text: str) -> None:
        self.counter.note(f"{text} ...")

    def end_run(self, text: str) -> None:
        self.counter.advance(f"  {text}", eta=True)
