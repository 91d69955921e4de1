"""Fast tests of rap.build.binaries: the version flags of every binary.

Nothing here runs go build or downloads anything.
"""

from __future__ import annotations

from rap.build import binaries


def test_version_ldflags_name_both_version_packages():
    flags = binaries.version_ldflags("v1.21.14-rap")
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X '{pkg}.gitVersion=v1.21.14-rap'" in flags
        assert f"-X '{pkg}.gitMajor=1'" in flags
        assert f"-X '{pkg}.gitMinor=21'" in flags
