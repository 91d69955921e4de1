"""How the fault tests count (tests/e2e/faultcounts.py), on made-up samples: no cluster needed."""

from __future__ import annotations

import time

from rap.loadgen import Sample
from rap.localcluster.faults import Marks

from tests.e2e import faultcounts as fc

T0, STEP = 1000.0, 0.1


def _timed(n: int, failed=(), slow=(), node=lambda i: "node-2" if i % 2 else "node-3"):
    """n connections, one every STEP s from T0, each 20 ms unless slow (400 ms) or failed."""
    return [(T0 + i * STEP, Sample(i * STEP, 400.0 if i in slow else 20.0, 0 if i in failed else 200, "p",
                                   node(i), "TimeoutError" if i in failed else "")) for i in range(n)]


def test_recovery_starts_after_the_last_failed_connection_not_at_the_onset():
    t = fc.tally(_timed(100, failed={40}), Marks(onset=T0 + 2.0), [])
    assert t.failed == 1 and t.excused == 0
    assert abs(t.recovery_s - 2.1) < 1e-6  # connection 41 starts 2.1 s after the onset


def test_no_run_of_good_connections_is_never_recovered():
    every_third_slow = {i for i in range(30, 100) if i % 3 == 0}
    t = fc.tally(_timed(100, slow=every_third_slow), Marks(onset=T0 + 3.0), [])
    assert t.recovery_s is None and t.recovery() == "never"
    assert t.failed == 0 and t.slow == len(every_third_slow)
    assert abs(t.last_bad_s - (99 * STEP - 3.0)) < 1e-6


def test_a_failure_in_flight_while_a_backend_went_is_excused_and_one_after_is_not():
    # Connection 30 is open over [3.0, 3.02] s, connection 50 long after the removal's span.
    marks = Marks(onset=T0 + 2.0, lost=[("web-3-1", T0 + 3.01, T0 + 3.2)])
    t = fc.tally(_timed(80, failed={30, 50}), marks, [])
    assert (t.failed, t.excused) == (1, 1)
    assert t.failures == ("+3.0 s TimeoutError",)


def test_the_spread_is_taken_before_the_onset_and_inside_the_window_only():
    node = lambda i: "node-3" if i < 20 else ("node-2" if i % 2 else "node-3")  # noqa: E731
    t = fc.tally(_timed(60, node=node), Marks(onset=T0 + 2.0, end=T0 + 5.0), [], (T0 + 3.0, T0 + 5.0))
    assert t.before_share == {"node-3": 1.0}
    assert t.window_share == {"node-2": 0.48, "node-3": 0.52} and t.window_n == 21  # 30..50
    assert fc.tally(_timed(60), Marks(onset=T0 + 2.0), []).window_n == 0


def _klog(at: float, text: str) -> str:
    wall = at + (time.time() - time.monotonic())
    return time.strftime("E%m%d %H:%M:%S", time.localtime(wall)) + f".{int(wall % 1 * 1e6):06d}    7 x.go:1] {text}"


def test_blind_windows_follow_the_monitor_log():
    now = time.monotonic()
    log = "\n".join([
        _klog(now - 20, f'"RAP: {fc.UNREADABLE}; balancing as round robin"'),  # samples expire 3 s later
        _klog(now - 10, f'"RAP: {fc.AVAILABLE}; balancing adaptively"'),
        _klog(now - 8, f'"RAP: {fc.UNREADABLE}"'),
        _klog(now - 7, f'"RAP: {fc.AVAILABLE}"'),  # back before anything expired: never blind
        _klog(now - 4, f'"RAP: {fc.STARTED}"'),  # a new process: blind at once, still open
    ])
    windows = fc.blind_windows(log, 3.0, until=now)
    assert len(windows) == 2, windows
    (a, b), (c, d) = windows
    assert abs(a - (now - 17)) < 0.01 and abs(b - (now - 10)) < 0.01
    assert abs(c - (now - 4)) < 0.01 and d == now


def test_only_failures_after_the_restarted_process_served_steadily_count_as_after_the_gap():
    # A restart at 2.0 s (connection 20): 20..22 refused (the gap), then 23.. answered in a row, 40 failed
    # (the new process's own).
    t = fc.tally(_timed(60, failed={20, 21, 22, 40}), Marks(onset=T0 + 2.0), [])
    assert (t.failed, t.failed_after_gap) == (4, 1)
    assert fc.tally(_timed(60, failed={20, 21}), Marks(onset=T0 + 2.0), []).failed_after_gap == 0


def test_one_early_answer_does_not_end_the_gap():
    # 23 answered while the portal rules were still being written; 25 lost; steady from 26.
    assert fc.tally(_timed(60, failed={20, 21, 22, 24, 25}), Marks(onset=T0 + 2.0), []).failed_after_gap == 0


def test_a_process_that_never_serves_steadily_counts_every_failure_after_its_first_answer():
    failed = {20, 21, 22} | set(range(26, 60, 4))  # answers, but one connection in four fails to the end
    t = fc.tally(_timed(60, failed=failed), Marks(onset=T0 + 2.0), [])
    assert t.failed_after_gap == len(failed) - 3
