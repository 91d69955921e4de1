"""Push an image (rap.build.oci) to a registry through the Distribution HTTP API, with no Docker engine.

The sequence, per the distribution spec: ``GET /v2/`` (the registry is there
and needs no login), then for every layer and the config a ``HEAD`` of the
blob (present: skipped), else ``POST /v2/NAME/blobs/uploads/`` and one
monolithic ``PUT`` of the bytes to the upload's Location with ``?digest=``;
last the manifest ``PUT`` by tag, whose answered digest must be ours. Plain
HTTP for a registry on localhost or a loopback or private IP (the local
registry, rap.build.registry), HTTPS otherwise; never through an HTTP proxy.
No credentials: a registry that asks for them gets a clear error. Not
here: making the image (rap.build.oci, rap.build.image).
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from rap.build import BuildError, status
from rap.build.oci import Blob, Image, ImageRef

SERVE_HINT = "start one with: python3 -m rap.build.registry serve --addr 127.0.0.1 --port 5000"


class PushError(BuildError):
    """The push failed; the message names the registry, the step and the fix."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class RegistryClient:
    """The few Distribution API calls a push needs, for one registry host."""

    def __init__(self, registry: str, plain_http: bool, timeout: float = 120.0):
        self.registry = registry
        self.base = f"{'http' if plain_http else 'https'}://{registry}"
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @classmethod
    def for_ref(cls, ref: ImageRef, timeout: float = 120.0) -> RegistryClient:
        if not ref.registry:
            raise PushError(f"--image {ref}: to push without a Docker engine, start NAME with the registry, "
                            "e.g. 127.0.0.1:5000/rap/kube-proxy:v1.21.14-rap")
        return cls(ref.registry, ref.plain_http, timeout)

    def request(self, method: str, url: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        """One call; an HTTP error answer is returned as is, a connection failure is a PushError."""
        full = url if url.startswith(("http://", "https://")) else self.base + url
        req = urllib.request.Request(full, data=body, method=method, headers=headers or {})
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
        except urllib.error.HTTPError as err:
            return Answer(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PushError(f"no registry answers at {self.base} ({reason}): {SERVE_HINT}, "
                            "or fix the registry part of --image") from None

    def check(self) -> None:
        """``GET /v2/``: there, speaking the API, and asking for no login."""
        answer = self.request("GET", "/v2/")
        if answer.status == 401:
            raise PushError(f"the registry at {self.base} asks for credentials, and this push has none: "
                            "push to the local registry (rap.build.registry), or use a Docker engine after docker login")
        if answer.status != 200:
            raise PushError(f"{self.base}/v2/ answered {answer.status}, not 200: is this a registry? {SERVE_HINT}")

    def has_blob(self, repository: str, blob: Blob) -> bool:
        answer = self.request("HEAD", f"/v2/{repository}/blobs/{blob.digest}")
        return answer.status == 200

    def put_blob(self, repository: str, blob: Blob) -> None:
        started = self.request("POST", f"/v2/{repository}/blobs/uploads/", b"", {"Content-Length": "0"})
        _expect(started, 202, f"starting the upload of {blob.digest} to {repository}")
        location = started.headers.get("location")
        if not location:
            raise PushError(f"{self.base} started an upload but gave no Location header")
        location = urllib.parse.urljoin(self.base + "/", location)
        sep = "&" if urllib.parse.urlsplit(location).query else "?"
        done = self.request("PUT", f"{location}{sep}digest={urllib.parse.quote(blob.digest)}", blob.data,
                            {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)})
        _expect(done, 201, f"uploading {blob.digest} ({blob.size} bytes) to {repository}")

    def put_manifest(self, repository: str, tag: str, manifest: Blob) -> str:
        answer = self.request("PUT", f"/v2/{repository}/manifests/{tag}", manifest.data,
                              {"Content-Type": manifest.media_type, "Content-Length": str(manifest.size)})
        _expect(answer, 201, f"putting the manifest of {repository}:{tag}")
        said = answer.headers.get("docker-content-digest")
        if said and said != manifest.digest:
            raise PushError(f"{self.base} stored the manifest of {repository}:{tag} as {said}, "
                            f"not {manifest.digest}: it changed the bytes")
        return manifest.digest


def _expect(answer: Answer, code: int, what: str) -> None:
    if answer.status != code:
        detail = answer.body[:300].decode(errors="replace").strip()
        raise PushError(f"{what}: the registry answered {answer.status}, not {code}: {detail}")


def push(image: Image, ref: ImageRef, client: RegistryClient | None = None) -> str:
    """Send the image's blobs (skipping those present) and its manifest; returns the manifest digest."""
    client = client or RegistryClient.for_ref(ref)
    client.check()
    for blob in image.blobs:
        if client.has_blob(ref.repository, blob):
            status.say(f"push {ref}: {blob.digest[:19]} already there ({blob.size / 1e6:.1f} MB)")
            continue
        client.put_blob(ref.repository, blob)
        status.say(f"push {ref}: {blob.digest[:19]} sent ({blob.size / 1e6:.1f} MB)")
    digest = client.put_manifest(ref.repository, ref.tag, image.manifest)
    status.say(f"pushed {ref} ({digest})")
    return digest
