"""``openflix data``: fetch public datasets, describe a dataset."""

from __future__ import annotations

from pathlib import Path

import click

from openflix.cli.output import console
from openflix.cli.recs import data_options, read_data
from openflix.services import datasets as svc
from openflix.settings import Settings

__all__ = ["data"]

out = console()


@click.group()
def data() -> None:
    """Datasets: fetch the public ones, describe any."""


@data.command()
@click.argument("name", type=click.Choice(sorted(svc.ARCHIVES)))
@click.option(
    "--dest",
    type=click.Path(path_type=Path),
    default=Path("datasets"),
    show_default=True,
    help="Folder to extract into.",
)
def fetch(name: str, dest: Path) -> None:
    """Download and extract an official MovieLens archive (research use: read its licence)."""
    folder = svc.fetch(name, dest, Settings.from_env().datasets_url, progress=out.print)
    out.print(f"{name} is in {folder}; its README states the terms of use")


@data.command()
@data_options(required=True)
def info(data_path: Path, fmt: str, sep: str | None, columns: str | None) -> None:
    """Count members, titles and events of a dataset."""
    d = read_data(data_path, fmt, sep, columns)
    density = d.nnz / max(1, d.n_users * d.n_items)
    out.print(f"{d.nnz:,} events, {d.n_users:,} members, {d.n_items:,} titles, density {density:.4%}")
    if d.has_ratings:
        out.print(f"ratings {d.ratings.min():g}..{d.ratings.max():g}, mean {d.ratings.mean():.3f}")


@data.command()
@click.option(
    "--ratings",
    "n_ratings",
    type=click.IntRange(1, 200_000_000),
    default=1_000_000,
    show_default=True,
    help="How many ratings to draw.",
)
@click.option("--out", "dest", type=click.Path(path_type=Path), required=True, help="Folder to write to.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["netflix", "csv"]),
    default="netflix",
    show_default=True,
    help="Netflix Prize layout (combined_data_1.txt, movie_titles.txt) or one CSV.",
)
@click.option("--users", "n_users", type=click.IntRange(1), default=None, help="Members (default 480,189).")
@click.option("--items", "n_items", type=click.IntRange(1), default=None, help="Titles (default 17,770).")
@click.option("--seed", type=click.IntRange(0), default=42, show_default=True)
def synth(n_ratings: int, dest: Path, fmt: str, n_users: int | None, n_items: int | None, seed: int) -> None:
    """Generate ratings with the Netflix Prize's shape (members, titles, power-law popularity, 1999-2005)."""
    with out.status(f"drawing {n_ratings:,} ratings"):
        path = svc.write_synthetic(dest, n_ratings, fmt=fmt, seed=seed, n_users=n_users, n_items=n_items)
    out.print(f"wrote {path}")
