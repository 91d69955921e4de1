"""Hypothesis over rap.quantity: every quantity of Kubernetes' grammar reads as a reference reads it, nothing else reads.

The reference below is written from the grammar in apimachinery's quantity.go,
character by character with Decimal, not from rap.quantity's regular
expression:

    <quantity>        ::= <signedNumber><suffix>
    <signedNumber>    ::= <number> | <sign><number>
    <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
    <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
    <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
    <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
    <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>

with what ParseQuantity really does: n and u are decimal suffixes too, the
exponent is an integer (ParseInt), digits are ASCII. rap.quantity adds two
things: surrounding whitespace is ignored, and an exponent beyond
MAX_EXPONENT is refused rather than computed.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rap.quantity import MAX_EXPONENT, QuantityError, format_quantity, parse_exact, parse_quantity

DIGITS = "0123456789"
BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
TOO_BIG = "too big"


def _digits(s: str, i: int) -> int:
    while i < len(s) and s[i] in DIGITS:
        i += 1
    return i


def reference(text: str) -> Fraction | str | None:
    """The value ``text`` denotes, None if it is not a quantity, TOO_BIG past MAX_EXPONENT."""
    s = text.strip()
    i = 1 if s[:1] in ("+", "-") and s else 0
    negative = s[:1] == "-"
    j = _digits(s, i)
    whole = s[i:j]
    frac = ""
    if s[j:j + 1] == ".":
        k = _digits(s, j + 1)
        frac, j = s[j + 1:k], k
    if not whole and not frac:
        return None
    rest = s[j:]
    if rest in BINARY:
        scale = Fraction(2) ** BINARY[rest]
    elif rest in DECIMAL:
        scale = Fraction(10) ** DECIMAL[rest]
    elif rest[:1] in ("e", "E") and len(rest) > 1:
        e = rest[1:]
        body = e[1:] if e[:1] in ("+", "-") else e
        if not body or _digits(body, 0) != len(body):
            return None
        if abs(int(e)) > MAX_EXPONENT:
            return TOO_BIG
        scale = Fraction(10) ** int(e)
    else:
        return None
    value = Fraction(Decimal(f"{whole or '0'}.{frac or '0'}")) * scale
    return -value if negative else value


digits = st.text(DIGITS, min_size=1, max_size=25)
numbers = st.one_of(digits, digits.map(lambda d: d + "."), st.tuples(digits, digits).map(".".join),
                    digits.map(lambda d: "." + d))
signs = st.sampled_from(["", "+", "-"])
exponents = st.tuples(st.sampled_from("eE"), signs, st.text(DIGITS, min_size=1, max_size=3)).map("".join)
suffixes = st.one_of(st.sampled_from(sorted(BINARY)), st.sampled_from(sorted(DECIMAL)), exponents)
quantities = st.tuples(signs, numbers, suffixes).map("".join)
# Mostly the grammar's own characters, so that near misses ("1.e", "1Kii", "+-1") are common.
near_misses = st.text(st.sampled_from(list(DIGITS + "+-.eEKMGTPEinumk i") + ["١", "٢", "\u00a0"]), max_size=12)


@given(quantities)
@example("1.G")
@example("+.5e-3")
@example("-0Ei")
@example("007e+007")
def test_every_grammar_quantity_reads_as_the_reference(text):
    expected = reference(text)
    assert parse_exact(text) == expected


@given(st.one_of(near_misses, st.text(max_size=12)))
@example("١٢")  # Arabic-Indic digits: \d and Decimal read them as 12, Kubernetes does not
@example("1e")
@example(".")
@example("-")
@example("1K")
@example("1 Mi")
@example("1e1.5")
def test_a_text_reads_exactly_when_the_reference_reads_it(text):
    expected = reference(text)
    if expected is None or expected == TOO_BIG:
        with pytest.raises(QuantityError, match="Kubernetes quantity") as err:
            parse_exact(text)
        assert "\n" not in str(err.value)
    else:
        assert parse_exact(text) == expected


@given(st.integers(min_value=MAX_EXPONENT + 1, max_value=10**30).map(str), st.sampled_from(["e", "E-", "e+"]))
@example("9" * 5000, "e")  # once an int() past Python's 4300-digit limit: a ValueError with no quantity in it
def test_a_huge_exponent_is_refused_quickly(exponent, mark):
    text = f"1{mark}{exponent}"
    with pytest.raises(QuantityError, match=f"exponent beyond ±{MAX_EXPONENT}") as err:
        parse_exact(text)
    assert len(str(err.value)) < 120


@given(st.sampled_from(["1e400", "9" * 400, "1e309", "-2e308"]))
def test_too_large_for_a_float_is_a_quantity_error(text):  # was an OverflowError from float()
    with pytest.raises(QuantityError, match="too large for a float"):
        parse_quantity(text)


def _nano_ceiling(x: Fraction) -> Fraction:
    """Quantity's rounding: away from zero, to a whole nano unit."""
    n = math.ceil(abs(x) * 10**9)
    return Fraction(-n if x < 0 else n, 10**9)


values = st.one_of(st.fractions(max_denominator=10**12), st.integers(-(2**80), 2**80),
                   st.integers(-(10**6), 10**6).map(lambda n: Fraction(n * 1024**3, 1)))


@given(values, st.booleans())
@example(Fraction(1, 3 * 10**9), False)
@example(2**70, True)
@example(Fraction(1536), True)
def test_format_then_parse_gives_the_value_rounded_as_quantity_rounds(value, binary):
    text = format_quantity(value, binary)
    assert reference(text) not in (None, TOO_BIG), text  # the printed text is in the grammar
    assert parse_exact(text) == _nano_ceiling(Fraction(value))


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_finite_float_reads_as_itself(x):
    assert parse_quantity(x) == x


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, Decimal("NaN"), Decimal("-Infinity")])
def test_a_non_finite_number_is_a_quantity_error(value):  # was a ValueError/OverflowError from Fraction
    with pytest.raises(QuantityError, match="a quantity is a finite number"):
        parse_exact(value)
    with pytest.raises(QuantityError, match="a quantity is a finite number"):
        format_quantity(value)


@settings(max_examples=50)
@given(st.text(min_size=41, max_size=5000))
def test_a_long_bad_text_is_quoted_short(text):
    text = "x" + text
    with pytest.raises(QuantityError) as err:
        parse_exact(text)
    assert len(str(err.value)) < 120
