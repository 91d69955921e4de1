"""The local image registry: distribution/distribution (the CNCF registry), built and run by the project.

``build_registry`` ``go install``s ``cmd/registry`` of one pinned release
through the Go module proxy into ``rap.paths.build_out_dir()/registry``,
reused while its stamp (release, module checksum, Go) is unchanged.
``LocalRegistry`` runs it on one given address (loopback or the local
cluster's bridge, never every interface) with its storage in one given
folder and its own config file there, waits until ``/v2/`` answers, and stops
it leaving no process. Not here: pushing to it (rap.build.push).

Why github.com/distribution/distribution/v3 v3.1.2: the module path the
project's releases moved to (github.com/docker/distribution stops at
v2.8.3+incompatible); the newest the Go module proxy serves here.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from rap import paths
from rap.build import BuildError, pinned, status

MODULE = "github.com/distribution/distribution/v3"
PACKAGE = f"{MODULE}/cmd/registry"
VERSION = "v3.1.2"
# The module's go.sum hash: a re-tagged release, or a proxy serving other bytes, fails here.
SUM = "h1:/Bv2YIqqSR00HiO49FT93hovy6r9IlrzwUDsJjCN5qg="
# The registry's OpenTelemetry SDK would otherwise try to send traces to a collector.
QUIET_ENV = {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "none"}


class RegistryError(BuildError):
    """The registry could not be built, started or stopped; the message names the fix."""


def registry_path() -> Path:
    return paths.build_out_dir() / "registry"


def build_registry(force: bool = False) -> Path:
    """``build_out_dir()/registry``, built unless its stamp is current (about a minute the first time)."""
    return pinned.install(pinned.Pin("registry", MODULE, VERSION, SUM, PACKAGE, "rap/build/registry.py",
                                     env={"GOFLAGS": "-mod=mod"}, error=RegistryError),
                          registry_path(), force, say=status.say)


def check_listen_address(host: str) -> str:
    """An IP address to listen on; every-interface addresses are refused."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise RegistryError(f"registry address {host!r} is not an IP address: give the loopback "
                            "(127.0.0.1) or the local cluster's bridge address") from None
    if addr.is_unspecified:
        raise RegistryError(f"registry address {host} would listen on every interface: give the loopback "
                            "(127.0.0.1) or the local cluster's bridge address")
    return str(addr)


def config_text(host: str, port: int, storage: Path) -> str:
    """The registry's config: one listener, filesystem storage, no debug or metrics listener."""
    bracketed = f"[{host}]" if ":" in host else host
    return yaml.safe_dump({
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": f"{bracketed}:{port}"},
    }, sort_keys=False)


def answers_v2(base_url: str, timeout: float = 2.0) -> bool:
    """Whether ``GET /v2/`` gives 200 there (the API's version check), straight, never through a proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{base_url}/v2/", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


class LocalRegistry:
    """One registry process on host:port with its storage (and config, and log) in ``folder``.

    Use as a context manager, or ``start()`` and ``stop()``. ``folder`` holds
    ``config.yml``, ``registry.log`` and ``storage/``; the storage survives a
    stop, so a second start serves the same images.
    """

    def __init__(self, host: str, port: int, folder: Path | str, binary: Path | str | None = None):
        self.host = check_listen_address(host)
        if not 0 < int(port) < 65536:
            raise RegistryError(f"registry port {port} is not in 1..65535")
        self.port = int(port)
        self.folder = Path(folder)
        self.binary = Path(binary) if binary else registry_path()
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        """host:port, as an image reference names the registry."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def log_path(self) -> Path:
        return self.folder / "registry.log"

    def start(self, timeout: float = 30.0) -> LocalRegistry:
        if not self.binary.is_file():
            raise RegistryError(f"{self.binary} not found: build it first (python3 -m rap.build.registry build)")
        if answers_v2(self.url, timeout=1.0):
            raise RegistryError(f"something already answers at {self.url}/v2/: stop it, or pick another port")
        storage = self.folder / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = self.folder / "config.yml"
        config.write_text(config_text(self.host, self.port, storage))
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([str(self.binary), "serve", str(config)], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **QUIET_ENV}, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not answers_v2(self.url, timeout=1.0):
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise RegistryError(f"the registry exited {code} before answering at {self.url}/v2/ "
                                    f"(is the port taken? is {self.host} an address of this machine?): "
                                    f"{self._log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RegistryError(f"the registry did not answer at {self.url}/v2/ within {timeout:.0f}s: "
                                    f"{self._log_tail()}")
            time.sleep(0.2)
        status.say(f"registry: serving {self.url} (storage {storage}, pid {self.proc.pid})")
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to its process group, SIGKILL after ``timeout``; waits until it is gone."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue

    def _log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """``python3 -m rap.build.registry build`` | ``serve [--addr A] [--port P] [--storage DIR]``."""
    import argparse
    import sys

    from rap.errors import UserError

    ap = argparse.ArgumentParser(prog="python3 -m rap.build.registry", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or find) the registry binary and print its path")
    b.add_argument("--force", action="store_true", help="rebuild even when its inputs are unchanged")
    s = sub.add_parser("serve", help="build if needed, then serve until interrupted")
    s.add_argument("--addr", default="127.0.0.1", help="the one address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    s.add_argument("--storage", default=str(paths.cache_dir() / "registry"),
                   help="folder for its config, log and storage (default <cache>/registry)")
    ns = ap.parse_args(argv)
    try:
        binary = build_registry(force=getattr(ns, "force", False))
        if ns.cmd == "build":
            print(binary)
            return 0
        # SIGTERM stops the registry too (it runs in its own session, so it would outlive us otherwise).
        signal.signal(signal.SIGTERM, _interrupt)
        with LocalRegistry(ns.addr, ns.port, ns.storage, binary) as reg:
            print(f"serving {reg.url}; push to {reg.address}/NAME:TAG; Ctrl-C stops it", flush=True)
            try:
                reg.proc.wait()
            except KeyboardInterrupt:
                pass
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
