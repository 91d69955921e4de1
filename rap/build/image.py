"""Package a built kube-proxy (RAP or stock) as the image build/Dockerfile describes, and push it.

Two ways to the same image, chosen once per build (``prepare``):

- a Docker engine reachable (DOCKER_HOST, or the default socket with the
  Docker Python SDK installed): build/Dockerfile is built by it, and pushed by it;
- otherwise, daemonless: the image is assembled here (rap.build.oci) from the
  project's own Debian base (rap.build.baseroot) plus build/iptables-wrapper,
  its links and the binary at /usr/local/bin/kube-proxy, written as an OCI
  layout under ``build_out_dir()/images/``, and pushed through the
  Distribution API (rap.build.push), e.g. to the local registry
  (rap.build.registry).

Everything that can fail before the Go builds is checked by ``prepare``: the
references, the engine or the registry, debootstrap. Not here: building the
binary (rap.build.binaries).
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

from rap import paths
from rap.build import BuildError, oci
from rap.build.baseroot import DEBOOTSTRAP_HINT, PACKAGES, SUITE, base_layer_path, build_base_layer
from rap.status import Status

DOCKERFILE = paths.BUILD_DIR / "Dockerfile"
WRAPPER = paths.BUILD_DIR / "iptables-wrapper"
# The commands build/Dockerfile points at the wrapper (a unit test keeps the two lists equal).
WRAPPED_COMMANDS = ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save",
                    "ip6tables-restore")
ENTRYPOINT = ["/usr/local/bin/kube-proxy"]

NO_ENGINE_HINT = (
    "no Docker engine is reachable{where}. Start one, or point at one with "
    "DOCKER_HOST (e.g. DOCKER_HOST=unix:///run/docker.sock or "
    "DOCKER_HOST=ssh://user@host), then run again; or unset DOCKER_HOST to build "
    "without an engine (push to a registry such as python3 -m rap.build.registry serve)."
)
DEFAULT_SOCKET = Path("/var/run/docker.sock")
status = Status("image")


class ImageError(BuildError):
    """The image step failed; the message names the thing and the fix."""


def parse_ref(ref: str) -> tuple[str, str]:
    """Split NAME:TAG (NAME may hold a registry with a port); TAG is required."""
    parsed = parse_image_ref(ref)
    return ref.rpartition(":")[0], parsed.tag


def parse_image_ref(ref: str, option: str = "--image") -> oci.ImageRef:
    try:
        return oci.parse_ref(ref, option)
    except oci.RefError as exc:
        raise ImageError(str(exc)) from None


def docker_client():
    """A connected docker client, or ImageError saying that none is reachable."""
    try:
        import docker  # the Docker SDK; only this path needs it
    except ImportError as exc:
        raise ImageError("the Docker Python SDK is not installed: pip install docker") from exc
    where = os.environ.get("DOCKER_HOST")
    where_txt = f" at DOCKER_HOST={where}" if where else " (DOCKER_HOST is not set, default socket)"
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # DockerException, connection or permission errors alike
        raise ImageError(NO_ENGINE_HINT.format(where=where_txt) + f" [{exc.__class__.__name__}]") from exc
    return client


def find_engine():
    """The docker client when an engine is meant to be used: DOCKER_HOST set (then it must answer), or the
    default socket answering; None for the daemonless path."""
    if os.environ.get("DOCKER_HOST"):
        return docker_client()
    if not DEFAULT_SOCKET.exists():
        return None
    try:
        return docker_client()
    except ImageError:
        return None


def _staged_context(binary: Path) -> Path:
    """A build context holding what build/Dockerfile copies: kube-proxy and iptables-wrapper."""
    context = paths.build_out_dir() / f".docker-context-{os.getpid()}"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir()
    shutil.copy2(binary, context / "kube-proxy")
    shutil.copy2(WRAPPER, context / "iptables-wrapper")
    return context


def build_image(ref: str, binary: Path | None = None, push: bool = False, client=None) -> str:
    """Build build/Dockerfile around the binary with a Docker engine as ref; push it if asked."""
    name, tag = parse_ref(ref)
    binary = _binary(binary)
    client = client or docker_client()
    context = _staged_context(binary)
    try:
        status.say(f"building {ref} from {DOCKERFILE} with the Docker engine")
        image, logs = client.images.build(path=str(context), dockerfile=str(DOCKERFILE),
                                          tag=ref, rm=True, pull=True)
        for chunk in logs:
            if "stream" in chunk:
                print(chunk["stream"], end="", flush=True)
    finally:
        shutil.rmtree(context, ignore_errors=True)
    status.say(f"built {ref} ({image.short_id})")
    if push:
        status.say(f"pushing {ref}")
        for line in client.images.push(name, tag=tag, stream=True, decode=True):
            if "error" in line:
                raise ImageError(f"push of {ref} failed: {line['error']}")
            if line.get("status") and not line.get("progressDetail"):
                print(f"  {line['status']}", flush=True)
        status.say(f"pushed {ref}")
    return ref


def _binary(binary: Path | None) -> Path:
    binary = Path(binary) if binary else paths.build_out_dir() / "kube-proxy"
    if not binary.is_file():
        raise ImageError(f"{binary} not found: build kube-proxy first (invoke build-proxy)")
    return binary


def architecture() -> str:
    """The OCI name of this machine's architecture (the binary was built for it)."""
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def wrapper_entries() -> list[oci.Entry]:
    return [oci.file_entry("usr/sbin/iptables-wrapper", WRAPPER, 0o755),
            *(oci.Entry(f"usr/sbin/{cmd}", link="iptables-wrapper") for cmd in WRAPPED_COMMANDS)]


