"""One status printer for every long job: builds, local-up, deploy, the benchmark.

Each area makes a ``Status("build")`` and says what it does through it, so
every job prints progress the same way: ``[area] step 2/4 swap: ...`` lines,
and for counted work a live bar (rich) on a terminal, or one plain line per
item when the output is a file, a pipe or CI. Not for results: tables and
summaries are printed by the code that makes them.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Iterator, Mapping, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def live_wanted(is_terminal: bool, environ: Mapping[str, str]) -> bool:
    """A live bar only on a real terminal outside CI; logs, pipes and CI get plain lines."""
    return is_terminal and not environ.get("CI") and environ.get("TERM") != "dumb"


def _live(console: Console) -> bool:
    return live_wanted(console.is_terminal, os.environ)


class Counter:
    """Counted work: ``advance(text)`` once per item; ``note(text)`` between items.

    Every note and advance is one ``[area] i/n text`` line. Used as a context
    manager (or through ``Status.counting``) it also shows a live bar while
    the output is a terminal; outside a ``with`` it prints the lines only.
    """

    def __init__(self, status: "Status", what: str, total: int, progress: Progress | None = None,
                 estimate_s: float = 0.0) -> None:
        self.status, self.what, self.total, self._done = status, what, max(total, 1), 0
        self.estimate_s = estimate_s
        self.t0 = time.monotonic()
        self._progress: Progress | None = None
        self._owned = False  # a bar this counter started (in __enter__) and so stops
        if progress is not None:
            self._attach(progress)

    def _attach(self, progress: Progress) -> None:
        self._progress = progress
        self._task = progress.add_task(self.what, total=self.total, completed=self._done, left=self._left_text())

    def __enter__(self) -> "Counter":
        if self._progress is None and _live(self.status.console):
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), TextColumn("{task.fields[left]}"))
            progress = Progress(*columns, console=self.status.console, transient=True)
            progress.start()
            self._owned = True
            self._attach(progress)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._owned and self._progress is not None:
            self._progress.stop()
        if self._owned:
            self._progress, self._owned = None, False

    @property
    def done(self) -> int:
        return self._done

    @done.setter
    def done(self, value: int) -> None:
        """Items finished, e.g. ``done += 3`` for items skipped; the bar follows."""
        self._done = value
        self._update()

    def _seconds_left(self, estimate_s: float | None = None) -> tuple[float, float]:
        elapsed = time.monotonic() - self.t0
        estimate = self.estimate_s if estimate_s is None else estimate_s
        if self._done:
            return elapsed, elapsed / self._done * max(self.total - self._done, 0)
        return elapsed, max(estimate - elapsed, 0)

    def _left_text(self) -> str:
        return f"~{self._seconds_left()[1]:.0f}s left"

    def eta(self, estimate_s: float | None = None) -> str:
        """``  12s elapsed, ~40s left``: from the pace so far, or from the estimate before the first item."""
        elapsed, left = self._seconds_left(estimate_s)
        return f"{elapsed:4.0f}s elapsed, ~{left:.0f}s left"

    def _update(self, text: str | None = None) -> None:
        if self._progress is not None:
            description = f"{self.what}: {text}" if text is not None else None
            self._progress.update(self._task, completed=self._done, description=description,
                                  left=self._left_text())

    def note(self, text: str) -> None:
        """What the next item is about to do: ``i/n text`` with i the item under way."""
        self._update(text)
        self.status.say(f"{self._done + 1}/{self.total} {text}")

    def advance(self, text: str, eta: bool = False) -> None:
        """One item finished: ``i/n text``, and with ``eta`` the time elapsed and left after it."""
        self._done += 1
        self._update(text)
        self.status.say(f"{self._done}/{self.total} {text}" + (f"  ({self.eta()})" if eta else ""))


class Status:
    """Progress lines of one area, e.g. ``Status("local-up").step(3, 9, "etcd")``.

    Prints to ``out`` if given, else to whatever sys.stdout (or, with
    ``stderr``, sys.stderr) is at the time of each line, so redirects and
    pytest's capture see it.
    """

    def __init__(self, area: str, out: TextIO | None = None, *, stderr: bool = False) -> None:
        self.area = area
        self.console = Console(file=out, stderr=stderr, highlight=False, markup=False, emoji=False,
                               soft_wrap=True)

    def say(self, text: str) -> None:
        self.console.print(f"[{self.area}] {text}")

    def step(self, number: int, total: int, text: str) -> None:
        self.say(f"step {number}/{total} {text}")

    def warn(self, text: str) -> None:
        self.say(f"warning: {text}")

    def counter(self, what: str, total: int, estimate_s: float = 0.0) -> Counter:
        """A Counter to keep across calls; ``with`` it for the live bar (see ``counting``)."""
        return Counter(self, what, total, estimate_s=estimate_s)

    @contextmanager
    def counting(self, what: str, total: int, estimate_s: float = 0.0) -> Iterator[Counter]:
        """Counted work with a live bar on a terminal, plain lines elsewhere."""
        with self.counter(what, total, estimate_s) as counter:
            yield counter
