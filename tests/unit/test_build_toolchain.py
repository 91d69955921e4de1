"""Fast tests of rap.build.toolchain: finding go, and saying how to install it.

Nothing here runs go build or downloads anything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rap.build import BuildError, toolchain


def test_missing_go_names_how_to_install(monkeypatch):
    monkeypatch.setattr(toolchain.shutil, "which", lambda name: None)
    monkeypatch.setattr(toolchain, "Path", lambda p: Path("/nonexistent/go"))
    with pytest.raises(BuildError, match=r"'go'\) was not found.*go\.dev/dl.*golang-go"):
        toolchain.find_go()
