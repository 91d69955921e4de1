"""Fast tests of rap.build.gotest.

Nothing here runs go build or downloads anything.
"""

from __future__ import annotations

from rap.build import gotest


def test_test_proxy_is_not_collected_by_pytest():
    assert gotest.test_proxy.__test__ is False
