"""What a test left behind under its own folder: live processes and mounts that name it."""

from __future__ import annotations

from pathlib import Path


def processes_naming(marker: str) -> list[str]:
    """Every live process whose command line names ``marker`` (our folder), as 'pid cmdline'."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:  # gone meanwhile
                continue
            if marker in cmdline:
                found.append(f"{entry.name} {cmdline}")
    return found


def mounts_naming(marker: str) -> list[str]:
    """Every line of /proc/self/mounts that names ``marker``."""
    return [m for m in Path("/proc/self/mounts").read_text().splitlines() if marker in m]
