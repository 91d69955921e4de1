"""Kubernetes resource quantities ("123456789n", "250m", "1", "7220Ki", "256Mi", "1e3"), read and written.

The one parser and formatter of the project, with apimachinery's
``resource.Quantity`` semantics (what kube-apiserver, metrics-server and rap.go
read and print): ``parse_quantity`` reads any quantity into base units (cores
for CPU, bytes for memory); ``format_quantity`` prints the canonical form of a
value, the way ``Quantity.String()`` does for DecimalSI or BinarySI.

Not a units library: there are no CPU or memory types here, only numbers in
base units and the text Kubernetes stores for them.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction

_DECIMAL_EXP = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {exp: suffix for suffix, exp in _DECIMAL_EXP.items()}
_BINARY_SUFFIXES = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
# resource.Quantity's grammar: a signed number, then one of a binary suffix, a
# decimal suffix or a decimal exponent ("1e3"; "1E" alone is one exa).
# ASCII digits only: Kubernetes reads "0"-"9", not every Unicode digit that \d (and Decimal) would.
_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(?:(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE]([+-]?\d+))?", re.ASCII)
_NANO = 10**9
# Quantity caps a value at 2^63-1 and rounds it up to 1n, so no exponent beyond this means anything; a
# larger one is refused rather than computed (10**(10**9) would take the process down).
MAX_EXPONENT = 1000

Number = int | float | Fraction | Decimal


class QuantityError(ValueError):
    """Text that is not a Kubernetes quantity; the message quotes it."""


def parse_exact(value: str | Number) -> Fraction:
    """A quantity in base units, exactly ("250m" -> 1/4, "1Ki" -> 1024)."""
    if isinstance(value, (int, float, Fraction, Decimal)) and not isinstance(value, bool):
        return _exact(value)
    m = _QUANTITY.fullmatch(str(value).strip())
    if not m:
        raise QuantityError(f"not a Kubernetes quantity: {_shown(value)}")
    number, suffix, exponent = m.groups()
    amount = Fraction(Decimal(number))
    if suffix in _BINARY_SUFFIXES:
        return amount * 1024 ** _BINARY_SUFFIXES.index(suffix)
    if exponent and (len(exponent.lstrip("+-0")) > len(str(MAX_EXPONENT)) or abs(int(exponent)) > MAX_EXPONENT):
        raise QuantityError(f"Kubernetes quantity {_shown(value)}: exponent beyond ±{MAX_EXPONENT}")
    return amount * Fraction(10) ** (int(exponent) if exponent else _DECIMAL_EXP[suffix or ""])


def parse_quantity(value: str | Number) -> float:
    """A quantity in base units as a float: cores for CPU, bytes for memory."""
    exact = parse_exact(value)
    try:
        return float(exact)
    except OverflowError:
        raise QuantityError(f"Kubernetes quantity {_shown(value)}: too large for a float") from None


def format_quantity(value: Number, binary: bool = False) -> str:
    """The canonical text of ``value`` (base units), as ``resource.Quantity.String()`` prints it.

    Decimal (DecimalSI): the largest SI suffix that keeps the number whole
    ("1500m", "123n", "2k"). Binary (BinarySI, for bytes): the largest power of
    1024 that keeps it whole ("4Ki", "1536Ki"), a plain integer where none does
    ("1234567"), and decimal below 1024 or for a fraction of a byte ("512",
    "1k"), as Quantity does. Like Quantity, a non-zero value is rounded away
    from zero to whole nano units; floats are read by their shortest repr.
    """
    exact = _exact(value)
    nanos = -(-abs(exact) * _NANO // 1)  # ceil: "if you want some resources, you get some"
    if exact < 0:
        nanos = -nanos
    if nanos == 0:
        return "0"
    if binary and abs(nanos) >= 1024 * _NANO and nanos % _NANO == 0:
        n, i = nanos // _NANO, 0
        while i < len(_BINARY_SUFFIXES) - 1 and n % 1024 == 0:
            n, i = n // 1024, i + 1
        return f"{n}{_BINARY_SUFFIXES[i]}"
    n, exp = int(nanos), -9
    while exp < 18 and n % 1000 == 0:
        n, exp = n // 1000, exp + 3
    return f"{n}{_DECIMAL_SUFFIX[exp]}"


def cpu_quantity(nanocores: int) -> str:
    """CPU from nanocores, as metrics-server reports it ("1500m", "123456789n")."""
    return format_quantity(Fraction(int(nanocores), _NANO))


def memory_quantity(nbytes: int) -> str:
    """Memory from bytes, in BinarySI ("4Ki", "1Mi"; a plain integer if not a multiple of 1024)."""
    return format_quantity(int(nbytes), binary=True)


def milli_quantity(cores: float) -> str:
    """CPU cores rounded to whole millicores (``resource.NewMilliQuantity``): 0.25 -> "250m", 2.0 -> "2"."""
    return format_quantity(Fraction(round(cores * 1000), 1000))


def _shown(value: object, limit: int = 40) -> str:
    """``value`` quoted, cut short so that a message stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 5]}...{text[-4:]} ({len(text) - 2} chars)"


def _exact(value: Number) -> Fraction:
    finite = value.is_finite() if isinstance(value, Decimal) else not isinstance(value, float) or math.isfinite(value)
    if not finite:
        raise QuantityError(f"not a Kubernetes quantity: {value!r} (a quantity is a finite number)")
    if isinstance(value, float):
        return Fraction(Decimal(repr(value)))
    return Fraction(value)
