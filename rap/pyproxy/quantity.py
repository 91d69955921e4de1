"""Kubernetes resource quantities ("123456789n", "250m", "1", "7220Ki", "256Mi", "1e3")."""

from __future__ import annotations

import re

_SUFFIX = {
    "": 1.0,
    "n": 1e-9, "u": 1e-6, "m": 1e-3,
    "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}
_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(?:[eE]([+-]?\d+))?(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?")


class QuantityError(ValueError):
    pass


def parse_quantity(value: str | int | float) -> float:
    """A quantity in base units: cores for CPU, bytes for memory."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = _QUANTITY.fullmatch(str(value).strip())
    if not m:
        raise QuantityError(f"not a Kubernetes quantity: {value!r}")
    number, exponent, suffix = m.groups()
    scale = 10.0 ** int(exponent) if exponent else 1.0
    return float(number) * scale * _SUFFIX[suffix or ""]


def cpu_cores(value: str | int | float) -> float:
    return parse_quantity(value)


def mem_bytes(value: str | int | float) -> float:
    return parse_quantity(value)
