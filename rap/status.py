"""One status printer for every long job: builds, local-up, deploy, the benchmark.

Each area makes a ``Status("build")`` and says what it does through it, so
every job prints progress the same way: ``[area] step 2/4 swap: ...`` lines,
and for counted work a live bar (rich) on a terminal, or one plain line per
item when the output is a file, a pipe or CI. Not for results: tables and
summaries are printed by the code that makes them.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Iterator, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def _live(console: Console) -> bool:
    """A live bar only on a real terminal outside CI; logs get plain lines."""
    return console.is_terminal and not os.environ.get("CI") and os.environ.get("TERM") != "dumb"


class Counter:
    """Counted work: ``advance(text)`` once per item; ``note(text)`` between items."""

    def __init__(self, status: "Status", what: str, total: int, progress: Progress | None) -> None:
        self.status, self.what, self.total, self.done = status, what, max(total, 1), 0
        self.t0 = time.monotonic()
        self._progress = progress
        self._task = progress.add_task(what, total=self.total) if progress else None

    def eta(self, estimate_s: float = 0.0) -> str:
        elapsed = time.monotonic() - self.t0
        left = elapsed / self.done * (self.total - self.done) if self.done else max(estimate_s - elapsed, 0)
        return f"{elapsed:4.0f}s elapsed, ~{left:.0f}s left"

    def note(self, text: str) -> None:
        self.status.say(f"{self.done + 1}/{self.total} {text}")

    def advance(self, text: str) -> None:
        self.done += 1
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=f"{self.what}: {text}")
        self.status.say(f"{self.done}/{self.total} {text}")


class Status:
    """Progress lines of one area, e.g. ``Status("local-up").step(3, 9, "etcd")``."""

    def __init__(self, area: str, out: TextIO | None = None) -> None:
        self.area = area
        self.console = Console(file=out or sys.stdout, highlight=False, markup=False, emoji=False,
                               soft_wrap=True)

    def say(self, text: str) -> None:
        self.console.print(f"[{self.area}] {text}")

    def step(self, number: int, total: int, text: str) -> None:
        self.say(f"step {number}/{total} {text}")

    def warn(self, text: str) -> None:
        self.say(f"warning: {text}")

    @contextmanager
    def counting(self, what: str, total: int) -> Iterator[Counter]:
        """Counted work with a live bar on a terminal, plain lines elsewhere."""
        if not _live(self.console):
            yield Counter(self, what, total, None)
            return
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=self.console, transient=True) as progress:
            yield Counter(self, what, total, progress)
