"""Loaders for the rating datasets openflix reads.

=================  ==========================================================
format             what is read
=================  ==========================================================
``ml-100k``        ``u.data`` (tab: user, item, rating 1-5, unix time),
                   ``u.item`` titles and 19 genre flags (latin-1)
``ml-1m``          ``ratings.dat`` (``::``: user, item, rating, unix time),
                   ``movies.dat`` (latin-1); also ML-10M (ratings 0.5-5)
``ml-latest``      ``ratings.csv`` and ``movies.csv`` with headers
``netflix``        ``training_set/mv_*.txt`` or ``combined_data_*.txt``: a
                   ``MovieID:`` line, then ``CustomerID,Rating,Date`` lines;
                   ``movie_titles.txt`` (latin-1)
``table``          any delimited or Parquet file; columns named by option
=================  ==========================================================

Every loader is vectorized (pandas' C parser, NumPy) and all-or-nothing: bad
input raises :class:`~openflix.errors.DataFormatError` naming the file, the
line and the field, and no partial result escapes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from openflix.errors import DataError, DataFormatError
from openflix.recs import _parse
from openflix.recs.data import Interactions

__all__ = [
    "FORMATS",
    "detect_format",
    "load",
    "load_movielens_1m",
    "load_movielens_100k",
    "load_movielens_latest",
    "load_netflix",
    "load_table",
    "read_table",
]

FORMATS = ("auto", "ml-100k", "ml-1m", "ml-latest", "netflix", "table")

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def load(
    path: str | Path,
    *,
    fmt: str = "auto",
    sep: str | None = None,
    columns: Sequence[str | int] | None = None,
    rating_range: tuple[float, float] | None = None,
) -> Interactions:
    """Load a dataset from a folder or file, detecting its format unless ``fmt`` names it."""
    p = Path(path)
    kind = detect_format(p) if fmt == "auto" else fmt
    if kind == "ml-100k":
        return load_movielens_100k(p)
    if kind == "ml-1m":
        return load_movielens_1m(p)
    if kind == "ml-latest":
        return load_movielens_latest(p)
    if kind == "netflix":
        return load_netflix(p)
    if kind == "table":
        return load_table(p, sep=sep, columns=columns, rating_range=rating_range)
    raise DataError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def detect_format(path: Path) -> str:
    """Name the format of a dataset folder or file (see the module table)."""
    if not path.exists():
        raise DataFormatError(path, "no such file or folder")
    folder = path if path.is_dir() else path.parent
    name = path.name
    if path.is_dir():
        if (folder / "u.data").exists():
            return "ml-100k"
        if (folder / "ratings.dat").exists():
            return "ml-1m"
        if (folder / "ratings.csv").exists():
            return "ml-latest"
        if (folder / "training_set").is_dir() or any(folder.glob("combined_data_*.txt")):
            return "netflix"
        raise DataFormatError(
            path,
            "not a dataset folder: expected u.data (MovieLens 100K), ratings.dat "
            "(MovieLens 1M/10M), ratings.csv (MovieLens latest) or training_set/ or "
            "combined_data_*.txt (Netflix Prize)",
        )
    if name == "u.data" or name.endswith((".base", ".test")):
        return "ml-100k"
    if name == "ratings.dat":
        return "ml-1m"
    if name.startswith(("combined_data_", "mv_")):
        return "netflix"
    return "table"


# ---------------------------------------------------------------------- MovieLens
def load_movielens_100k(path: str | Path) -> Interactions:
    """MovieLens 100K: ``u.data`` (or a ``u1.base``-like file) and ``u.item`` titles."""
    p = Path(path)
    data = p / "u.data" if p.is_dir() else p
    folder = data.parent
    frame = _read_ratings(data, sep="\t", n_fields=4, skip=0, low=1, high=5)
    info = _ml100k_items(folder / "u.item")
    return _build(frame, info, source=str(data))


def _ml100k_items(path: Path) -> dict[Any, tuple[str, str]] | None:
    if not path.exists():
        return None
    _parse.check_text(path, "latin-1")
    try:
        items = pd.read_csv(
            path,
            sep="|",
            header=None,
            encoding="latin-1",
            quoting=3,
            dtype=str,
            keep_default_na=False,
        )
    except pd.errors.ParserError as exc:
        raise _parse._parser_error(path, exc, "|", 24, quoted=False) from exc
    items.index = pd.RangeIndex(1, len(items) + 1)
    if items.shape[1] != 24:
        raise DataFormatError(path, f"expected 24 '|'-separated fields, got {items.shape[1]}")
    ids = _parse.parse_ids(path, items[0], "movie id", numeric=True)
    flags = items.iloc[:, 5:24].to_numpy() == "1"
    names = np.array(ML100K_GENRES, dtype=object)
    genres = ["|".join(names[row]) for row in flags]
    return dict(zip(ids.tolist(), zip(items[1].tolist(), genres, strict=True), strict=True))


def load_movielens_1m(path: str | Path) -> Interactions:
    """MovieLens 1M or 10M: ``ratings.dat`` and ``movies.dat`` (``::``-separated)."""
    p = Path(path)
    data = p / "ratings.dat" if p.is_dir() else p
    frame = _read_ratings(data, sep="::", n_fields=4, skip=0, low=0.5, high=5)
    info = None
    movies = data.parent / "movies.dat"
    if movies.exists():
        _parse.check_text(movies, "latin-1")
        raw = movies.read_bytes().decode("latin-1")
        table = pd.Series(raw.splitlines()).str.split("::", n=2, expand=True)
        if table.shape[1] != 3:
            raise DataFormatError(movies, "expected MovieID::Title::Genres lines")
        ids = _parse.parse_ids(movies, table[0].set_axis(range(1, len(table) + 1)), "MovieID", numeric=True)
        info = dict(zip(ids.tolist(), zip(table[1].tolist(), table[2].tolist(), strict=True), strict=True))
    return _build(frame, info, source=str(data))


def load_movielens_latest(path: str | Path) -> Interactions:
    """MovieLens latest (and 20M/25M): ``ratings.csv`` and ``movies.csv`` with headers."""
    p = Path(path)
    data = p / "ratings.csv" if p.is_dir() else p
    head = _parse.check_text(data)
    first = _parse.first_lines(head, 1, "utf-8")[0]
    skip = 1 if first.lower().startswith("userid") else 0
    frame = _read_ratings(data, sep=",", n_fields=4, skip=skip, low=0.5, high=5)
    info = None
    movies = data.parent / "movies.csv"
    if movies.exists():
        _parse.check_text(movies)
        try:
            table = pd.read_csv(movies, dtype=str, keep_default_na=False)
        except pd.errors.ParserError as exc:  # e.g. a title's opening quote never closed
            raise _parse._parser_error(movies, exc, ",", 3) from exc
        if list(table.columns[:3]) != ["movieId", "title", "genres"]:
            raise DataFormatError(
                movies,
                f"expected a header movieId,title,genres, got {','.join(table.columns)}",
                line=1,
            )
        table.index = pd.RangeIndex(2, 2 + len(table))
        ids = _parse.parse_ids(movies, table["movieId"], "movieId", numeric=True)
        info = dict(
            zip(
                ids.tolist(), zip(table["title"].tolist(), table["genres"].tolist(), strict=True), strict=True
            )
        )
    return _build(frame, info, source=str(data))


def _read_ratings(
    path: Path,
    *,
    sep: str,
    n_fields: int,
    skip: int,
    low: float,
    high: float,
    encoding: str = "utf-8",
) -> dict[str, npt.NDArray[Any]]:
    """Read user, item, rating, time fields of a MovieLens-style file into typed columns."""
    head = _parse.check_text(path, encoding)
    lines = _parse.first_lines(head, skip + 1, encoding)
    data_line = lines[-1] if lines else ""
    if data_line.count(sep) != n_fields - 1:
        found = data_line.count(sep) + 1
        other = [s for s in ("\t", ",", "::", "|", ";") if s != sep and s in data_line]
        hint = f"; it looks {_parse.sep_name(other[0])}-separated" if other else ""
        raise DataFormatError(
            path,
            f"expected {n_fields} fields separated by {_parse.sep_name(sep)}, got {found}{hint}",
            line=skip + 1,
        )
    cols = Columns()
    for raw in _parse.read_fields(path, sep=sep, n_fields=n_fields, skip_lines=skip, encoding=encoding):
        cols.add(
            user=_parse.parse_ids(path, raw[0], "user", numeric=True),
            item=_parse.parse_ids(path, raw[1], "item", numeric=True),
            rating=_parse.parse_ratings(path, raw[2], "rating", low=low, high=high),
            timestamp=_parse.parse_times(path, raw[3], "timestamp"),
        )
    return cols.concat()


class Columns:
    """Typed arrays accumulated block by block, concatenated one field at a time.

    Integer ids are narrowed to ``int32`` when they fit, so a load holds about
    20 bytes per event (ids, rating, time) at its peak plus one block.
    """

    def __init__(self) -> None:
        self.parts: dict[str, list[npt.NDArray[Any]]] = {}

    def add(self, **arrays: npt.NDArray[Any]) -> None:
        for name, values in arrays.items():
            small = len(values) and values.dtype.kind in "iu" and name in ("user", "item")
            if small and np.iinfo(np.int32).min <= values.min() and values.max() <= np.iinfo(np.int32).max:
                values = values.astype(np.int32)
            self.parts.setdefault(name, []).append(values)

    def concat(self) -> dict[str, npt.NDArray[Any]]:
        out = {}
        for name in list(self.parts):
            pieces = self.parts.pop(name)
            if len({p.dtype.kind for p in pieces}) > 1:  # ids numeric in one block, text in another
                pieces = [p.astype(str) for p in pieces]
            out[name] = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
            del pieces
        return out


def _build(
    cols: dict[str, npt.NDArray[Any]], info: dict[Any, tuple[str, str]] | None, *, source: str
) -> Interactions:
    return Interactions.from_ids(
        cols.pop("user"),
        cols.pop("item"),
        cols.pop("rating", None),
        cols.pop("timestamp", None),
        item_info=info,
        source=source,
    )


# ---------------------------------------------------------------------- Netflix Prize
def load_netflix(path: str | Path, *, chunk_bytes: int | None = None) -> Interactions:
    """Netflix Prize layout: ``training_set/mv_*.txt`` or ``combined_data_*.txt``.

    Each file holds blocks of a ``MovieID:`` line followed by
    ``CustomerID,Rating,Date`` lines.  Files are parsed in blocks of
    ``chunk_bytes`` (default :data:`openflix.recs._parse.BLOCK_BYTES`) so
    memory stays proportional to the ratings.
    """
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("combined_data_*.txt")) or sorted((p / "training_set").glob("mv_*.txt"))
        titles_file = p / "movie_titles.txt"
    else:
        files = [p]
        titles_file = p.parent / "movie_titles.txt"
    if not files:
        raise DataFormatError(p, "expected combined_data_*.txt or training_set/mv_*.txt files")
    cols = Columns()
    for f in files:
        _netflix_file(f, chunk_bytes, cols)
    info = _netflix_titles(titles_file) if titles_file.exists() else None
    return _build(cols.concat(), info, source=str(p))


def _netflix_file(path: Path, chunk_bytes: int | None, cols: Columns) -> None:
    """Parse one file in blocks of about ``chunk_bytes``, cut at line ends, into ``cols``.

    Each block is rewritten so that every line has five numeric fields
    (``MovieID:`` -> ``MovieID,,,,``; ``2005-09-06`` -> ``2005,09,06``) and
    handed to pandas' C parser: no Python string per line.
    """
    _parse.check_text(path, "latin-1")
    movie = -1
    n_before = sum(len(x) for x in cols.parts.get("user", []))
    for data, first_line in _parse.iter_blocks(path, chunk_bytes):
        movie = _netflix_block(path, data, first_line, movie, cols)
    if sum(len(x) for x in cols.parts.get("user", [])) == n_before:
        raise DataFormatError(path, "no rating lines, expected 'MovieID:' then CustomerID,Rating,Date")


def _netflix_block(path: Path, data: bytes, first_line: int, movie: int, cols: Columns) -> int:
    """Parse one block of whole lines into ``cols``; return the movie id still open at its end."""
    text = data.replace(b"\r", b"").replace(b":\n", b",,,,\n").replace(b"-", b",")
    if text.endswith(b":"):
        text = text[:-1] + b",,,,"
    try:
        frame = pd.read_csv(
            io.BytesIO(text),
            sep=",",
            header=None,
            names=[0, 1, 2, 3, 4],
            engine="c",
            skip_blank_lines=False,
            keep_default_na=False,
            na_values=[""],
            quoting=3,
        )
    except pd.errors.ParserError as exc:
        raise _parse._parser_error(
            path,
            exc,
            ",",
            3,
            line_offset=first_line - 1,
            expected="'MovieID:' or CustomerID,Rating,Date",
            quoted=False,
        ) from exc
    frame.index = pd.RangeIndex(first_line, first_line + len(frame))
    present = frame.notna().to_numpy()
    nonblank = present.any(axis=1)
    frame = frame.iloc[np.flatnonzero(nonblank)]
    present = present[nonblank]
    head = present[:, 0] & ~present[:, 1:].any(axis=1)
    full = present.all(axis=1)
    bad = ~(head | full)
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            path, "expected 'MovieID:' or CustomerID,Rating,YYYY-MM-DD", line=int(frame.index[at])
        )
    movie_ids = _parse.parse_ids(path, frame[0][head], "MovieID", numeric=True)
    block_of = np.cumsum(head) - 1  # which header each line follows (-1: the one open before)
    rows = frame[~head]
    row_block = block_of[~head]
    if len(rows) and row_block[0] < 0 and movie < 0:
        raise DataFormatError(path, "expected a 'MovieID:' line before the ratings", line=int(rows.index[0]))
    item = np.concatenate([[movie], movie_ids])[row_block + 1]
    users = _parse.parse_ids(path, rows[0], "CustomerID", numeric=True)
    ratings = _parse.parse_ratings(path, rows[1], "Rating", low=1, high=5)
    parts = {
        k: _parse.parse_ids(path, rows[c], "Date", numeric=True)
        for k, c in (("year", 2), ("month", 3), ("day", 4))
    }
    dates = pd.to_datetime(pd.DataFrame(parts), errors="coerce")
    bad_date = dates.isna().to_numpy()
    if bad_date.any():
        at = int(np.flatnonzero(bad_date)[0])
        ymd = "-".join(str(parts[k][at]) for k in ("year", "month", "day"))
        raise DataFormatError(
            path, f"expected a date like 2005-09-06, got {ymd!r}", line=int(rows.index[at]), field="Date"
        )
    seconds = (dates - pd.Timestamp(0)) // pd.Timedelta(seconds=1)
    cols.add(
        user=users, item=item.astype(np.int64), rating=ratings, timestamp=seconds.to_numpy(dtype=np.int64)
    )
    return int(movie_ids[-1]) if len(movie_ids) else movie


def _netflix_titles(path: Path) -> dict[Any, tuple[str, str]]:
    _parse.check_text(path, "latin-1")
    lines = pd.Series(path.read_bytes().decode("latin-1").splitlines())
    lines.index = pd.RangeIndex(1, len(lines) + 1)
    lines = lines[lines.str.strip() != ""]
    table = lines.str.split(",", n=2, expand=True)
    if table.shape[1] != 3 or table[2].isna().any():
        raise DataFormatError(path, "expected MovieID,YearOfRelease,Title lines")
    ids = _parse.parse_ids(path, table[0], "MovieID", numeric=True)
    year = table[1].where(table[1] != "NULL", "")
    titles = (table[2] + np.where(year != "", " (" + year + ")", "")).tolist()
    return dict(zip(ids.tolist(), zip(titles, [""] * len(titles), strict=True), strict=True))


# ---------------------------------------------------------------------- any table
_ROLE_NAMES = {
    "user": ("user", "userid", "user_id", "member", "memberid", "member_id", "customerid", "customer_id"),
    "item": ("item", "itemid", "item_id", "movieid", "movie_id", "title", "titleid", "title_id"),
    "rating": ("rating", "weight", "score", "value", "plays", "count"),
    "timestamp": ("timestamp", "time", "ts", "date", "datetime"),
}
_ROLES = ("user", "item", "rating", "timestamp")


def read_table(
    path: str | Path,
    *,
    sep: str | None = None,
    columns: Sequence[str | int] | None = None,
    rating_range: tuple[float, float] | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """Read a delimited or Parquet file into arrays named user, item[, rating, timestamp].

    ``columns`` names the source columns (header names or 0-based positions)
    in the order user, item, rating, timestamp; two to four of them.  Without
    it, a header is searched for the usual names, else the first four fields
    are taken in that order.  A header line is detected when the first line's
    id fields are not numbers but the second line's are.
    """
    p = Path(path)
    if columns is not None and not 2 <= len(columns) <= 4:
        raise DataError(f"--columns takes 2 to 4 names: user,item[,rating[,timestamp]] (got {len(columns)})")
    if p.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(p, columns, rating_range)
    head = _parse.check_text(p)
    sep = sep or _parse.sniff_separator(p, head, "utf-8")
    lines = _parse.first_lines(head, 2, "utf-8")
    first = lines[0].split(sep)
    n_fields = len(first)
    has_header = _looks_like_header(first, lines[1].split(sep) if len(lines) > 1 else None)
    names = [f.strip().strip('"') for f in first] if has_header else None
    positions = _resolve_columns(p, columns, names, n_fields)
    label = (lambda pos: names[pos]) if names else (lambda pos: f"column {pos + 1}")
    low, high = rating_range if rating_range else (None, None)
    cols = Columns()
    for raw in _parse.read_fields(p, sep=sep, n_fields=n_fields, skip_lines=int(has_header)):
        block: dict[str, npt.NDArray[Any]] = {}
        for role, pos in zip(_ROLES, positions, strict=False):
            col = raw[pos]
            if role in ("user", "item"):
                block[role] = _parse.parse_ids(p, col, label(pos), numeric=False)
            elif role == "rating":
                block[role] = _parse.parse_ratings(p, col, label(pos), low=low, high=high)
            else:
                block[role] = _parse.parse_times(p, col, label(pos))
        cols.add(**block)
    return cols.concat()


def load_table(
    path: str | Path,
    *,
    sep: str | None = None,
    columns: Sequence[str | int] | None = None,
    rating_range: tuple[float, float] | None = None,
) -> Interactions:
    """Load a delimited or Parquet file (see :func:`read_table`) as :class:`Interactions`."""
    return _build(
        read_table(path, sep=sep, columns=columns, rating_range=rating_range), None, source=str(path)
    )


def _is_number(text: str) -> bool:
    try:
        float(text.strip().strip('"'))
    except ValueError:
        return False
    return True


def _looks_like_header(first: list[str], second: list[str] | None) -> bool:
    names = {f.strip().strip('"').lower() for f in first}
    if any(names & set(v) for v in _ROLE_NAMES.values()):
        return True
    if second is None:
        return False
    return not any(_is_number(f) for f in first) and any(_is_number(f) for f in second)


def _resolve_columns(
    path: Path, columns: Sequence[str | int] | None, names: list[str] | None, n_fields: int
) -> list[int]:
    if columns is None:
        if names is None:
            if n_fields < 2:
                raise DataFormatError(path, "expected at least 2 fields (user, item)", line=1)
            return list(range(min(n_fields, 4)))
        lowered = [n.lower() for n in names]
        found: list[int] = []
        for role in _ROLES:
            hit = next((lowered.index(a) for a in _ROLE_NAMES[role] if a in lowered), None)
            if hit is None:
                if role in ("user", "item"):
                    raise DataFormatError(
                        path,
                        f"no {role} column in the header ({', '.join(names)}); "
                        "name the columns with --columns user,item[,rating[,timestamp]]",
                        line=1,
                    )
                break
            found.append(hit)
        return found
    out = []
    for c in columns:
        if isinstance(c, int) or (str(c).isascii() and str(c).isdigit()):
            pos = int(c)
            if pos >= n_fields:
                raise DataFormatError(
                    path, f"column {pos} does not exist: lines have {n_fields} fields", line=1
                )
            out.append(pos)
        elif names is not None and c in names:
            out.append(names.index(str(c)))
        else:
            have = ", ".join(names) if names else f"{n_fields} unnamed fields"
            raise DataFormatError(path, f"no column named {c!r} (the file has {have})", line=1)
    for i, pos in enumerate(out):
        if pos in out[:i]:  # e.g. 0,0: the member ids read again as titles
            first = _ROLES[out.index(pos)]
            raise DataError(
                f"--columns gives column {columns[i]!r} as both {first} and {_ROLES[i]}; "
                "each of user,item[,rating[,timestamp]] needs a column of its own"
            )
    return out


def _read_parquet(
    path: Path, columns: Sequence[str | int] | None, rating_range: tuple[float, float] | None
) -> dict[str, npt.NDArray[Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFormatError(path, f"not a readable Parquet file ({exc})") from exc
    names = list(schema.names)
    positions = _resolve_columns(path, columns, names, len(names))
    try:
        table = pq.read_table(path, columns=[names[i] for i in positions])
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFormatError(path, f"not a readable Parquet file ({exc})") from exc
    frame = table.to_pandas()
    frame.index = pd.RangeIndex(1, len(frame) + 1)  # "line" = row number in the file
    if frame.empty:
        raise DataFormatError(path, "no rows, expected ratings")
    out: dict[str, Any] = {}
    for role, name in zip(_ROLES, frame.columns, strict=False):
        col = frame[name]
        if col.isna().any():
            at = int(np.flatnonzero(col.isna().to_numpy())[0])
            raise DataFormatError(path, "missing value", line=at + 1, field=str(name))
        if role in ("user", "item"):
            out[role] = _parse.parse_ids(path, col, str(name), numeric=False)
        elif role == "rating":
            low, high = rating_range if rating_range else (None, None)
            out[role] = _parse.parse_ratings(path, col, str(name), low=low, high=high)
        else:
            if pd.api.types.is_datetime64_any_dtype(col):
                col = col.astype(str)
            out[role] = _parse.parse_times(path, col, str(name))
    return out
