"""The consoles commands print through: rich, as wide as the terminal, or wide when there is none."""

from __future__ import annotations

import os
import sys

from rich.console import Console

__all__ = ["console"]

PIPE_WIDTH = 200
"""Columns of output going to a file or a pipe (rich's default there, 80, folds tables mid-number)."""


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr): the terminal's width, else ``COLUMNS`` when set, else
    :data:`PIPE_WIDTH`."""
    stream = sys.stderr if stderr else sys.stdout
    terminal = hasattr(stream, "isatty") and stream.isatty()
    width = None if terminal or os.environ.get("COLUMNS") else PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, width=width)
