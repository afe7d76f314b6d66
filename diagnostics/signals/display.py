"""Numbers as findings print them: ``0.000431``, ``1.6e-05``, ``85.9``, ``12.5%``."""

from __future__ import annotations

import math


def fmt(value: float, digits: int = 3) -> str:
    """A number for a message: ``0.000431``, ``1.6e-05``, ``85.9``; 'nan'/'inf' as such."""
    if value is None or not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    mag = abs(value)
    if mag >= 1e4 or mag < 1e-3:
        mantissa, exponent = f"{value:.{max(1, digits - 1)}e}".split("e")
        if "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{exponent}"
    return f"{value:.{digits}g}"


def pct(fraction: float, digits: int = 3) -> str:
    """A fraction as a percentage for messages: ``0.859 -> '85.9%'``."""
    if fraction is None or not math.isfinite(fraction):
        return str(fraction)
    return f"{fmt(fraction * 100.0, digits)}%"
