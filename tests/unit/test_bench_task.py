"""`invoke bench` rejects bad options with one clear message, before touching any cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("args, message", [
    (["--target", "kubeconfig=/nonexistent"], "error: --target kubeconfig=/nonexistent: no such file"),
    (["--target", "gcp"], "error: --target: 'gcp' is neither 'local' nor 'kubeconfig=PATH'"),
    (["--scenarios", "geo,nope"], "error: --scenarios: unknown nope"),
    (["--reps", "two"], "error: --reps: 'two' is not a whole number"),
    (["--reps", "0"], "error: --reps: must be 1..20"),
    (["--duration", "-3"], "error: --duration: -3s outside"),
])
def test_bad_options(args, message):
    proc = subprocess.run([sys.executable, "-m", "invoke", "bench", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), lines


def test_help_documents_every_option():
    out = subprocess.run([sys.executable, "-m", "invoke", "--help", "bench"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60).stdout
    for opt in ("--quick", "--scenarios", "--reps", "--duration", "--out", "--target", "--image", "--rap-image"):
        assert opt in out
