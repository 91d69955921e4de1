"""Progress while the benchmark runs: one line per run, with a bar and an ETA.

Plain text (no terminal control codes), so it reads the same in a terminal,
in CI logs and in a captured file.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total_runs: int, estimate_s: float, out: TextIO | None = None) -> None:
        self.total = max(total_runs, 1)
        self.done = 0
        self.estimate_s = estimate_s
        self.t0 = time.monotonic()
        self.out = out or sys.stdout

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def bar(self, width: int = 20) -> str:
        filled = min(round(width * self.done / self.total), width)
        return "[" + "#" * filled + "." * (width - filled) + "]"

    def eta(self) -> str:
        elapsed = time.monotonic() - self.t0
        if self.done:
            left = elapsed / self.done * (self.total - self.done)
        else:
            left = max(self.estimate_s - elapsed, 0)
        return f"{elapsed:4.0f}s elapsed, ~{left:.0f}s left"

    def start_run(self, text: str) -> None:
        self.say(f"{self.bar()} {self.done + 1}/{self.total} {text} ...")

    def end_run(self, text: str) -> None:
        self.done += 1
        self.say(f"{self.bar()} {self.done}/{self.total}   {text}  ({self.eta()})")
