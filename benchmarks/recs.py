"""Side-by-side benchmark of openflix's recommenders and the libraries people use instead.

Run ``make bench`` (installs the ``peers`` extra) or
``python benchmarks/recs.py [--ml100k DIR] [--quick]``.  Every model — ours
and the peers' — is split, tuned on a validation cut of the training part,
refitted and measured by the same code; the tables go to stdout and to
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers
from openflix.recs import datasets
from openflix.recs.data import Interactions
from openflix.recs.evaluation import Evaluation, evaluate_folds, evaluate_split
from openflix.recs.history import History
from openflix.recs.models import MODELS, create
from openflix.recs.models.base import Recommender
from openflix.recs.splits import predefined_folds, split
from openflix.settings import Settings, bundled_data, project_root

ROOT = project_root()
DEFAULT_ML100K = ROOT.parent / "shared" / "data" / "ml-100k"
RANKING_COLUMNS = ("ndcg@10", "recall@10", "precision@10", "map@10", "coverage", "novelty")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ours(kind: str) -> list[Recommender]:
    """Our models for a table: every registered ranking model, the rating model too for holdouts."""
    return [create(name) for name in sorted(MODELS) if kind != "folds" or MODELS[name].predicts_ratings]


def run_holdout(data: Interactions, kind: str, models: Sequence[Recommender], seed: int) -> list[Evaluation]:
    train, test = split(data, kind, 0.2, seed)
    out = []
    for model in models:
        t0 = time.perf_counter()
        metric = "rmse" if model.predicts_ratings and model.name.startswith("surprise") else None
        ev = evaluate_split(model, train, test, kind=kind, seed=seed, metric=metric)
        log(
            f"  {model.name}: ndcg@10 {ev.metrics['ndcg@10']:.4f} "
            f"({time.perf_counter() - t0:.1f} s with tuning)"
            f" chosen {ev.extra.get('chosen')}"
        )
        out.append(ev)
    return out


def run_folds(path: Path, models: Sequence[Recommender], seed: int) -> list[Evaluation]:
    full = datasets.load(path)
    folds = predefined_folds(path, full)
    out = []
    for model in models:
        t0 = time.perf_counter()
        ev = evaluate_folds(model, folds, seed=seed)
        log(
            f"  {model.name}: rmse {ev.metrics['rmse']:.4f}, fit {ev.fit_seconds:.2f} s/fold "
            f"({time.perf_counter() - t0:.1f} s with tuning)"
        )
        out.append(ev)
    return out


def end_to_end(path: Path, name: str) -> dict[str, float]:
    """Load + fit + top-10 for every member, wall seconds, on the default model's defaults."""
    t0 = time.perf_counter()
    data = datasets.load(path)
    t1 = time.perf_counter()
    model = create(name).fit(data)
    t2 = time.perf_counter()
    users = np.arange(data.n_users)
    model.recommend_batch(History.from_interactions(data), users, n=10)
    t3 = time.perf_counter()
    return {"load": t1 - t0, "fit": t2 - t1, "top10_all": t3 - t2, "total": t3 - t0}


def fmt_params(ev: Evaluation) -> str:
    chosen = ev.extra.get("chosen")
    if isinstance(chosen, list):
        chosen = chosen[0] if chosen else {}
    return ", ".join(f"{k}={v}" for k, v in (chosen or {}).items()) or "defaults"


def ranking_table(results: Sequence[Evaluation]) -> str:
    head = "| model | " + " | ".join(RANKING_COLUMNS) + " | fit s | chosen on validation |"
    rule = "|---|" + "---:|" * (len(RANKING_COLUMNS) + 1) + "---|"
    rows = [head, rule]
    best = max(r.metrics["ndcg@10"] for r in results)
    for r in sorted(results, key=lambda r: -r.metrics["ndcg@10"]):
        cells = [f"{r.metrics.get(c, float('nan')):.4f}" for c in RANKING_COLUMNS]
        if r.metrics["ndcg@10"] == best:
            cells[0] = f"**{cells[0]}**"
        rows.append(f"| {r.model} | " + " | ".join(cells) + f" | {r.fit_seconds:.2f} | {fmt_params(r)} |")
    return "\n".join(rows)


def rmse_table(results: Sequence[Evaluation]) -> str:
    rows = [
        "| model | RMSE (mean u1..u5) | MAE | "
        + " | ".join(f"u{k}" for k in range(1, 6))
        + " | fit s / fold | chosen on validation (u1) |",
        "|---|---:|---:|" + "---:|" * 5 + "---:|---|",
    ]
    for r in sorted(results, key=lambda r: r.metrics["rmse"]):
        per = " | ".join(f"{m['rmse']:.4f}" for m in r.extra["per_fold"])
        rows.append(
            f"| {r.model} | {r.metrics['rmse']:.4f} | {r.metrics['mae']:.4f} | {per} | "
            f"{r.fit_seconds:.2f} | {fmt_params(r)} |"
        )
    return "\n".join(rows)


