"""``openflix recs``: evaluate, train, recommend and find similar titles."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from openflix.cli.output import console
from openflix.recs.data import Interactions
from openflix.recs.datasets import FORMATS
from openflix.recs.evaluation import Evaluation
from openflix.recs.models import MODELS, check_hyperparameters
from openflix.services import personalization as svc
from openflix.settings import Settings

__all__ = ["recs"]

out = console()
err = console(stderr=True)

METRIC_ORDER = ("ndcg", "recall", "precision", "map", "rmse", "mae", "coverage", "novelty")


def data_options(required: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--data/--format/--sep/--columns``: where ratings come from and how to read them."""

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option(
            "--columns",
            default=None,
            help="Columns user,item[,rating[,timestamp]] by header name or 0-based position.",
        )(f)
        f = click.option(
            "--sep", default=None, help="Field separator of a delimited file (default: detected)."
        )(f)
        f = click.option(
            "--format",
            "fmt",
            type=click.Choice(FORMATS),
            default="auto",
            show_default=True,
            help="Dataset format.",
        )(f)
        return click.option(
            "--data",
            "data_path",
            type=click.Path(path_type=Path),
            required=required,
            help="Dataset folder or file (MovieLens, Netflix Prize, CSV/TSV/Parquet).",
        )(f)

    return deco


def read_data(data_path: Path, fmt: str, sep: str | None, columns: str | None) -> Interactions:
    cols = [c.strip() for c in columns.split(",")] if columns else None
    if sep == "\\t" or (sep is not None and sep.lower() == "tab"):
        sep = "\t"
    with err.status(f"loading {data_path}"):
        t0 = time.perf_counter()
        data = svc.load_dataset(data_path, fmt=fmt, sep=sep, columns=cols)
    err.print(f"loaded {data!r} in {time.perf_counter() - t0:.2f} s")
    return data


@click.group()
def recs() -> None:
    """Recommendations: evaluate models, train, recommend, similar titles."""


@recs.command()
@data_options(required=True)
@click.option(
    "--split",
    "kind",
    type=click.Choice(["temporal", "random", "folds"]),
    default="temporal",
    show_default=True,
    help="Per-member temporal or random 80/20 holdout, or ML-100K folds u1..u5.",
)
@click.option(
    "--seed", type=click.IntRange(0), default=None, help="Seed of the random split and of the models."
)
@click.option(
    "--k", type=click.IntRange(1, 1000), default=10, show_default=True, help="Cut-off of ranking metrics."
)
@click.option(
    "--model",
    "models",
    multiple=True,
    type=click.Choice(sorted(MODELS)),
    help="Model to evaluate (repeatable; default: all).",
)
@click.option("--no-tune", is_flag=True, help="Use default hyperparameters instead of tuning on validation.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object {model: {metric: value}} last.")
def evaluate(
    data_path: Path,
    fmt: str,
    sep: str | None,
    columns: str | None,
    kind: str,
    seed: int | None,
    k: int,
    models: Sequence[str],
    no_tune: bool,
    as_json: bool,
) -> None:
    """Measure models on a holdout split; hyperparameters are tuned on validation only."""
    settings = Settings.from_env()
    data = read_data(data_path, fmt, sep, columns)
    names = list(models) or sorted(MODELS)
    with err.status("evaluating") as status:
        results = svc.evaluate_models(
            data,
            names,
            kind=kind,
            k=k,
            seed=settings.seed if seed is None else seed,
            tune=not no_tune,
            data_path=data_path,
            progress=lambda msg: status.update(msg),
        )
    if as_json:
        click.echo(json.dumps({r.model: r.metrics | {"fit_seconds": r.fit_seconds} for r in results}))
        return
    out.print(metrics_table(results, title=f"{data!r}, {kind} split, k={k}"))
    for r in results:
        if r.tuned:
            out.print(f"[bold]{r.model}[/]: chosen on validation: {r.extra.get('chosen')}")


def metrics_table(results: Sequence[Evaluation], title: str = "") -> Table:
    """A rich table: one row per model, one column per metric, plus fit time."""
    keys = [key for m in METRIC_ORDER for key in results[0].metrics if key.split("@")[0] == m]
    for r in results[1:]:
        keys += [key for m in METRIC_ORDER for key in r.metrics if key.split("@")[0] == m and key not in keys]
    table = Table(title=title)
    table.add_column("model", no_wrap=True)
    for key in keys:
        short = key.replace("precision", "prec").replace("coverage", "cover").replace("novelty", "novel")
        table.add_column(short, justify="right", overflow="fold")
    table.add_column("fit s", justify="right")
    for r in results:
        cells = [f"{r.metrics[key]:.4f}" if key in r.metrics else "" for key in keys]
        table.add_row(r.model, *cells, f"{r.fit_seconds:.2f}")
    return table


