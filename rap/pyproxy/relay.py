"""The userspace proxier: one listener per service port, each connection relayed to a policy's pick.

Everything here runs on one asyncio loop, so the policy (which is not
thread-safe) is only ever called from that loop; the monitor thread touches it
only through ``update_snapshot``, a single reference swap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from rap.policies import BalancerError, Policy
from rap.pyproxy.iptables import Iptables, Redirect
from rap.pyproxy.services import PortSpec

log = logging.getLogger("rap.pyproxy")

# kube-proxy's userspace proxier (proxysocket.go, EndpointDialTimeouts): one
# try per timeout, each retry asking for another endpoint with affinity reset.
DIAL_TIMEOUTS_S = (0.25, 0.5, 1.0, 2.0)
CHUNK = 64 * 1024


@dataclass
class _Port:
    spec: PortSpec
    server: asyncio.base_events.Server
    proxy_port: int


class Proxier:
    def __init__(
        self,
        policy: Policy,
        bind_address: str,
        rules: Iptables | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.bind_address = bind_address
        self.rules = rules
        self.clock = clock  # must be the clock of the monitor's snapshot ``at`` times
        self._ports: dict[str, _Port] = {}
        # (service, endpoint or "") whose last try failed: errors are logged once per change, not per connection.
        self._failing: set[tuple[str, str]] = set()

    # -- service handling (the watcher calls sync with the whole desired state) --

    async def sync(self, specs: Iterable[PortSpec]) -> None:
        wanted = {s.name: s for s in specs}
        for name in [n for n in self._ports if n not in wanted]:
            await self._remove(name, why="removed")
        for name, spec in wanted.items():
            port = self._ports.get(name)
            if port is None:
                await self._add(spec)
            port = self._ports[name]
            port.spec = spec
            self.policy.new_service(name, spec.affinity, spec.ttl_s)  # updates affinity in place
            self.policy.set_endpoints(name, list(spec.endpoints))
        self._apply_rules()

    def proxy_port(self, name: str) -> int:
        return self._ports[name].proxy_port

    def services(self) -> list[str]:
        return sorted(self._ports)

    async def _add(self, spec: PortSpec) -> None:
        server = await asyncio.start_server(
            lambda r, w: self._accept(spec.name, r, w), self.bind_address, 0, reuse_address=True
        )
        port = server.sockets[0].getsockname()[1]
        self._ports[spec.name] = _Port(spec, server, port)
        log.info("service %s added: %s:%d -> %s:%d", spec.name, spec.cluster_ip, spec.port, self.bind_address, port)

    async def _remove(self, name: str, why: str) -> None:
        port = self._ports.pop(name)
        self._apply_rules()  # stop redirecting before the listener goes away
        port.server.close()
        self.policy.delete_service(name)
        log.info("service %s %s (was %s:%d)", name, why, port.spec.cluster_ip, port.spec.port)

    def _apply_rules(self) -> None:
        if self.rules is None:
            return
        redirects = [Redirect(n, p.spec.cluster_ip, p.spec.port, p.proxy_port) for n, p in self._ports.items()]
        self.rules.apply(redirects, self.bind_address)

    async def close(self) -> None:
        """Stop redirecting and listening; open connections are cut (the process is ending)."""
        for name in list(self._ports):
            await self._remove(name, why="closed")
        if self.rules is not None:
            self.rules.cleanup()
        relays = [t for t in asyncio.all_tasks() if getattr(t, "_rap_relay", False)]
        for task in relays:
            task.cancel()
        if relays:  # let them close their sockets before the loop ends
            await asyncio.wait(relays, timeout=2)

    # -- the relay --

    async def _accept(self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        task._rap_relay = True  # type: ignore[attr-defined]  # so close() can cut it
        peer = writer.get_extra_info("peername")
        client_ip = peer[0] if peer else ""
        src = f"{peer[0]}:{peer[1]}" if peer else None
        try:
            upstream = await self._connect(name, client_ip, src)
            if upstream is None:
                return
            endpoint, up_reader, up_writer = upstream
            try:
                await asyncio.gather(_pipe(reader, up_writer, writer), _pipe(up_reader, writer, up_writer))
            finally:
                self.policy.release(name, endpoint)
                up_writer.close()
        except asyncio.CancelledError:
            # close() cuts open connections. Ending quietly is right for this leaf task, and
            # Python 3.11's start_server callback would log a re-raised CancelledError as a crash.
            pass
        finally:
            writer.close()

    async def _connect(self, name: str, client_ip: str, src: str | None):
        """kube-proxy's TryConnectEndpoints: each failed dial asks again with affinity reset.

        The policy counted every endpoint it returned as a connection. A retry
        from the same ``src`` tells it that the previous dial failed (it takes
        that count back, and RAP ejects the endpoint for a while), so only the
        last failure, which no retry follows, is released here.
        """
        for attempt, timeout in enumerate(DIAL_TIMEOUTS_S):
            try:
                endpoint = self.policy.next_endpoint(name, client_ip, self.clock(), affinity_reset=attempt > 0,
                                                     src=src)
            except BalancerError as e:
                self._note_failure(name, "", e)
                return None
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(endpoint.ip, endpoint.port), timeout)
            except (OSError, asyncio.TimeoutError) as e:
                if src is None or attempt == len(DIAL_TIMEOUTS_S) - 1:
                    self.policy.release(name, endpoint)
                self._note_failure(name, endpoint.addr, e)
                continue
            self._note_success(name, endpoint.addr)
            return endpoint, r, w
        log.error("service %s: no endpoint answered after %d tries; connection from %s closed",
                  name, len(DIAL_TIMEOUTS_S), client_ip)
        return None

    def _note_failure(self, name: str, addr: str, err: BaseException) -> None:
        if (name, addr) not in self._failing:
            self._failing.add((name, addr))
            where = f"endpoint {addr}" if addr else "service"
            log.warning("service %s: %s failing: %s", name, where, str(err) or type(err).__name__)

    def _note_success(self, name: str, addr: str) -> None:
        for key in ((name, addr), (name, "")):
            if key in self._failing:
                self._failing.discard(key)
                log.info("service %s: %s answering again", name, f"endpoint {key[1]}" if key[1] else "service")


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, src_writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close ``dst`` (as kube-proxy's copyBytes); on error cut both sides."""
    try:
        while data := await src.read(CHUNK):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except (OSError, RuntimeError):
        dst.close()
        src_writer.close()
