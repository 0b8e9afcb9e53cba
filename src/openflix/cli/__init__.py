"""The ``openflix`` command line: one module per command group."""

from openflix.cli.main import cli, main

__all__ = ["cli", "main"]