@recs.command()
@data_options(required=True)
@click.option(
    "--model",
    "name",
    type=click.Choice(sorted(MODELS)),
    default=None,
    help="Model (default: the default model).",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Where to write the model (.npz).",
)
@click.option("--param", "params", multiple=True, help="Hyperparameter NAME=VALUE (repeatable).")
@click.option("--tune", is_flag=True, help="Choose hyperparameters on a temporal validation split first.")
def train(
    data_path: Path,
    fmt: str,
    sep: str | None,
    columns: str | None,
    name: str | None,
    out_path: Path,
    params: Sequence[str],
    tune: bool,
) -> None:
    """Train a model on a whole dataset and save it."""
    name = name or Settings.from_env().model
    chosen = parse_params(params)
    check_hyperparameters(name, chosen)  # before minutes of reading and training
    data = read_data(data_path, fmt, sep, columns)
    if tune:
        with err.status(f"tuning {name} on validation") as status:
            chosen |= svc.tune_model(data, name, progress=status.update, fixed=chosen)
        out.print(f"chosen on validation: {chosen}")
    with err.status(f"training {name}"):
        t0 = time.perf_counter()
        model = svc.train_model(data, name, **chosen)
        elapsed = time.perf_counter() - t0
    model.save(out_path)
    out.print(f"trained {model!r} in {elapsed:.2f} s; saved to {out_path}")


def parse_params(params: Sequence[str]) -> dict[str, Any]:
    out_params: dict[str, Any] = {}
    for p in params:
        key, eq, value = p.partition("=")
        if not eq:
            raise click.BadParameter(f"expected NAME=VALUE, got {p!r}", param_hint="--param")
        try:
            out_params[key] = json.loads(value)
        except json.JSONDecodeError:
            try:
                out_params[key] = float(value)  # inf (JSON has no word for it), nan (refused by name)
            except ValueError:
                out_params[key] = value
    return out_params


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--n", type=click.IntRange(1, 1000), default=10, show_default=True, help="How many titles."
    )(f)
    f = click.option(
        "--model",
        "name",
        type=click.Choice(sorted(MODELS)),
        default=None,
        help="Model to train with --data (default: the default model).",
    )(f)
    f = click.option("--model-file", type=click.Path(path_type=Path), default=None, help="A saved model.")(f)
    return data_options()(f)


def open_model(
    model_file: Path | None,
    data_path: Path | None,
    fmt: str,
    sep: str | None,
    columns: str | None,
    name: str | None,
) -> Any:
    if model_file is None and data_path is None:
        data_path = Settings.from_env().data
    data = read_data(data_path, fmt, sep, columns) if model_file is None and data_path else None
    name = name or Settings.from_env().model
    with err.status("loading model" if model_file else f"training {name}"):
        return svc.open_model(model_file, data, name)


def print_rows(rows: Sequence[svc.Recommendation], title: str) -> None:
    table = Table(title=title)
    table.add_column("#", justify="right")
    table.add_column("id", justify="right")
    table.add_column("title")
    table.add_column("genres")
    table.add_column("score", justify="right")
    for rank, r in enumerate(rows, 1):
        table.add_row(str(rank), str(r.item_id), r.title, r.genres.replace("|", ", "), f"{r.score:.3f}")
    out.print(table)


@recs.command()
@model_options
@click.option("--user", "member", default=None, help="Member id in the training data.")
@click.option("--history", default=None, help="Title ids watched, oldest first, comma-separated (fold-in).")
def recommend(
    data_path: Path | None,
    fmt: str,
    sep: str | None,
    columns: str | None,
    model_file: Path | None,
    name: str | None,
    n: int,
    member: str | None,
    history: str | None,
) -> None:
    """Top titles for a member (--user) or for a history of titles (--history, no retraining)."""
    if (member is None) == (history is None):
        raise click.UsageError("give exactly one of --user ID or --history ID,ID,...")
    model = open_model(model_file, data_path, fmt, sep, columns, name)
    if member is not None:
        rows = svc.recommend_for_member(model, member, n)
        print_rows(rows, f"top {n} for member {member} ({model.name})")
    else:
        assert history is not None
        ids = [h.strip() for h in history.split(",") if h.strip()]
        rows = svc.recommend_for_history(model, ids, n)
        print_rows(rows, f"top {n} for a history of {len(ids)} titles ({model.name}, fold-in)")


@recs.command()
@model_options
@click.option("--item", required=True, help="Title id.")
def similar(
    data_path: Path | None,
    fmt: str,
    sep: str | None,
    columns: str | None,
    model_file: Path | None,
    name: str | None,
    n: int,
    item: str,
) -> None:
    """Titles most similar to a title."""
    model = open_model(model_file, data_path, fmt, sep, columns, name)
    rows = svc.similar_titles(model, item, n)
    print_rows(rows, f"{n} titles like {svc.title_of(model, item)} ({model.name})")
