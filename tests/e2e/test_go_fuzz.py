"""A short go test -fuzz of each target in rap_patch/rap_fuzz_test.go.

rap.build.gotest.fuzz_proxy runs them on the package test-proxy swaps in
(the same tree and overlay code), ten seconds each: rap.go's reading of
metrics.k8s.io quantities and bodies, and its endpoint building against
kube-proxy's own. Longer runs: `python3 -m invoke fuzz-proxy --fuzztime 10m`
(or --target FuzzRAPMetrics). A failure leaves the input in the build dir's
fuzz/userspace/testdata/fuzz/<target>/, which go's output names; copy it to
a unit test in rap_patch/ once fixed.

Slow: the first run compiles the package (tens of seconds with a warm
~/.cache/rap).
"""

from __future__ import annotations

import pytest

from rap.build import BuildError, gotest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.parametrize("target", gotest.FUZZ_TARGETS)
def test_fuzz_target_finds_nothing(target):
    try:
        gotest.fuzz_proxy((target,), fuzztime="10s")
    except BuildError as exc:
        pytest.fail(f"{target}: {exc} (the failing input is under fuzz/userspace/testdata/fuzz/{target}/ "
                    "of the build dir named above)")


def test_unknown_target_is_one_clear_error():
    with pytest.raises(BuildError, match="unknown fuzz target.*FuzzRAPMetrics"):
        gotest.fuzz_proxy(("FuzzNope",))
