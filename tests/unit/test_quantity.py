"""rap.quantity reads and prints quantities as apimachinery's resource.Quantity does."""

from __future__ import annotations

from fractions import Fraction

import pytest

from rap.quantity import (QuantityError, cpu_quantity, format_quantity, memory_quantity, milli_quantity,
                          parse_exact, parse_quantity)

# -- parsing (what the Python proxy reads from metrics.k8s.io and the core API) --


@pytest.mark.parametrize("text, value", [
    ("123456789n", 0.123456789), ("250m", 0.25), ("1", 1.0), ("2.5", 2.5), ("500u", 0.0005),
    ("7220Ki", 7220 * 1024), ("256Mi", 256 * 2**20), ("1Gi", 2**30), ("1k", 1000), ("3M", 3e6),
    ("1e3", 1000), ("1.5E2", 150), (".5", 0.5), (4, 4.0),
])
def test_quantities(text, value):
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "m", "1x", "1Kii", "abc", "1 Mi", "1e3Ki", "1e", True])
def test_bad_quantities(text):
    with pytest.raises(QuantityError, match="not a Kubernetes quantity"):
        parse_quantity(text)


@pytest.mark.parametrize("text, value", [
    ("123456789n", Fraction(123456789, 10**9)), ("1E", 10**18), ("-1.5Ki", -1536), ("+1.", 1),
    ("1e-3", Fraction(1, 1000)), (" 2Mi ", 2 << 20),
])
def test_parse_is_exact(text, value):
    assert parse_exact(text) == value


# -- printing (what the local metrics server answers, as metrics-server would) --


@pytest.mark.parametrize("nanocores, text", [
    (0, "0"), (123456789, "123456789n"), (500_000_000, "500m"), (1_000_000_000, "1"),
    (1_500_000_000, "1500m"), (1_000, "1u"), (2_000_000_000_000, "2k"), (7, "7n"),
])
def test_cpu_quantity_is_canonical_decimal_si(nanocores, text):
    assert cpu_quantity(nanocores) == text


@pytest.mark.parametrize("nbytes, text", [
    (4096, "4Ki"), (1 << 20, "1Mi"), (1536 << 10, "1536Ki"), (3 << 30, "3Gi"),
    (1234567, "1234567"), (512, "512"), (0, "0"),
    # Quantity prints a whole byte count >= 1024 in base 1024 even when no suffix fits,
    # and below 1024 in DecimalSI ("1k", not "1000").
    (1_000_000, "1000000"), (1_234_567_000, "1234567000"), (1000, "1k"), (-2048, "-2Ki"),
])
def test_memory_quantity_is_canonical_binary_si(nbytes, text):
    assert memory_quantity(nbytes) == text


@pytest.mark.parametrize("n", [1, 999, 1001, 123_456_789_000, 10**12 + 5])
def test_quantities_round_trip(n):
    assert parse_quantity(cpu_quantity(n)) == pytest.approx(n * 1e-9)
    assert parse_quantity(memory_quantity(n * 4096)) == n * 4096


@pytest.mark.parametrize("value, binary, text", [
    (Fraction(1, 3 * 10**9), False, "1n"),  # below a nano unit: rounded up, never to zero
    (-0.0000000001, False, "-1n"), (0.1, False, "100m"), (1536.5, True, "1536500m"),
    # Beyond int64, where Quantity itself drops the suffix ("1"), the largest suffix is kept.
    (10**21, False, "1000E"), (2**70, True, "1024Ei"),
])
def test_format_rounds_and_falls_back_as_quantity_does(value, binary, text):
    assert format_quantity(value, binary) == text


@pytest.mark.parametrize("cores, text", [(0.25, "250m"), (0.15, "150m"), (1.0, "1"), (2.5, "2500m"),
                                         (0.0004, "0"), (1 / 3, "333m")])
def test_milli_quantity(cores, text):
    assert milli_quantity(cores) == text
