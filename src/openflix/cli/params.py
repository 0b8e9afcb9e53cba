"""Parameter types shared by the commands: ids in the ranges the store holds.

A number outside the range is a usage error (exit status 2) naming the
argument, before anything is read or written.
"""

from __future__ import annotations

import math
from typing import Any

import click

from openflix.store.schema import CATALOG_ID_MAX

__all__ = ["CATALOG_ID", "ROW_ID", "NumberRange"]

CATALOG_ID = click.IntRange(0, CATALOG_ID_MAX)
"""A member or title id: the imported data's own ids (64-bit in the store; the API's range)."""
ROW_ID = click.IntRange(1, 2**31 - 1)
"""An id the store assigns (a token, a model version): a 32-bit integer from 1."""


class NumberRange(click.FloatRange):
    """A float in a range that is a number: ``nan`` passes :class:`click.FloatRange` (every comparison
    with it is false) and is refused here."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if isinstance(number, float) and math.isnan(number):
            self.fail(f"{value!r} is not a number", param, ctx)
        return number
