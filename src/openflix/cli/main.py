"""Entry point: the ``openflix`` click group and its error handling.

Every :class:`~openflix.errors.OpenflixError`, and every ``OSError`` of a file
the command reads or writes, becomes one line on stderr and exit status 2 —
never a traceback.
"""

from __future__ import annotations

import errno
from typing import Any

import click

from openflix import __version__
from openflix.errors import OpenflixError

__all__ = ["cli", "main"]


class OpenflixGroup(click.Group):
    """A click group that reports openflix errors as one clean line with exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OpenflixError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except OSError as exc:  # a path that cannot be written or read: the system's reason and the path
            if exc.errno == errno.EPIPE:  # the reader went away (`| head`): click ends quietly, status 1
                raise
            where = f"{exc.filename}: " if exc.filename is not None else ""
            click.echo(f"error: {where}{exc.strerror or exc}", err=True)
            ctx.exit(2)


@click.group(cls=OpenflixGroup)
@click.version_option(__version__, prog_name="openflix")
def cli() -> None:
    """openflix: recommendations, CDN steering, demand and insight for a streaming service."""


def _register() -> None:
    from openflix.cli import cdn, data, demo, platform, recs

    for command in (platform.db, platform.tokens, platform.models, platform.serve, platform.worker):
        cli.add_command(command)
    cli.add_command(data.data)
    cli.add_command(recs.recs)
    cli.add_command(demo.demo)
    cli.add_command(cdn.cdn)


_register()


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="openflix")


if __name__ == "__main__":  # pragma: no cover
    main()
