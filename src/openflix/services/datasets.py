"""Fetch public rating datasets from their official archives, at a user's request.

The archives are research data with their own terms (no redistribution for
MovieLens 100K and 1M): openflix never ships them, it downloads them for a
user who asks, into a folder of their choice.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from openflix.errors import FetchError

__all__ = ["ARCHIVES", "fetch"]

ARCHIVES = {
    "ml-100k": "ml-100k.zip",
    "ml-1m": "ml-1m.zip",
    "ml-latest-small": "ml-latest-small.zip",
}
"""Dataset name -> archive file name under the datasets URL."""

_CHUNK = 1 << 20


def fetch(
    name: str,
    dest: Path,
    base_url: str,
    *,
    progress: Callable[[str], None] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``name``'s archive from ``base_url`` and extract it to ``dest/name``.

    All or nothing: the archive is checked and extracted in a temporary folder
    first; ``dest/name`` appears only when everything succeeded.
    """
    if name not in ARCHIVES:
        raise FetchError(f"unknown dataset {name!r}; choose one of {', '.join(ARCHIVES)}")
    url = f"{base_url.rstrip('/')}/{ARCHIVES[name]}"
    target = dest / name
    if target.exists():
        raise FetchError(f"{target} already exists; remove it or choose another --dest")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=f".{name}-") as tmp:
        archive = Path(tmp) / ARCHIVES[name]
        if progress:
            progress(f"downloading {url}")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, archive.open("wb") as fh:
                shutil.copyfileobj(resp, fh, _CHUNK)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise FetchError(f"cannot download {url}: {exc}") from exc
        try:
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise FetchError(f"{url}: the archive is corrupt (at {bad})")
                root = Path(tmp) / "x"
                for member in zf.namelist():
                    out = (root / member).resolve()
                    if not out.is_relative_to(root.resolve()):
                        raise FetchError(f"{url}: the archive holds an unsafe path {member!r}")
                zf.extractall(root)
        except zipfile.BadZipFile as exc:
            raise FetchError(f"{url}: not a zip archive ({exc})") from exc
        extracted = root / name if (root / name).is_dir() else root
        shutil.move(str(extracted), str(target))
    return target


def write_synthetic(
    dest: Path,
    n_ratings: int,
    *,
    fmt: str = "netflix",
    seed: int = 42,
    n_users: int | None = None,
    n_items: int | None = None,
) -> Path:
    """Write a synthetic dataset (see :mod:`openflix.recs.synth`) as a Netflix Prize folder or a CSV.

    ``netflix``: ``dest/combined_data_1.txt`` (``MovieID:`` blocks of
    ``CustomerID,Rating,Date``) and ``dest/movie_titles.txt``; ``csv``:
    ``dest/ratings.csv`` with a ``user,item,rating,timestamp`` header.
    """
    import dataclasses

    import numpy as np
    import pandas as pd

    from openflix.recs.synth import NETFLIX_SHAPE, synthesize

    shape = dataclasses.replace(
        NETFLIX_SHAPE,
        n_users=n_users or NETFLIX_SHAPE.n_users,
        n_items=n_items or NETFLIX_SHAPE.n_items,
    )
    users, items, ratings, times = synthesize(n_ratings, shape, seed)
    dest.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        out = dest / "ratings.csv"
        frame = pd.DataFrame({"user": users, "item": items, "rating": ratings, "timestamp": times})
        frame.to_csv(out, index=False, chunksize=1_000_000)
        return out
    if fmt != "netflix":
        raise FetchError(f"unknown synthetic format {fmt!r}; expected netflix or csv")
    order = np.lexsort((times, users, items))
    dates = pd.to_datetime(times[order], unit="s").strftime("%Y-%m-%d").to_numpy()
    frame = pd.DataFrame({"c": users[order], "r": ratings[order], "d": dates})
    sorted_items = items[order]
    bounds = np.flatnonzero(np.diff(sorted_items)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(order)]])
    out = dest / "combined_data_1.txt"
    with out.open("w", encoding="latin-1", newline="\n") as fh:
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):  # one block per title
            fh.write(f"{sorted_items[lo]}:\n")
            frame.iloc[lo:hi].to_csv(fh, header=False, index=False, lineterminator="\n")
    years = 1950 + (np.arange(1, shape.n_items + 1) * 7919) % 56
    titles = pd.DataFrame(
        {
            "id": np.arange(1, shape.n_items + 1),
            "year": years,
            "title": [f"Synthetic Title {i}" for i in range(1, shape.n_items + 1)],
        }
    )
    titles.to_csv(dest / "movie_titles.txt", header=False, index=False, encoding="latin-1")
    return dest
