"""How cost grows toward the Netflix Prize's 100M ratings.

For each size (default 1M and 10M ratings) this draws a synthetic dataset with
the Netflix Prize's shape (``openflix data synth``), then, in a fresh process
per (size, model), measures wall time and peak memory (max RSS) of: ingest
(parsing the Netflix Prize layout), fit, and top 10 for every member.  Results
are appended to ``docs/benchmarks.md`` (section "Scale").

    python benchmarks/scale.py [--sizes 1000000 10000000] [--models als ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _doc import write_section

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
MARK = "## Scale"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(folder: Path, model_name: str) -> None:
    """Run in a subprocess: ingest, fit, top 10 for all; print one JSON line."""
    import numpy as np

    from openflix.recs.datasets import load
    from openflix.recs.models import create

    out: dict[str, float] = {}
    t0 = time.perf_counter()
    data = load(folder)
    out["ingest_s"], out["ingest_mb"] = time.perf_counter() - t0, peak_mb()
    out["ratings"], out["members"], out["titles"] = data.nnz, data.n_users, data.n_items
    t0 = time.perf_counter()
    model = create(model_name).fit(data)
    out["fit_s"], out["fit_mb"] = time.perf_counter() - t0, peak_mb()
    t0 = time.perf_counter()
    model.recommend(np.arange(data.n_users), 10)
    out["top10_s"], out["top10_mb"] = time.perf_counter() - t0, peak_mb()
    print(json.dumps(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--models", nargs="+", default=None, help="Default: the default model and als.")
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), args.child[1])
        return 0
    from openflix.services.datasets import write_synthetic
    from openflix.settings import Settings

    models = args.models or sorted({Settings.from_env().model, "als"})
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            write_synthetic(Path(tmp), size)
            print(f"synthesized {size:,} ratings in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            for name in models:
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", tmp, name],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if proc.returncode != 0:
                    print(proc.stderr, file=sys.stderr)
                    rows.append(f"| {size:,} | {name} | failed: exit {proc.returncode} | | | | | | |")
                    continue
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                line = (
                    f"| {size:,} | {name} | {int(r['members']):,} | {r['ingest_s']:.1f} | "
                    f"{r['ratings'] / r['ingest_s'] / 1e6:.2f} | {r['fit_s']:.1f} | {r['top10_s']:.1f} | "
                    f"{r['top10_mb']:,.0f} |"
                )
                print(line, flush=True)
                rows.append(line)
    table = (
        "| ratings | model | members | ingest s | M rows/s | fit s | top-10 for all s | peak MB |\n"
        "|---:|---|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows)
    )
    section = (
        f"{MARK}\n\nProduced by `make bench-scale` (`python benchmarks/scale.py`): synthetic data with the "
        "Netflix Prize's shape (480,189 members, 17,770 titles), written in its layout and parsed back; one "
        "fresh process per row; peak MB is the process's maximum resident memory.\n\n" + table + "\n"
    )
    write_section(args.out, MARK, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
