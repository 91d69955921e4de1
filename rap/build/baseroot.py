"""The images' base root filesystem, made by the project from Debian packages, once, and cached as a tarball.

What build/Dockerfile's ``FROM debian:bookworm-slim`` plus its ``apt-get
install`` give, made without a Docker engine and without any ready-made
image: Debian's ``debootstrap --variant=minbase`` of bookworm with iptables,
conntrack, ipset, kmod and ca-certificates included. debootstrap rather than
``apt-get download`` + ``dpkg-deb -x``: it resolves the dependencies and runs
the packages' maintainer scripts in a chroot, so the update-alternatives links
that the iptables wrapper switches (iptables -> iptables-nft) exist exactly as
in a Debian image. It needs root (it chroots), which every build here has.

The tree is then written as one gzip'ed tar layer (``layer_tar``): entries
sorted, every mtime fixed, owners numeric, what a container gets from its
runtime (``/dev``, ``/proc``, ``/sys`` contents, ``/etc/resolv.conf``,
``/etc/hostname``, ``/etc/hosts``) and apt's download caches left out, and
documentation trimmed as the slim image does (copyright files kept). The
layer lands in ``<cache>/images/`` and is reused while its stamp (suite,
packages, mirror, debootstrap's version, this recipe) is unchanged; the
packages' versions are those the mirror served on the day it was made
(``--force`` makes it again). Not here: the files an image adds on top, or
the image itself (rap.build.oci, rap.build.image).
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from rap import paths
from rap.build import BuildError, stamp, status

SUITE = "bookworm"
VARIANT = "minbase"
# build/Dockerfile's apt-get install line, and why: see there.
PACKAGES = ("iptables", "conntrack", "ipset", "kmod", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
RECIPE = "3"  # bump when what goes into the tarball changes
# Every entry's mtime (2024-01-01T00:00:00Z): the same tree gives the same bytes.
FIXED_MTIME = 1704067200
# Paths (relative, no leading ./) whose contents a runtime supplies or nothing needs.
EMPTIED_DIRS = ("dev", "proc", "sys", "run", "tmp", "var/cache/apt", "var/lib/apt/lists", "var/log",
                "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian")
DROPPED_FILES = ("etc/resolv.conf", "etc/hostname", "etc/hosts", "var/cache/ldconfig/aux-cache")
DEBOOTSTRAP_HINT = "apt-get install debootstrap (scripts/install.sh installs it)"


def mirror() -> str:
    """The Debian mirror: ``$RAP_DEBIAN_MIRROR``, else deb.debian.org."""
    return os.environ.get("RAP_DEBIAN_MIRROR", DEFAULT_MIRROR)


def base_layer_path() -> Path:
    return paths.cache_dir() / "images" / f"base-debian-{SUITE}.tar.gz"


def keep(rel: str) -> bool:
    """Whether the tree's path ``rel`` (relative, no ./) goes into the layer."""
    if rel in DROPPED_FILES:
        return False
    for folder in EMPTIED_DIRS:
        if rel.startswith(folder + "/"):
            return False
    if rel.startswith("usr/share/doc/"):  # the slim image's rule: only the copyright files stay
        parts = rel.split("/")  # usr/share/doc/PKG, usr/share/doc/PKG/copyright
        return len(parts) == 4 or (len(parts) == 5 and parts[4] == "copyright")
    return True


def _normalized(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = FIXED_MTIME
    info.uname = info.gname = ""
    return info


def layer_tar(tree: Path, out) -> None:
    """Write ``tree`` as an uncompressed tar to the binary file ``out``: sorted, fixed mtimes, numeric owners."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(tree):
            dirnames.sort()
            base = Path(dirpath)
            for name in sorted([*dirnames, *filenames]):
                full = base / name
                rel = full.relative_to(tree).as_posix()
                if not keep(rel):
                    continue
                info = tar.gettarinfo(str(full), arcname=rel)
                if info is None:  # a socket: nothing to carry
                    continue
                info = _normalized(info)
                if info.isreg():
                    with full.open("rb") as fh:
                        tar.addfile(info, fh)
                else:
                    tar.addfile(info)
            # os.walk descends into symlinked folders only if asked; it is not.


def _mounts_under(folder: Path) -> list[str]:
    prefix = str(folder.resolve()) + "/"
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point.startswith(prefix):
            found.append(point)
    return found


def _remove_tree(folder: Path) -> None:
    """rm -r of a chroot, after unmounting whatever debootstrap left mounted inside it (deepest first).

    Never removes through a mount: a /dev or /proc still bound in would take
    the host's files with it.
    """
    if not folder.exists():
        return
    for point in sorted(_mounts_under(folder), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    left = _mounts_under(folder)
    if left:
        raise BuildError(f"could not unmount {left} inside {folder}: unmount them by hand, then remove {folder}")
    shutil.rmtree(folder)


def _debootstrap_version(debootstrap: str) -> str:
    out = subprocess.run([debootstrap, "--version"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def build_base_layer(force: bool = False) -> Path:
    """``<cache>/images/base-debian-bookworm.tar.gz``, made by debootstrap unless its stamp is current."""
    out = base_layer_path()
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        if out.is_file() and not force:  # a cached layer needs no debootstrap; its stamp cannot be checked
            return out
        raise BuildError(f"debootstrap was not found, and the images' base is made by it: {DEBOOTSTRAP_HINT}")
    inputs = stamp.digest([SUITE, VARIANT, *PACKAGES, mirror(), _debootstrap_version(debootstrap), RECIPE])
    if not force and stamp.is_current(out, inputs):
        status.say(f"base root filesystem: up to date ({out})")
        return out
    if os.geteuid() != 0:
        raise BuildError("making the images' base root filesystem needs root (debootstrap chroots): run as root")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = paths.cache_dir() / "tmp" / f"rootfs-{os.getpid()}"
    _remove_tree(work)
    work.mkdir(parents=True)
    target = work / "root"
    started = time.monotonic()
    cmd = [debootstrap, f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}", SUITE, str(target), mirror()]
    status.say(f"base root filesystem: {' '.join(cmd)}")
    try:
        with (work / "debootstrap.log").open("w") as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            tail = (work / "debootstrap.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise BuildError(f"debootstrap failed (exit {proc.returncode}): {' | '.join(tail)}; check that "
                             f"{mirror()} answers (set RAP_DEBIAN_MIRROR to another Debian mirror)")
        with stamp.replacing(out, inputs) as tmp:
            with tmp.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
                layer_tar(target, gz)
    finally:
        _remove_tree(work)
    status.say(f"base root filesystem: made in {time.monotonic() - started:.0f}s -> {out} "
               f"({out.stat().st_size / 1e6:.0f} MB)")
    return out
