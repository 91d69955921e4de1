"""Under CI=true no test skips: a skip there is a failure.

A test skips when this machine lacks what it needs (root, a namespace, a
built binary, a tool, a Python package). On a developer's machine that is a
fair answer; on CI it would hide the test for good, since CI is where
everything is meant to be installed (scripts/install.sh, run as root). So
when ``CI`` is ``true`` (or ``1``), every skip, whether ``pytest.skip``, a
``skipif`` mark or ``importorskip``, in a test or at collection, is reported
as a failure that quotes the skip's reason. xfail is not a skip and is left
alone.

A skip that is right even on CI (one that no CI machine can ever meet) must
say so with ``@pytest.mark.skip_ok_in_ci("why")``; each is listed in
docs/reliability.md.
"""

from __future__ import annotations

import os

import pytest

CI_VALUES = ("true", "1")
ALLOW_MARK = "skip_ok_in_ci"


def ci_forbids_skips(environ=os.environ) -> bool:
    """True on CI (``CI=true``, as GitHub Actions and most CI services set it)."""
    return environ.get("CI", "").strip().lower() in CI_VALUES


def _reason(longrepr) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _as_failure(report, where: str) -> None:
    report.outcome = "failed"
    report.longrepr = (f"CI=true: {where} skipped ({_reason(report.longrepr)}); on CI that is a failure: "
                       f"provide what it needs (scripts/install.sh, run as root) or mark it "
                       f"@pytest.mark.{ALLOW_MARK}(reason)")


def pytest_configure(config):
    config.addinivalue_line("markers", f"{ALLOW_MARK}(reason): this test's skip is right even on CI (say why)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if (report.skipped and not hasattr(report, "wasxfail") and ci_forbids_skips()
            and item.get_closest_marker(ALLOW_MARK) is None):
        _as_failure(report, item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and ci_forbids_skips():
        _as_failure(report, f"collecting {collector.nodeid}")
