"""``openflix demo``: the main job of ``make run`` on the bundled data."""

from __future__ import annotations

import time
from pathlib import Path

import click

from openflix.cli.recs import err, metrics_table, out, print_rows, read_data
from openflix.recs.evaluation import evaluate_split
from openflix.recs.models import create
from openflix.recs.splits import temporal_split
from openflix.services import personalization as svc
from openflix.settings import Settings

__all__ = ["demo"]


@click.command()
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Dataset (default: the bundled MovieLens latest-small).",
)
@click.option("--member", default=None, help="Member to show recommendations for (default: the first).")
def demo(data_path: Path | None, member: str | None) -> None:
    """Load the data, evaluate the default model against popularity, and show recommendations."""
    settings = Settings.from_env()
    data = read_data(data_path or settings.data, "auto", None, None)
    train, test = temporal_split(data)
    results = []
    for name in ("popularity", settings.model):
        with err.status(f"evaluating {name} (temporal 80/20 split)"):
            results.append(evaluate_split(create(name), train, test, kind="temporal", do_tune=False))
    out.print(metrics_table(results, title=f"{data!r}: per-member temporal 80/20 holdout"))
    with err.status(f"training {settings.model} on all of the data"):
        t0 = time.perf_counter()
        model = svc.train_model(data, settings.model)
    out.print(f"trained {model!r} on {data.nnz:,} ratings in {time.perf_counter() - t0:.2f} s")
    who = member if member is not None else data.user_ids[0]
    seen = model.history.rows([svc.index_of(model.user_ids, who, "member")])
    recent = [
        str(model.item_info.titles[i]) if model.item_info is not None else str(i)
        for i in seen.items[-3:][::-1]
    ]
    out.print(f"member {who} watched lately: {'; '.join(recent)}")
    print_rows(svc.recommend_for_member(model, who, 10), f"top 10 for member {who}")
    first = model.item_ids[int(seen.items[-1])]
    print_rows(
        svc.similar_titles(model, first.item(), 5), f"because you watched {svc.title_of(model, first.item())}"
    )
