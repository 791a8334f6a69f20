"""Option types shared by the commands: numbers that must be finite (and positive).

Python's ``float`` accepts ``nan``, ``inf`` and ``-inf``; an option typed ``float`` lets
them through to a job, where NaN compares false with everything and passes every check
in silence (``norm --scale nan`` wrote zeros, ``-H nan`` truncated nothing). These types
refuse them while the options are parsed: one line, exit status 2.
"""

from __future__ import annotations

import math

import click

__all__ = ["FINITE", "FINITE_POSITIVE", "FiniteFloat"]


class FiniteFloat(click.ParamType):
    """A finite float, optionally required to be greater than 0."""

    def __init__(self, positive: bool = False):
        self.positive = positive
        self.name = "positive number" if positive else "number"

    def convert(self, value, param, ctx):
        if isinstance(value, float) and math.isfinite(value):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.positive and number <= 0:
            self.fail(f"{value!r} is not a positive number", param, ctx)
        return number

    def __repr__(self) -> str:
        return "FINITE_POSITIVE" if self.positive else "FINITE"


#: A finite float (not nan, inf or -inf).
FINITE = FiniteFloat()
#: A finite float greater than 0.
FINITE_POSITIVE = FiniteFloat(positive=True)