def versions() -> str:
    import implicit
    import scipy

    parts = [
        f"Python {platform.python_version()}",
        f"NumPy {np.__version__}",
        f"SciPy {scipy.__version__}",
        f"implicit {implicit.__version__}",
    ]
    try:
        import surprise

        parts.append(f"scikit-surprise {surprise.__version__}")
    except ImportError:
        pass
    return ", ".join(parts) + f"; {os.cpu_count()} cores"


def write_doc(out: Path, sections: Sequence[str]) -> None:
    """Write the tables so far to ``out`` (keeping a Scale section written by benchmarks/scale.py)."""
    header = (
        "# Benchmarks\n\n"
        "Produced by `make bench` (`python benchmarks/recs.py`) "
        f"on {datetime.now(UTC):%Y-%m-%d}; {versions()}.\n\n"
        "Protocol: per member, ratings ordered by time (ties in file order), the last round(0.2·n) held out "
        "(temporal) or a seeded random round(0.2·n) (random); every held-out rating is relevant; training "
        "titles are excluded from the ranking; NDCG's ideal DCG covers min(|test|, 10) titles. "
        "Every model — openflix's and the peers' — has its hyperparameters chosen on a validation split cut "
        "from the training part in the same way (never on the test part); the chosen values are in the last "
        "column. RMSE: mean over MovieLens 100K's predefined folds u1..u5, tuned on a random validation cut "
        "of each fold's base. Fit times are wall seconds of the final fit on this machine.\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    kept = ""
    if out.exists():  # sections of the other benchmark scripts stay
        found = re.search(r"^## (Scale|API)\b", out.read_text(), flags=re.MULTILINE)
        kept = "\n" + out.read_text()[found.start() :] if found else ""
    out.write_text(header + "\n" + "\n\n".join(sections) + "\n" + kept)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ml100k", type=Path, default=Path(os.environ.get("OPENFLIX_ML100K", DEFAULT_ML100K))
    )
    parser.add_argument("--seed", type=int, default=Settings.from_env().seed)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--skip-peers", action="store_true", help="Only openflix's models.")
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["temporal", "random", "folds"],
        choices=["temporal", "random", "folds"],
        help="Which tables to run (default: all).",
    )
    args = parser.parse_args(argv)
    have_100k = (args.ml100k / "u.data").exists()
    if not have_100k:
        log(
            f"MovieLens 100K not found at {args.ml100k}: its tables are skipped "
            "(openflix data fetch ml-100k --dest DIR, then --ml100k DIR/ml-100k)"
        )
    ranking_peers = [] if args.skip_peers else [cls() for cls in peers.RANKING_PEERS]
    sections: list[str] = []
    summary: dict[str, dict[str, dict[str, float]]] = {}
    sets = [("MovieLens 100K", args.ml100k)] if have_100k else []
    sets.append(("MovieLens latest-small (bundled)", bundled_data()))
    for kind in [k for k in ("temporal", "random") if k in args.sections]:
        for title, path in sets:
            data = datasets.load(path)
            log(f"{title}, {kind} holdout")
            results = run_holdout(data, kind, [*ours(kind), *ranking_peers], args.seed)
            summary[f"{title} / {kind}"] = {r.model: r.metrics for r in results}
            sections.append(
                f"### {title}: per-member {kind} 80/20 holdout, top 10\n\n{ranking_table(results)}"
            )
    if have_100k and "folds" in args.sections:
        log("MovieLens 100K, folds u1..u5 (RMSE)")
        rating_peers = [] if args.skip_peers else [cls() for cls in peers.RATING_PEERS]
        results = run_folds(args.ml100k, [*ours("folds"), *rating_peers], args.seed)
        summary["MovieLens 100K / folds"] = {r.model: r.metrics for r in results}
        sections.append(
            "### MovieLens 100K: rating prediction, predefined folds u1..u5\n\n" + rmse_table(results)
        )
        name = Settings.from_env().model
        e2e = end_to_end(args.ml100k, name)
        sections.append(
            f"### MovieLens 100K: load + fit + top 10 for every member ({name}, defaults)\n\n"
            "| load s | fit s | top-10 for 943 members s | total s |\n|---:|---:|---:|---:|\n"
            f"| {e2e['load']:.2f} | {e2e['fit']:.2f} | {e2e['top10_all']:.2f} | {e2e['total']:.2f} |"
        )
    write_doc(args.out, sections)
    print("\n\n".join(sections))
    print(json.dumps(summary))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
