"""Parameter types shared by the commands: ids in the ranges the store holds.

A number outside the range is a usage error (exit status 2) naming the
argument, before anything is read or written.
"""

from __future__ import annotations

import click

__all__ = ["CATALOG_ID", "ROW_ID"]

CATALOG_ID = click.IntRange(0, 2**62)
"""A member or title id: the imported data's own ids (64-bit in the store; the API's range)."""
ROW_ID = click.IntRange(1, 2**31 - 1)
"""An id the store assigns (a token, a model version): a 32-bit integer from 1."""
