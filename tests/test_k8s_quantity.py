"""Kubernetes quantity parsing.

Expected values are the facts of ``k8s.io/apimachinery/pkg/api/resource/quantity_test.go``
(TestQuantityParse, its "invalid" list and TestParseQuantityString), written as our own table.
"""

from fractions import Fraction as F

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.k8s.quantity import QuantityError, parse_quantity, quantity_from_value

GI = 2**30

# (input, exact value, format) -- from TestQuantityParse
PARSED = [
    ("0", 0, "DecimalSI"),
    ("0n", 0, "DecimalSI"),
    ("0Ki", 0, "BinarySI"),
    ("0Ti", 0, "BinarySI"),
    ("1", 1, "DecimalSI"),
    ("1Ki", 1024, "BinarySI"),
    ("7Mi", 7 * 2**20, "BinarySI"),
    ("6Gi", 6 * GI, "BinarySI"),
    ("5Ti", 5 * 2**40, "BinarySI"),
    ("4Pi", 4 * 2**50, "BinarySI"),
    ("3Ei", 3 * 2**60, "BinarySI"),
    ("5n", F(5, 10**9), "DecimalSI"),
    ("4u", F(4, 10**6), "DecimalSI"),
    ("3m", F(3, 1000), "DecimalSI"),
    ("8k", 8000, "DecimalSI"),
    ("7M", 7 * 10**6, "DecimalSI"),
    ("6G", 6 * 10**9, "DecimalSI"),
    ("5T", 5 * 10**12, "DecimalSI"),
    ("2P", 2 * 10**15, "DecimalSI"),
    ("1E", 10**18, "DecimalSI"),
    ("1E-3", F(1, 1000), "DecimalExponent"),
    ("1e3", 1000, "DecimalExponent"),
    ("1E6", 10**6, "DecimalExponent"),
    ("1e9", 10**9, "DecimalExponent"),
    ("1E18", 10**18, "DecimalExponent"),
    ("100.035k", 100035, "DecimalSI"),
    ("0.001", F(1, 1000), "DecimalSI"),
    ("0.0005k", F(1, 2), "DecimalSI"),
    ("0.5e-2", F(5, 1000), "DecimalExponent"),
    ("10.035M", 10035000, "DecimalSI"),
    ("1.2e3", 1200, "DecimalExponent"),
    ("1.3E+6", 1300000, "DecimalExponent"),
    ("1.53E12", 153 * 10**10, "DecimalExponent"),
    ("7.123456M", 7123456, "DecimalSI"),
    ("6.987654321G", 6987654321, "DecimalSI"),
    ("1.01E", 101 * 10**16, "DecimalSI"),
    # things that saturate / round (up, to nano)
    ("3.001n", F(4, 10**9), "DecimalSI"),
    ("1.1E-9", F(2, 10**9), "DecimalExponent"),
    ("0.0000000001", F(1, 10**9), "DecimalSI"),
    ("0.5e-9", F(1, 10**9), "DecimalExponent"),
    ("0.9n", F(1, 10**9), "DecimalSI"),
    ("0.00000012345", F(124, 10**9), "DecimalSI"),
    ("9Ei", 2**63 - 1, "BinarySI"),
    ("9223372036854775807Ki", 2**63 - 1, "BinarySI"),
    ("12E", 12 * 10**18, "DecimalSI"),
    # fractional binary
    ("100.035Ki", F(10243584, 100), "BinarySI"),
    ("0.5Mi", 2**19, "BinarySI"),
    ("0.025Ti", F(274877906944, 10), "BinarySI"),
    # "written by trolls"
    ("0.000000000001Ki", F(2, 10**9), "DecimalSI"),
    (".001", F(1, 1000), "DecimalSI"),
    (".0001k", F(1, 10), "DecimalSI"),
    ("1.", 1, "DecimalSI"),
    ("1.G", 10**9, "DecimalSI"),
    # decimal values are not capped at 2**63-1
    ("18446744073709551616", 2**64, "DecimalSI"),
]


@pytest.mark.parametrize(("text", "value", "fmt"), PARSED)
def test_parse_matches_reference(text, value, fmt):
    q = parse_quantity(text)
    assert q.amount == value
    assert q.format == fmt
    for sign, factor in (("-", -1), ("+", 1)):  # the reference test tries every entry signed
        s = parse_quantity(sign + text)
        assert s.amount == factor * F(value)
        assert s.format == fmt


# from the reference test's "invalid" list, plus our own malformed inputs
INVALID = ["1.1.M", "1+1.0M", "0.1mi", "0.1am", "aoeu", ".5i", "1i", "-3.01e-", " 1", "1 ", ""]
INVALID += ["1e", "1e+", "1ee3", "1Ki3", "1e3m", "12 Gi", "1,5", "１", "0x10", "1e1001"]


@pytest.mark.parametrize("text", INVALID)
def test_invalid_quantities_raise(text):
    with pytest.raises(QuantityError) as err:
        parse_quantity(text)
    assert repr(text) in str(err.value) or text == ""


def test_error_messages_name_the_bad_part():
    with pytest.raises(QuantityError, match=r"unknown suffix 'mi'"):
        parse_quantity("0.1mi")
    with pytest.raises(QuantityError, match=r"unexpected ' ' at position 2"):
        parse_quantity("12 Gi")


def test_reference_quirks_parse_as_zero():
    # TestParseQuantityString: "." and "-." are accepted; a lone sign scans as "0" too
    for text in (".", "-.", "+", "-", "000", "0."):
        assert parse_quantity(text).amount == 0


def test_issue_examples_and_accessors():
    assert parse_quantity("96").value() == 96
    assert parse_quantity("95500m").milli_value() == 95500
    assert parse_quantity("1056Gi").value() == 1056 * GI
    assert parse_quantity("2Ti").value() == 2 * 2**40
    assert parse_quantity("512000Mi").value() == 512000 * 2**20
    assert parse_quantity("1e3").value() == 1000
    # Value / MilliValue round up, away from zero
    assert parse_quantity("1.2").value() == 2
    assert parse_quantity("-1.2").value() == -2
    assert parse_quantity("0.1m").milli_value() == 1
    assert parse_quantity("100m").value() == 1


def test_values_from_documents():
    assert quantity_from_value(8).value() == 8
    assert quantity_from_value(0.5).milli_value() == 500
    assert quantity_from_value(" 2Gi ").value() == 2 * GI  # JSON decoder trims
    assert quantity_from_value(1e16).value() == 10**16
    for bad in (True, None, [1], float("nan"), float("inf")):
        with pytest.raises(QuantityError):
            quantity_from_value(bad)


@given(st.integers(0, 10**12), st.sampled_from(["", "k", "M", "G", "Ki", "Mi", "Gi", "m"]))
def test_integers_with_suffix_scale_exactly(n, suffix):
    factor = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    expected = F(n, 1000) if suffix == "m" else F(n * factor[suffix])
    if suffix.endswith("i"):
        expected = min(expected, F(2**63 - 1))  # binary SI is capped at 2**63 - 1
    assert parse_quantity(f"{n}{suffix}").amount == expected


@given(st.integers(0, 10**6), st.integers(0, 10**9 - 1), st.integers(-12, 12))
def test_decimal_exponent_equals_exact_rational_rounded_up_to_nano(whole, frac, exp):
    text = f"{whole}.{frac:09d}e{exp}"
    exact = (F(whole) + F(frac, 10**9)) * F(10) ** exp
    got = parse_quantity(text).amount
    assert got >= exact and got - exact < F(1, 10**9)
    assert (got * 10**9).denominator == 1
