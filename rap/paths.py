"""Where the project keeps its files, its cache and its build output.

The cache lives outside the checkout (``$RAP_CACHE``, default ``~/.cache/rap``)
so that a fresh clone on the same machine, as CI makes, reuses downloads and
builds instead of fetching Kubernetes again.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VECTORS_DIR = REPO / "tests" / "vectors"
RAP_PATCH_DIR = REPO / "rap_patch"
BUILD_DIR = REPO / "build"


def cache_dir() -> Path:
    """The project's cache root, created on first use."""
    root = Path(os.environ.get("RAP_CACHE", Path.home() / ".cache" / "rap"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def build_out_dir() -> Path:
    """Where built binaries land (kube-proxy, kube-apiserver)."""
    out = Path(os.environ.get("RAP_BUILD_OUT", BUILD_DIR / "out"))
    out.mkdir(parents=True, exist_ok=True)
    return out
