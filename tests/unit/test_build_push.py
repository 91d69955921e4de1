"""Fast tests of rap.build.push's request shapes, against a small fake registry of the test's own on 127.0.0.1.

Only the order and shape of the calls is checked here; the real registry
(distribution v3) is exercised by tests/e2e/test_image_push.py.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rap.build import oci, push


class FakeRegistry(BaseHTTPRequestHandler):
    calls: list = []
    blobs: dict = {}
    v2_status = 200

    def log_message(self, *args):
        pass

    def _answer(self, code, headers=None, body=b""):
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self):
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_GET(self):
        self.calls.append(("GET", self.path, None))
        self._answer(self.v2_status if self.path == "/v2/" else 404)

    def do_HEAD(self):
        self.calls.append(("HEAD", self.path, None))
        digest = self.path.rsplit("/", 1)[1]
        self._answer(200 if digest in self.blobs else 404)

    def do_POST(self):
        self.calls.append(("POST", self.path, self._body()))
        self._answer(202, {"Location": "/v2/rap/kp/blobs/uploads/u1?_state=s"})

    def do_PUT(self):
        body = self._body()
        self.calls.append(("PUT", self.path, self.headers.get("Content-Type")))
        if "/blobs/uploads/" in self.path:
            digest = self.path.split("digest=")[1].replace("%3A", ":")
            self.blobs[digest] = body
            self._answer(201)
        else:
            self._answer(201, {"Docker-Content-Digest": oci.sha256_digest(body)})


@pytest.fixture
def registry():
    FakeRegistry.calls, FakeRegistry.blobs, FakeRegistry.v2_status = [], {}, 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _image():
    layer = oci.layer_from_tar(oci.entries_tar([oci.Entry("a", data=b"a")]), "a")
    return oci.build_image([layer], ["/a"])


def test_push_uploads_missing_blobs_then_puts_the_manifest(registry):
    image = _image()
    ref = oci.parse_ref(f"{registry}/rap/kp:v1")
    digest = push.push(image, ref)
    assert digest == image.manifest.digest
    layer, config = image.blobs
    state = "/v2/rap/kp/blobs/uploads/u1?_state=s&digest="
    assert FakeRegistry.calls == [
        ("GET", "/v2/", None),
        ("HEAD", f"/v2/rap/kp/blobs/{layer.digest}", None),
        ("POST", "/v2/rap/kp/blobs/uploads/", b""),
        ("PUT", state + layer.digest.replace(":", "%3A"), "application/octet-stream"),
        ("HEAD", f"/v2/rap/kp/blobs/{config.digest}", None),
        ("POST", "/v2/rap/kp/blobs/uploads/", b""),
        ("PUT", state + config.digest.replace(":", "%3A"), "application/octet-stream"),
        ("PUT", "/v2/rap/kp/manifests/v1", oci.MANIFEST_TYPE),
    ]
    assert FakeRegistry.blobs == {layer.digest: layer.data, config.digest: config.data}


def test_push_skips_blobs_the_registry_has(registry):
    image = _image()
    FakeRegistry.blobs = {blob.digest: blob.data for blob in image.blobs}
    push.push(image, oci.parse_ref(f"{registry}/rap/kp:v1"))
    assert [c[0] for c in FakeRegistry.calls] == ["GET", "HEAD", "HEAD", "PUT"]


def test_a_registry_asking_for_a_login_is_one_clear_error(registry):
    FakeRegistry.v2_status = 401
    with pytest.raises(push.PushError, match="asks for credentials"):
        push.push(_image(), oci.parse_ref(f"{registry}/rap/kp:v1"))
    assert [c[0] for c in FakeRegistry.calls] == ["GET"]


def test_no_registry_names_the_address_and_how_to_start_one():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        with pytest.raises(push.PushError, match=rf"no registry answers at http://127.0.0.1:{port} .*"
                                                 r"rap.build.registry serve"):
            push.RegistryClient.for_ref(oci.parse_ref(f"127.0.0.1:{port}/rap/kp:v1")).check()


def test_a_ref_without_a_registry_cannot_be_pushed_here():
    with pytest.raises(push.PushError, match="start NAME with the registry"):
        push.RegistryClient.for_ref(oci.parse_ref("rap/kp:v1"))
