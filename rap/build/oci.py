"""OCI images as bytes: references, layers, the config, the manifest, and the on-disk image layout.

Pure: nothing here runs a process or opens a connection. A layer is a
gzip'ed tar (gzip with no name and mtime 0, so the same tar gives the same
digest); its *diff id* is the sha256 of the tar, its *digest* that of the
gzip'ed bytes, as the OCI image spec says. The config carries Entrypoint and
Env and the diff ids; the manifest names the config and the layers by digest.
Media types are OCI's (containerd, the registry and Docker since 17.x take
them). Not here: the files of a particular image (rap.build.image), the base
root filesystem (rap.build.baseroot), sending them (rap.build.push).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import ipaddress
import json
import re
import tarfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from rap.build import BuildError

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The config's and the added files' time (2024-01-01T00:00:00Z), as in rap.build.baseroot.
FIXED_MTIME = 1704067200
FIXED_CREATED = "2024-01-01T00:00:00Z"

# The distribution spec's grammar of a repository name and a tag.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
REF_EXAMPLE = "127.0.0.1:5000/rap/kube-proxy:v1.21.14-rap"


class RefError(BuildError):
    """A malformed image reference; the message shows a good one."""


@dataclass(frozen=True)
class ImageRef:
    """REGISTRY/REPOSITORY:TAG; ``registry`` is None when the name starts with no host (Docker Hub's)."""

    registry: str | None
    repository: str
    tag: str

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}" if self.registry else f"{self.repository}:{self.tag}"

    @property
    def plain_http(self) -> bool:
        """Whether the registry is spoken to without TLS: localhost, or an IP of loopback or a private network."""
        host = urllib.parse.urlsplit(f"//{self.registry or ''}").hostname or ""
        if host == "localhost":
            return True
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        return addr.is_loopback or addr.is_private or addr.is_link_local


def parse_ref(ref: str, option: str = "--image") -> ImageRef:
    """NAME:TAG, where NAME may start with a registry host (with a port); TAG is required, digests are not taken."""
    name, sep, tag = ref.rpartition(":")
    if not sep or not name or not tag or "/" in tag:
        raise RefError(f"{option} {ref!r}: give NAME:TAG, e.g. {REF_EXAMPLE}")
    first, slash, rest = name.partition("/")
    # Docker's rule: the first component is a registry when it has a dot or a port, or is localhost.
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = None, name
    if not _REPOSITORY.fullmatch(repository):
        raise RefError(f"{option} {ref!r}: repository {repository!r} must be lowercase letters, digits and "
                       f"separators (. _ - /), e.g. {REF_EXAMPLE}")
    if not _TAG.fullmatch(tag):
        raise RefError(f"{option} {ref!r}: tag {tag!r} must be up to 128 letters, digits, _ . -, e.g. {REF_EXAMPLE}")
    return ImageRef(registry, repository, tag)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj) -> bytes:
    """The bytes that are hashed and sent: sorted keys, no spaces."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Blob:
    """Bytes with their media type; addressed by their sha256."""

    media_type: str
    data: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Layer:
    """One gzip'ed tar layer and the sha256 of its uncompressed tar (the config's diff id)."""

    blob: Blob
    diff_id: str
    created_by: str


def layer_from_gzip(gz: bytes, created_by: str) -> Layer:
    """A layer from an existing tar.gz (e.g. the cached base); the diff id is read through the gzip."""
    hasher = hashlib.sha256()
    with gzip.GzipFile(fileobj=io.BytesIO(gz)) as tar:
        for chunk in iter(lambda: tar.read(1 << 20), b""):
            hasher.update(chunk)
    return Layer(Blob(LAYER_TYPE, gz), "sha256:" + hasher.hexdigest(), created_by)


def layer_from_tar(tar: bytes, created_by: str) -> Layer:
    return Layer(Blob(LAYER_TYPE, gzip.compress(tar, compresslevel=6, mtime=0)), sha256_digest(tar), created_by)


@dataclass(frozen=True)
class Entry:
    """One path an added layer holds: a file (``data``), a symlink (``link``), or a folder (neither)."""

    path: str
    mode: int = 0o755
    data: bytes | None = None
    link: str | None = None


def file_entry(path: str, source: Path | str, mode: int = 0o755) -> Entry:
    return Entry(path, mode, data=Path(source).read_bytes())


def entries_tar(entries: list[Entry]) -> bytes:
    """A tar of the entries and their parent folders: sorted by path, root-owned, fixed mtimes."""
    wanted = {e.path.strip("/"): e for e in entries}
    for path in list(wanted):
        parts = path.split("/")
        for i in range(1, len(parts)):
            wanted.setdefault("/".join(parts[:i]), Entry("/".join(parts[:i])))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(wanted):
            entry = wanted[path]
            info = tarfile.TarInfo(path)
            info.mtime, info.mode, info.uid, info.gid = FIXED_MTIME, entry.mode, 0, 0
            if entry.link is not None:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.link, 0o777
                tar.addfile(info)
            elif entry.data is not None:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
    return buf.getvalue()


@dataclass(frozen=True)
class Image:
    """The layers (base first), the config and the manifest of one image."""

    layers: tuple[Layer, ...]
    config: Blob
    manifest: Blob

    @property
    def blobs(self) -> list[Blob]:
        """What a registry must hold before the manifest can be put: layers, then the config."""
        return [*(layer.blob for layer in self.layers), self.config]


def build_image(layers: list[Layer], entrypoint: list[str], env: list[str] | None = None,
                architecture: str = "amd64") -> Image:
    """The config and manifest around the layers."""
    config = {
        "architecture": architecture,
        "os": "linux",
        "created": FIXED_CREATED,
        "config": {"Entrypoint": list(entrypoint), "Env": list(env or [DEFAULT_PATH])},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": FIXED_CREATED, "created_by": layer.created_by} for layer in layers],
    }
    config_blob = Blob(CONFIG_TYPE, canonical_json(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": config_blob.descriptor(),
        "layers": [layer.blob.descriptor() for layer in layers],
    }
    return Image(tuple(layers), config_blob, Blob(MANIFEST_TYPE, canonical_json(manifest)))


def write_layout(image: Image, folder: Path, ref: ImageRef) -> Path:
    """The image as an OCI image layout folder (oci-layout, index.json, blobs/sha256/...)."""
    blobs = folder / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for blob in [*image.blobs, image.manifest]:
        target = blobs / blob.digest.split(":", 1)[1]
        if not target.is_file() or target.stat().st_size != blob.size:
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(blob.data)
            tmp.replace(target)
    (folder / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{**image.manifest.descriptor(),
                            "annotations": {"org.opencontainers.image.ref.name": str(ref)}}]}
    (folder / "index.json").write_bytes(canonical_json(index))
    return folder
