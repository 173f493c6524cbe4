"""Kubernetes resource quantities (``"96"``, ``"95500m"``, ``"1056Gi"``, ``"1e3"``), parsed exactly.

The rules are those of ``k8s.io/apimachinery/pkg/api/resource.ParseQuantity``:

* grammar: ``[+-]? number suffix`` where ``number`` is ``digits``, ``digits.digits``,
  ``digits.`` or ``.digits``, and ``suffix`` is a binary SI suffix (``Ki Mi Gi Ti Pi Ei``, powers
  of 1024), a decimal SI suffix (``n u m "" k M G T P E``) or a decimal exponent (``e``/``E``
  followed by a signed integer, e.g. ``1e3``, ``1.5E-3``). ``E`` alone is exa (10**18);
* no whitespace inside the string (values read from a document are stripped first, as the API
  server's JSON decoder does);
* the value is kept exactly (a :class:`fractions.Fraction`), rounded *away from zero* to a whole
  number of nano units (``"0.9n"`` -> 1n, ``"3.001n"`` -> 4n);
* binary-SI quantities are capped at ``2**63 - 1`` in magnitude (``"9Ei"``); decimal ones are not;
* the quirks of the reference parser are kept: ``"+"``, ``"-"``, ``"."`` and ``"-."`` parse as 0.

Accessors follow the Go ones: :meth:`Quantity.value` is the value rounded up (away from zero) to
an integer, :meth:`Quantity.milli_value` the same in thousandths. Kubernetes reads ``cpu`` with
``MilliValue`` and ``memory`` and extended resources (``nvidia.com/gpu``) with ``Value``.

Deliberate limit: decimal exponents beyond +-1000 are refused (the Go parser accepts any int32
exponent; such values mean nothing to a simulator and would make huge integers here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["Quantity", "QuantityError", "parse_quantity", "quantity_from_value"]

_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_NANO = Fraction(1, 10**9)
_MAX_INT64 = 2**63 - 1
_MAX_EXPONENT = 1000


class QuantityError(ValueError):
    """A string is not a Kubernetes quantity; the message says which part is wrong."""


@dataclass(frozen=True)
class Quantity:
    """An exact Kubernetes quantity.

    Attributes:
        amount: the exact value (already rounded to nano units, binary SI capped).
        format: ``"DecimalSI"``, ``"BinarySI"`` or ``"DecimalExponent"``, as the reference parser
            records it (a binary quantity with magnitude below 1 becomes ``"DecimalSI"``).
        text: the string that was parsed.
    """

    amount: Fraction
    format: str
    text: str

    def value(self) -> int:
        """The value rounded up, away from zero, to an integer (Go ``Quantity.Value``)."""
        return _away_from_zero(self.amount)

    def milli_value(self) -> int:
        """Thousandths of the value, rounded up away from zero (Go ``Quantity.MilliValue``)."""
        return _away_from_zero(self.amount * 1000)

    def __float__(self) -> float:
        return float(self.amount)


def _away_from_zero(x: Fraction) -> int:
    return math.ceil(x) if x >= 0 else math.floor(x)


def parse_quantity(text: str) -> Quantity:
    """Parse a quantity string exactly as Kubernetes does.

    Args:
        text: e.g. ``"96"``, ``"95500m"``, ``"1056Gi"``, ``"2Ti"``, ``"512000Mi"``, ``"1e3"``.

    Returns:
        The quantity.

    Raises:
        QuantityError: empty string, whitespace, a malformed number or an unknown suffix (the
            message names the offending part and lists the allowed suffixes).
    """
    if not isinstance(text, str):
        raise QuantityError(f"quantity must be a string, got {type(text).__name__} {text!r}")
    if text == "":
        raise QuantityError("empty quantity")
    positive, num, denom, suffix = _split(text)
    base, exponent, fmt = _interpret(text, suffix)
    magnitude = Fraction(int(num + denom), 10 ** len(denom))
    magnitude *= Fraction(2) ** exponent if base == 2 else Fraction(10) ** exponent
    if magnitude:
        magnitude = math.ceil(magnitude / _NANO) * _NANO
    if fmt == "BinarySI" and magnitude > _MAX_INT64:
        magnitude = Fraction(_MAX_INT64)
    if fmt == "BinarySI" and 0 < magnitude < 1:
        fmt = "DecimalSI"
    return Quantity(magnitude if positive else -magnitude, fmt, text)


def _split(text: str) -> tuple[bool, str, str, str]:
    """Sign, integer digits, fraction digits and suffix, as the reference scanner splits them."""
    pos, end = 0, len(text)
    positive = True
    if text[0] in "+-":
        positive = text[0] == "+"
        pos = 1
    start = pos
    while pos < end and text[pos].isascii() and text[pos].isdigit():
        pos += 1
    num = text[start:pos] or "0"
    denom = ""
    if pos < end and text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos].isascii() and text[pos].isdigit():
            pos += 1
        denom = text[start:pos]
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos].isascii() and text[pos].isdigit():
        pos += 1
    if pos < end:
        raise QuantityError(
            f"quantity {text!r}: unexpected {text[pos]!r} at position {pos}; a quantity is a "
            "number with an optional suffix, e.g. '500m', '2', '1.5Gi', '1e3'"
        )
    return positive, num, denom, text[suffix_start:]


def _interpret(text: str, suffix: str) -> tuple[int, int, str]:
    if suffix in _DECIMAL:
        return 10, _DECIMAL[suffix], "DecimalSI"
    if suffix in _BINARY:
        return 2, _BINARY[suffix], "BinarySI"
    if len(suffix) > 1 and suffix[0] in "eE":
        digits = suffix[1:]
        body = digits[1:] if digits[:1] in ("+", "-") else digits
        if body.isascii() and body.isdigit():
            exponent = int(digits)
            if abs(exponent) > _MAX_EXPONENT:
                raise QuantityError(
                    f"quantity {text!r}: exponent {exponent} is outside +-{_MAX_EXPONENT}"
                )
            return 10, exponent, "DecimalExponent"
    raise QuantityError(
        f"quantity {text!r}: unknown suffix {suffix!r}; allowed: binary {list(_BINARY)}, "
        f"decimal {[s for s in _DECIMAL if s]}, or an exponent such as 'e3'"
    )


def quantity_from_value(value: object) -> Quantity:
    """A quantity from a decoded JSON/YAML value: a string, an int or a float.

    Strings are stripped of surrounding whitespace (as the API server's JSON decoder does);
    numbers are read from their shortest decimal spelling (``0.5`` -> ``"0.5"``).

    Raises:
        QuantityError: booleans, None, lists, NaN/inf, or a malformed string.
    """
    if isinstance(value, bool) or value is None:
        raise QuantityError(f"expected a quantity, got {value!r}")
    if isinstance(value, int):
        return parse_quantity(str(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"expected a finite quantity, got {value!r}")
        return parse_quantity(repr(value))
    if isinstance(value, str):
        return parse_quantity(value.strip())
    raise QuantityError(f"expected a quantity (string or number), got {type(value).__name__}")
