"""rap.status: plain ``[area] ...`` lines, when a live bar is used, counted work and its ETA."""

from __future__ import annotations

import io

import pytest

from rap import status
from rap.bench.progress import Progress
from rap.status import Status, live_wanted


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(status.time, "monotonic", c)
    return c


def test_plain_lines_name_the_area_and_the_step():
    out = io.StringIO()
    s = Status("local-up", out)
    s.step(3, 8, "etcd and kube-apiserver")
    s.say("a line [with brackets] kept as it is")
    s.warn("no delay on this kernel")
    assert out.getvalue().splitlines() == [
        "[local-up] step 3/8 etcd and kube-apiserver",
        "[local-up] a line [with brackets] kept as it is",
        "[local-up] warning: no delay on this kernel",
    ]


def test_without_out_it_prints_to_the_stdout_or_stderr_of_the_moment(capsys):
    Status("deploy").say("to stdout")
    Status("cloud", stderr=True).say("to stderr")
    captured = capsys.readouterr()
    assert captured.out == "[deploy] to stdout\n" and captured.err == "[cloud] to stderr\n"


@pytest.mark.parametrize("is_terminal, environ, live", [
    (True, {}, True),
    (True, {"TERM": "xterm-256color"}, True),
    (True, {"CI": ""}, True),
    (True, {"CI": "true"}, False),
    (True, {"TERM": "dumb"}, False),
    (False, {}, False),
    (False, {"TERM": "xterm"}, False),
])
def test_live_bar_only_on_a_terminal_outside_ci(is_terminal, environ, live):
    assert live_wanted(is_terminal, environ) is live


def test_a_file_is_not_a_terminal():
    assert not status._live(Status("x", io.StringIO()).console)


def test_counting_prints_one_line_per_note_and_advance(clock):
    out = io.StringIO()
    with Status("build", out).counting("packages", 3) as counter:
        counter.note("fetch")
        counter.advance("fetched")
        counter.advance("built")
        assert counter.done == 2
        counter.done += 1  # given up: counted as done without a line
        assert counter.done == 3
    assert out.getvalue().splitlines() == ["[build] 1/3 fetch", "[build] 1/3 fetched", "[build] 2/3 built"]


def test_eta_from_the_estimate_then_from_the_pace(clock):
    counter = Status("bench", io.StringIO()).counter("runs", 4, estimate_s=100)
    clock.now += 30
    assert counter.eta() == "  30s elapsed, ~70s left"  # nothing done yet: the estimate
    clock.now += 100
    assert counter.eta() == " 130s elapsed, ~0s left"  # past the estimate: never negative
    counter.advance("one")
    assert counter.eta() == " 130s elapsed, ~390s left"  # 130 s a run, 3 to go
    assert counter.eta(estimate_s=10) == counter.eta()  # the estimate matters only before the first
    counter.done = 4
    assert counter.eta().endswith("~0s left")


def test_advance_with_eta(clock):
    out = io.StringIO()
    counter = Status("bench", out).counter("runs", 2)
    clock.now += 12
    counter.advance("geo: ok", eta=True)
    assert out.getvalue() == "[bench] 1/2 geo: ok  (  12s elapsed, ~12s left)\n"


def test_total_is_at_least_one():
    assert Status("x", io.StringIO()).counter("nothing", 0).total == 1


def test_live_mode_keeps_the_lines_and_stops_its_bar(monkeypatch):
    monkeypatch.setattr(status, "_live", lambda console: True)
    out = io.StringIO()
    with Status("bench", out).counting("runs", 2, estimate_s=5) as counter:
        assert counter._progress is not None and counter._progress.live.is_started
        counter.note("first")
        counter.advance("first done")
        counter.done += 1
        bar = counter._progress
        assert bar.tasks[0].completed == 2 and bar.tasks[0].description == "runs: first done"
    assert counter._progress is None and not bar.live.is_started
    text = out.getvalue()
    assert "[bench] 1/2 first" in text and "[bench] 1/2 first done" in text


# ---- the benchmark's progress goes through it ----

def test_bench_progress_lines(clock):
    out = io.StringIO()
    progress = Progress(3, 90, out=out)
    progress.say("cluster for geo: starting")
    progress.start_run("geo rep 1/1 rap")
    clock.now += 20
    progress.end_run("geo rep 1/1 rap: 40 req/s")
    progress.done += 1  # a cluster that failed counts its runs as done
    progress.start_run("geo rep 1/1 least-request")
    assert (progress.done, progress.total) == (2, 3)
    assert out.getvalue().splitlines() == [
        "[bench] cluster for geo: starting",
        "[bench] 1/3 geo rep 1/1 rap ...",
        "[bench] 1/3   geo rep 1/1 rap: 40 req/s  (  20s elapsed, ~40s left)",
        "[bench] 3/3 geo rep 1/1 least-request ...",
    ]
    assert progress.eta() == "  20s elapsed, ~10s left"
