"""Validation rules of a template field and the checksums they name.

A rule that fails gives a one-line reason ("length 6, expected 7"); a reading that breaks
any rule is marked needs_review with the reasons joined by "; ".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CHECKSUMS = ("luhn", "mod11", "mod97")


@dataclass(frozen=True)
class Rules:
    required: bool = False
    length: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None  # a regular expression the whole text must match
    min: float | None = None
    max: float | None = None
    checksum: str | None = None  # luhn / mod11 / mod97

    def as_dict(self) -> dict[str, object]:
        """Only the rules that are set (what the template file holds)."""
        return {k: v for k, v in vars(self).items() if v not in (None, False)}


def broken_rules(text: str, rules: Rules) -> list[str]:
    """Reasons the text breaks the rules (empty: it keeps every one). An empty text only
    breaks `required`: the other rules apply to what was written."""
    if not text:
        return ["required field is empty"] if rules.required else []
    reasons = []
    length = len(text)
    if rules.length is not None and length != rules.length:
        reasons.append(f"length {length}, expected {rules.length}")
    if rules.min_length is not None and length < rules.min_length:
        reasons.append(f"length {length}, expected at least {rules.min_length}")
    if rules.max_length is not None and length > rules.max_length:
        reasons.append(f"length {length}, expected at most {rules.max_length}")
    if rules.pattern is not None and re.fullmatch(rules.pattern, text) is None:
        reasons.append(f"does not match pattern {rules.pattern}")
    if rules.min is not None or rules.max is not None:
        reasons.extend(_range_reasons(text, rules))
    if rules.checksum is not None and not checksum_ok(text, rules.checksum):
        reasons.append(f"{rules.checksum} checksum fails")
    return reasons


def _range_reasons(text: str, rules: Rules) -> list[str]:
    try:
        value = float(text)
    except ValueError:
        return ["not a number"]
    if rules.min is not None and value < rules.min:
        return [f"{text} is below the minimum {_number(rules.min)}"]
    if rules.max is not None and value > rules.max:
        return [f"{text} is above the maximum {_number(rules.max)}"]
    return []


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def checksum_ok(text: str, kind: str) -> bool:
    """Whether the digit string's last digit(s) check out under `kind`."""
    if not text.isdigit():
        return False
    if kind == "luhn":
        return luhn_ok(text)
    if kind == "mod11":
        return mod11_ok(text)
    if kind == "mod97":
        return mod97_ok(text)
    raise ValueError(f"unknown checksum {kind!r} (known: {', '.join(CHECKSUMS)})")


def luhn_ok(digits: str) -> bool:
    """Luhn (payment cards, IMEI): doubling every second digit from the right."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return len(digits) >= 2 and total % 10 == 0


def mod11_ok(digits: str) -> bool:
    """Weighted mod 11 (ISBN-10 style weights 2, 3, 4... from the right of the payload): the
    check digit is (11 - sum mod 11) mod 11; a payload needing 10 can never be valid."""
    if len(digits) < 2:
        return False
    payload, check = digits[:-1], int(digits[-1])
    total = sum(int(c) * w for w, c in enumerate(reversed(payload), start=2))
    expected = (11 - total % 11) % 11
    return expected < 10 and expected == check


def mod97_ok(digits: str) -> bool:
    """ISO 7064 MOD 97-10 (IBAN, national ids): the whole number mod 97 is 1."""
    return len(digits) >= 3 and int(digits) % 97 == 1
