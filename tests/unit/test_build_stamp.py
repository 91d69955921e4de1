"""Fast tests of rap.build.stamp: reuse by stamp, and no half-built file ever trusted."""

from __future__ import annotations

import pytest

from rap.build import stamp


def test_a_built_file_is_current_only_with_its_own_stamp(tmp_path):
    out = tmp_path / "kubelet"
    assert not stamp.is_current(out, "abc")  # nothing built yet
    with stamp.replacing(out, "abc") as tmp:
        tmp.write_text("binary")
    assert out.read_text() == "binary" and stamp.stamp_path(out) == tmp_path / ".kubelet.stamp"
    assert stamp.is_current(out, "abc")
    assert not stamp.is_current(out, "other inputs")


def test_a_stamp_without_its_file_is_not_current(tmp_path):
    out = tmp_path / "pause"
    stamp.stamp_path(out).write_text("abc\n")
    assert not stamp.is_current(out, "abc")


def test_a_failed_build_leaves_the_old_file_unstamped_and_no_temporary(tmp_path):
    out = tmp_path / "kube-scheduler"
    with stamp.replacing(out, "old") as tmp:
        tmp.write_text("old binary")
    with pytest.raises(RuntimeError, match="compiler died"):
        with stamp.replacing(out, "new") as tmp:
            tmp.write_text("half")
            raise RuntimeError("compiler died")
    assert not tmp.exists()
    assert out.read_text() == "old binary"
    # Neither the old nor the new stamp: the next run must build again.
    assert not stamp.is_current(out, "old") and not stamp.is_current(out, "new")


def test_digest_follows_every_input_and_their_order():
    assert stamp.digest(["go1.26", "pkg"]) == stamp.digest(["go1.26", "pkg"])
    assert stamp.digest(["go1.26", "pkg"]) != stamp.digest(["pkg", "go1.26"])
    assert stamp.digest(["go1.26", "pkg"]) != stamp.digest(["go1.25", "pkg"])
