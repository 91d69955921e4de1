"""``--rtt`` values: ``node-2=40ms``, ``node-1:node-3=0.08s``, ``*=10ms`` -> ``{(a, b): rtt_ms}``.

Pure parsing, shared by local-up and the benchmark's scenarios; what the RTTs
become on each node is rap.localcluster.netdelay.rules.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

from rap.localcluster.netdelay.errors import RttOptionError

MAX_RTT_MS = 10_000.0
RTT_FORMAT = ("NODE=RTT (RTT between node-1 and NODE), NODE:NODE=RTT, or *=RTT (every other pair); "
              "NODE is node-N or N, RTT a number with unit ms, us or s, e.g. node-2=40ms or node-1:node-3=0.08s")

_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(ms|us|µs|s)\s*")
_NODE = re.compile(r"\s*(?:node-)?([0-9]+)\s*")


def parse_duration_ms(text: str, option: str = "--rtt") -> float:
    """``"40ms"``, ``"0.04s"``, ``"500us"`` -> milliseconds. A unit is required."""
    m = _DURATION.fullmatch(text)
    if not m:
        raise RttOptionError(f"{option}: {text!r} is not a duration with a unit (e.g. 40ms, 0.04s, 500us)")
    value = float(m.group(1))
    unit = m.group(2)
    return value * {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3}[unit]


def _parse_node(text: str, item: str, option: str, nodes: int | None) -> int:
    m = _NODE.fullmatch(text)
    if not m or int(m.group(1)) < 1:
        raise RttOptionError(f"{option}: {item!r}: {text!r} is not a node; want {RTT_FORMAT}")
    i = int(m.group(1))
    if nodes is not None and i > nodes:
        raise RttOptionError(f"{option}: {item!r}: node-{i} does not exist in a {nodes}-node cluster")
    return i


def parse_rtt(values: str | Iterable[str] | None, nodes: int | None = None,
              option: str = "--rtt") -> dict[tuple[int, int], float]:
    """Parse ``--rtt`` values into ``{(a, b): rtt_ms}`` with ``a < b``.

    Each value may hold several comma-separated items:

    - ``node-2=40ms``: node-1 <-> node-2 (node-1 is where clients usually are);
    - ``node-1:node-3=80ms``: that pair;
    - ``*=10ms``: every pair not named otherwise (needs ``nodes``).

    A pair given twice with different values, a node paired with itself, a node
    beyond ``nodes`` and an RTT outside 0..10 s are errors. Zero RTT means "no
    delay" and is kept, so it can override ``*``.
    """
    if values is None:
        return {}
    if isinstance(values, str):
        values = [values]
    out: dict[tuple[int, int], float] = {}
    default: float | None = None
    for value in values:
        for item in value.split(","):
            if not item.strip():
                continue
            if "=" not in item:
                raise RttOptionError(f"{option}: {item.strip()!r} has no '='; want {RTT_FORMAT}")
            lhs, rhs = item.split("=", 1)
            ms = parse_duration_ms(rhs, option=f"{option} {item.strip()!r}")
            if not 0 <= ms <= MAX_RTT_MS:
                raise RttOptionError(f"{option}: {item.strip()!r}: RTT must be between 0 and {MAX_RTT_MS:g} ms")
            if lhs.strip() == "*":
                if default is not None and default != ms:
                    raise RttOptionError(f"{option}: '*' given twice ({default:g}ms and {ms:g}ms)")
                default = ms
                continue
            parts = lhs.split(":")
            if len(parts) == 1:
                a, b = 1, _parse_node(parts[0], item.strip(), option, nodes)
            elif len(parts) == 2:
                a = _parse_node(parts[0], item.strip(), option, nodes)
                b = _parse_node(parts[1], item.strip(), option, nodes)
            else:
                raise RttOptionError(f"{option}: {item.strip()!r} names more than two nodes; want {RTT_FORMAT}")
            if a == b:
                raise RttOptionError(f"{option}: {item.strip()!r} pairs node-{a} with itself"
                                     + ("; NODE=RTT alone means node-1:NODE" if len(parts) == 1 else ""))
            key = (min(a, b), max(a, b))
            if key in out and out[key] != ms:
                raise RttOptionError(f"{option}: node-{key[0]}:node-{key[1]} given twice "
                                     f"({out[key]:g}ms and {ms:g}ms)")
            out[key] = ms
    if default is not None:
        if nodes is None:
            raise RttOptionError(f"{option}: '*' needs the number of nodes")
        for a in range(1, nodes + 1):
            for b in range(a + 1, nodes + 1):
                out.setdefault((a, b), default)
    return out


def format_rtt(rtts: Mapping[tuple[int, int], float]) -> str:
    """``{(1, 2): 40.0}`` -> ``"node-1:node-2=40ms"`` (the inverse of parse_rtt, for status lines)."""
    return ",".join(f"node-{a}:node-{b}={ms:g}ms" for (a, b), ms in sorted(rtts.items()))
