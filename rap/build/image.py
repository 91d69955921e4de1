"""Package the built kube-proxy as a container image (build/Dockerfile), and push it.

Uses the Docker Python SDK against whatever engine DOCKER_HOST (or the default
socket) points at. Without a reachable engine it says so once and how to point
at one; it never tries to start an engine itself. Not here: building the
kube-proxy binary it packages (rap.build.binaries).
"""

from __future__ import annotations

import os
from pathlib import Path

from rap import paths
from rap.build import BuildError
from rap.status import Status

DOCKERFILE = paths.BUILD_DIR / "Dockerfile"

NO_ENGINE_HINT = (
    "no Docker engine is reachable{where}. Start one, or point at one with "
    "DOCKER_HOST (e.g. DOCKER_HOST=unix:///run/docker.sock or "
    "DOCKER_HOST=ssh://user@host), then run again; or build without --image."
)
status = Status("image")


class ImageError(BuildError):
    """The image step failed; the message names the thing and the fix."""


def parse_ref(ref: str) -> tuple[str, str]:
    """Split NAME:TAG (NAME may hold a registry with a port); TAG is required."""
    name, sep, tag = ref.rpartition(":")
    if not sep or not name or not tag or "/" in tag:
        raise ImageError(f"--image {ref!r}: give NAME:TAG, e.g. "
                         "registry.example/rap/kube-proxy:v1.21.14-rap")
    return name, tag


def docker_client():
    """A connected docker client, or ImageError saying that none is reachable."""
    try:
        import docker  # the Docker SDK; only this feature needs it
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


def build_image(ref: str, binary: Path | None = None, push: bool = False) -> str:
    """Build build/Dockerfile around the RAP kube-proxy as ref; push it if asked."""
    name, tag = parse_ref(ref)
    binary = Path(binary) if binary else paths.build_out_dir() / "kube-proxy"
    if not binary.is_file():
        raise ImageError(f"{binary} not found: build kube-proxy first (invoke build-proxy)")
    client = docker_client()
    context = binary.parent
    status.say(f"building {ref} from {DOCKERFILE} (context {context})")
    # The Dockerfile lives outside the context; the SDK sends it along.
    image, logs = client.images.build(path=str(context), dockerfile=str(DOCKERFILE),
                                      tag=ref, rm=True, pull=True)
    for chunk in logs:
        if "stream" in chunk:
            print(chunk["stream"], end="", flush=True)
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
