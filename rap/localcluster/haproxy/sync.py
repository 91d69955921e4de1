"""Endpoints -> server slots -> runtime-API commands.

Slot k (server ``s<k>``) serves one endpoint or sits in maintenance. An
endpoint keeps its slot for as long as it is in the Endpoints, so its running
connections and HAProxy's count of them stay where they are; a new endpoint
takes the lowest free slot. A slot is put in maintenance before it is given a
new address (`set server` changes new connections only; established ones run
to their end on the old address).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Iterable, Sequence

from rap.localcluster.haproxy.config import BACKEND, server_name

log = logging.getLogger("rap.haproxy")

Target = tuple[str, int]  # an endpoint: (IPv4 address, port)


@dataclass(frozen=True)
class Plan:
    slots: tuple[Target | None, ...]  # slot k is slots[k - 1]
    commands: tuple[str, ...]
    unplaced: tuple[Target, ...] = ()  # endpoints beyond the last slot; they get no traffic


def addr_command(slot: int, target: Target) -> str:
    return f"set server {BACKEND}/{server_name(slot)} addr {target[0]} port {target[1]}"


def state_command(slot: int, state: str) -> str:
    return f"set server {BACKEND}/{server_name(slot)} state {state}"


def _order(t: Target) -> tuple:
    return ipaddress.ip_address(t[0]), t[1]


def plan(current: Sequence[Target | None], wanted: Iterable[Target]) -> Plan:
    """The commands that turn slots ``current`` into serving exactly ``wanted``."""
    wanted = set(wanted)
    slots = list(current)
    commands: list[str] = []
    for k, target in enumerate(slots, start=1):
        if target is not None and target not in wanted:
            commands.append(state_command(k, "maint"))
            slots[k - 1] = None
    placed = {t for t in slots if t is not None}
    free = [k for k, t in enumerate(slots, start=1) if t is None]
    new = sorted(wanted - placed, key=_order)
    for k, target in zip(free, new):
        slots[k - 1] = target
        commands += [addr_command(k, target), state_command(k, "ready")]
    return Plan(tuple(slots), tuple(commands), tuple(new[len(free):]))


class Syncer:
    """Holds what HAProxy's slots serve and applies each new endpoint set to them."""

    def __init__(self, admin, slots: int) -> None:
        self.admin = admin
        self.slots: tuple[Target | None, ...] = (None,) * slots
        self._warned: tuple[Target, ...] = ()

    def apply(self, wanted: Iterable[Target]) -> Plan:
        p = plan(self.slots, wanted)
        for line in p.commands:
            self.admin.set(line)  # a refusal raises: the agent stops rather than serve an unknown state
        if p.commands:
            log.info("servers: %s", ", ".join(f"{ip}:{port}" for ip, port in sorted(
                (t for t in p.slots if t is not None), key=_order)) or "none")
        if p.unplaced and p.unplaced != self._warned:
            log.warning("%d endpoints beyond the %d server slots get no traffic: %s (raise --slots)",
                        len(p.unplaced), len(self.slots), ", ".join(f"{ip}:{port}" for ip, port in p.unplaced))
        self._warned = p.unplaced
        self.slots = p.slots
        return p
