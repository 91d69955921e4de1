"""Reuse of a built file by its stamp, and replacing it so that no half-built file is ever reused.

A stamp is a digest of everything a file was built from (the tool's version,
flags, sources), kept beside it as ``.NAME.stamp``. Same stamp, same file: the
build is skipped. Both the Go builds (rap.build.binaries) and the gcc build of
pause (rap.build.pause) go through here. Not here: what goes into a stamp;
each builder knows its own inputs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def stamp_path(out: Path) -> Path:
    """The stamp file of a built file: ``.NAME.stamp`` in the same folder."""
    return out.parent / f".{out.name}.stamp"


def digest(parts: list[str]) -> str:
    """One stamp from the inputs' texts, in order."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def is_current(out: Path, stamp: str) -> bool:
    """Whether ``out`` exists and was built from inputs with this stamp."""
    recorded = stamp_path(out)
    return out.is_file() and recorded.is_file() and recorded.read_text().strip() == stamp


@contextmanager
def replacing(out: Path, stamp: str) -> Iterator[Path]:
    """Yield a temporary path to build into; on success it becomes ``out``, stamped.

    The old stamp goes first, so a build that fails or is killed halfway leaves
    ``out`` unstamped and the next run builds again rather than trusting it.
    """
    tmp = out.with_name(out.name + ".tmp")
    stamp_path(out).unlink(missing_ok=True)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    stamp_path(out).write_text(stamp + "\n")