def proxy_image(binary: Path, base_layer: Path) -> oci.Image:
    """The kube-proxy image: the Debian base, the wrapper and its links, the binary; Entrypoint kube-proxy."""
    base = oci.layer_from_gzip(base_layer.read_bytes(),
                               f"debootstrap --variant=minbase --include={','.join(PACKAGES)} {SUITE}")
    wrapper = oci.layer_from_tar(oci.entries_tar(wrapper_entries()), "COPY iptables-wrapper; ln -sf (6 commands)")
    proxy = oci.layer_from_tar(oci.entries_tar([oci.file_entry("usr/local/bin/kube-proxy", binary, 0o755)]),
                               "COPY kube-proxy /usr/local/bin/kube-proxy")
    return oci.build_image([base, wrapper, proxy], ENTRYPOINT, architecture=architecture())


def layout_dir(ref: oci.ImageRef) -> Path:
    return paths.build_out_dir() / "images" / f"{ref.repository.replace('/', '_')}_{ref.tag}"


def build_daemonless(ref: str, binary: Path | None = None, push: bool = False) -> str:
    """Assemble the image here, write its OCI layout, and push it if asked; returns ref."""
    parsed = parse_image_ref(ref)
    binary = _binary(binary)
    image = proxy_image(binary, build_base_layer())
    folder = oci.write_layout(image, layout_dir(parsed), parsed)
    size = sum(blob.size for blob in image.blobs)
    status.say(f"built {ref} without an engine: {image.manifest.digest} ({size / 1e6:.0f} MB) -> {folder}")
    if push:
        from rap.build.push import push as push_image

        push_image(image, parsed)
    return ref


@dataclass
class Packager:
    """How this build makes its images: with ``engine`` (a docker client), or daemonless when None."""

    engine: object | None = None

    def package(self, ref: str, binary: Path, push: bool) -> str:
        if self.engine is not None:
            return build_image(ref, binary, push=push, client=self.engine)
        return build_daemonless(ref, binary, push=push)


def prepare(refs: list[str], push: bool) -> Packager:
    """Check, before any build, that the images can be made (and pushed) the way this machine allows."""
    parsed = [parse_image_ref(ref) for ref in refs]
    engine = find_engine()
    if engine is not None:
        status.say("images: with the Docker engine")
        return Packager(engine)
    if not base_layer_path().is_file() and shutil.which("debootstrap") is None:
        raise ImageError(f"no Docker engine, and the daemonless images start from a Debian base made by "
                         f"debootstrap, which was not found: {DEBOOTSTRAP_HINT}")
    if push:
        from rap.build.push import RegistryClient

        for ref in parsed:
            RegistryClient.for_ref(ref).check()
    status.say("images: no Docker engine (DOCKER_HOST unset, no default socket): built here"
               + (", pushed through the registry API" if push else ""))
    return Packager(None)

