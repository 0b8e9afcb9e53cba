"""Vectorized parsing of delimited rating files with exact error locations.

The fast path hands the whole file to pandas' C parser; only when something is
wrong do we look for the first offending line, so a valid file costs one
vectorized pass and a broken one a message naming file, line and field.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from openflix.errors import DataFormatError

__all__ = [
    "BLOCK_BYTES",
    "check_text",
    "iter_blocks",
    "parse_ids",
    "parse_ratings",
    "parse_times",
    "read_fields",
    "sniff_separator",
]

_HEAD_BYTES = 1 << 16
_SEPARATORS = ("::", "\t", ",", ";", "|")
_SEP_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe", "::": "'::'", " ": "space"}


def sep_name(sep: str) -> str:
    return _SEP_NAMES.get(sep, repr(sep))


def check_text(path: Path, encoding: str = "utf-8") -> bytes:
    """Return the head of a text file; reject missing, empty and binary files.

    Raises :class:`DataFormatError` naming the line of the first NUL byte or
    undecodable byte in the head.
    """
    if not path.exists():
        raise DataFormatError(path, "no such file")
    if path.is_dir():
        raise DataFormatError(path, "is a folder, expected a file")
    with path.open("rb") as fh:
        head = fh.read(_HEAD_BYTES)
    if not head.strip():
        raise DataFormatError(path, "the file is empty, expected rating lines")
    nul = head.find(b"\x00")
    if nul >= 0:
        line = head.count(b"\n", 0, nul) + 1
        raise DataFormatError(path, "binary data (a NUL byte), expected text", line=line)
    try:
        head.decode(encoding)
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut by the head's end
            line = head.count(b"\n", 0, exc.start) + 1
            raise DataFormatError(
                path, f"bytes that are not {encoding} text, expected a text file", line=line
            ) from exc
    return head


def first_lines(head: bytes, n: int, encoding: str) -> list[str]:
    """The non-blank lines among the first ``n`` of ``head``."""
    return [ln for _, ln in numbered_lines(head, n, encoding)]


def numbered_lines(head: bytes, n: int, encoding: str) -> list[tuple[int, str]]:
    """The non-blank lines among the first ``n`` of ``head``, each with its 1-based line number."""
    text = head.decode(encoding, errors="replace").removeprefix("\ufeff")  # a byte-order mark (Excel)
    return [(i + 1, ln.rstrip("\r")) for i, ln in enumerate(text.split("\n")[:n]) if ln.strip()]


def sniff_separator(path: Path, head: bytes, encoding: str) -> str:
    """Guess the separator from the first lines: '::', tab, comma, semicolon or pipe.

    Lines with a double quote are left out when others remain (a quoted field
    may hold the separator).  When no separator splits every line alike, the
    one that splits the most lines alike names the first line that differs.
    """
    numbered = numbered_lines(head, 5, encoding)
    if not numbered:
        raise DataFormatError(path, "no data lines, expected rating lines")
    plain = [(i, ln) for i, ln in numbered if '"' not in ln] or numbered
    for sep in _SEPARATORS:
        counts = {ln.count(sep) for _, ln in plain}
        if len(counts) == 1 and counts.pop() >= 1:
            return sep
    best: tuple[int, str, int, list[int]] | None = None
    for sep in _SEPARATORS:  # one separating most lines evenly: the line that differs is the fault
        fields = [ln.count(sep) + 1 for _, ln in plain]
        usual = max(fields, key=fields.count)
        agree = fields.count(usual)
        if usual >= 2 and 2 * agree > len(fields) and (best is None or agree > best[0]):
            best = (agree, sep, usual, fields)
    if best is not None:
        _, sep, usual, fields = best
        at = next(k for k, count in enumerate(fields) if count != usual)
        line, text = plain[at]
        raise DataFormatError(
            path,
            f"expected {usual} fields separated by {sep_name(sep)}, as on most of the first "
            f"{len(numbered)} lines; line {line} has {fields[at]} ({text[:60]!r}); "
            "if the separator is another, name it with --sep",
            line=line,
        )
    raise DataFormatError(
        path,
        "cannot tell the separator: expected lines of fields separated by tab, comma, "
        f"semicolon, pipe or '::' (line {numbered[0][0]} is {numbered[0][1][:60]!r}); name it with --sep",
        line=numbered[0][0],
    )


BLOCK_BYTES = 64 << 20
"""Bytes parsed at once: memory of a load stays near the size of its result."""


def iter_blocks(
    path: Path, block_bytes: int | None = None, *, quoted: bool = False
) -> Iterator[tuple[bytes, int]]:
    """Whole lines of ``path`` in blocks of about ``block_bytes`` (default :data:`BLOCK_BYTES`).

    Yields each block with the 1-based number of its first line.  With
    ``quoted``, a block never ends inside a double-quoted field, which may
    hold line breaks (CSV): it ends at a line break after an even count of
    quotes (or at any line break once :data:`_QUOTES_NEVER_BALANCE` blocks'
    worth find none).
    """
    block_bytes = block_bytes or BLOCK_BYTES
    line = 1
    rest = b""
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(block_bytes)
            data = rest + chunk
            if chunk:
                cut = _outside_quotes(data) if quoted else data.rfind(b"\n") + 1
                if cut == 0 and quoted and len(data) >= _QUOTES_NEVER_BALANCE * block_bytes:
                    cut = data.rfind(b"\n") + 1  # a literal quote inside a field (12" Vinyl): at a line
                if cut == 0:  # a line longer than the block: read on
                    rest = data
                    continue
                data, rest = data[:cut], data[cut:]
            else:
                rest = b""
            if data:
                yield data, line
                line += data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
            if not chunk:
                return


def _row_lines(data: bytes, first_line: int, skip: int, n_rows: int) -> pd.Index:
    """The line at which each of the ``n_rows`` rows read from ``data`` (after ``skip`` lines) starts;
    ``data`` starts at line ``first_line``.  A row a line, unless a quoted field holds line breaks:
    then a row starts after each line break outside quotes."""
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if skip + n_rows != lines:
        buf = np.frombuffer(data, dtype=np.uint8)
        breaks = buf == 10
        ends = np.flatnonzero(breaks & ~np.logical_xor.accumulate(buf == 34))
        ends = ends[ends < buf.size - 1]  # a line break at the very end starts no row
        starts = np.concatenate([[0], np.searchsorted(np.flatnonzero(breaks), ends) + 1])  # lines from 0
        if starts.size == skip + n_rows:
            index: pd.Index = pd.Index(starts[skip:] + first_line)
            return index
    return pd.RangeIndex(first_line + skip, first_line + skip + n_rows)


_QUOTES_NEVER_BALANCE = 4
"""Blocks' worth of bytes after which quotes that never balance are taken for a literal quote inside an
unquoted field (which pandas reads as text), and a block ends at any line break again."""


def _outside_quotes(data: bytes) -> int:
    """Bytes of ``data`` up to its last line break outside double quotes (0: none)."""
    end = len(data)
    while (line_break := data.rfind(b"\n", 0, end)) >= 0:
        if data.count(b'"', 0, line_break) % 2 == 0:
            return line_break + 1
        end = data.rfind(b'"', 0, line_break)  # the quote opening the field that holds this line break
    return 0


def read_fields(
    path: Path,
    *,
    sep: str,
    n_fields: int,
    skip_lines: int,
    encoding: str = "utf-8",
    block_bytes: int | None = None,
) -> Iterator[pd.DataFrame]:
    """Parse a delimited file, block by block, into frames with column labels ``0..n_fields-1``.

    Every line must have exactly ``n_fields`` fields; blank lines are skipped.
    Raises :class:`DataFormatError` with the line number otherwise, and when
    the file has no data line at all.  Each frame's index holds the 1-based
    line number of its rows.
    """
    c_sep = "\x1f" if sep == "::" else sep  # the C engine takes one-character separators only
    seen_rows = False
    for data, first_line in iter_blocks(path, block_bytes, quoted=sep == ","):  # quotes: "," only
        skip = max(0, skip_lines - first_line + 1)
        if sep == "::":
            data = data.replace(b"::", b"\x1f")
        try:
            frame = pd.read_csv(
                io.BytesIO(data), sep=c_sep, header=None, names=list(range(n_fields)), skiprows=skip,
                skip_blank_lines=False, engine="c", encoding=encoding, quoting=3 if sep != "," else 0,
                keep_default_na=False, na_values=[""], on_bad_lines="error", low_memory=False,
            )  # fmt: skip
        except pd.errors.ParserError as exc:
            raise _parser_error(
                path, exc, sep, n_fields, line_offset=first_line - 1, block=data, quoted=sep == ","
            ) from exc
        except UnicodeDecodeError as exc:
            raise DataFormatError(path, f"bytes that are not {encoding} text") from exc
        frame.index = _row_lines(data, first_line, skip, len(frame))
        blank = frame.isna().all(axis=1).to_numpy()
        if blank.any():
            frame = frame.iloc[np.flatnonzero(~blank)]
        missing = frame.isna().to_numpy()
        if missing.any():
            row, col = np.argwhere(missing)[0]
            raise DataFormatError(
                path,
                f"expected {n_fields} fields separated by {sep_name(sep)}, "
                f"field {col + 1} is missing or empty",
                line=int(frame.index[row]),
            )
        if len(frame):
            seen_rows = True
            yield frame
    if not seen_rows:
        raise DataFormatError(path, "no data lines, expected rating lines")


_BAD_LINE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_OPEN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")
"""pandas counts that row from 0 in what it was given: the block, skipped lines included."""


def _parser_error(
    path: Path,
    exc: Exception,
    sep: str,
    n_fields: int,
    *,
    line_offset: int = 0,
    expected: str | None = None,
    block: bytes | None = None,
    quoted: bool = True,
) -> DataFormatError:
    """The file's problem as pandas reported it, at its line: ``line_offset`` lines come before what
    pandas was given (``block``, or else the whole file); ``quoted``: pandas read double quotes as
    quoting (then a field may span lines)."""

    def line_of(row: int) -> int:  # pandas counts records (rows from 0), a quoted field may span lines
        before = None  # unless quotes can make a record span lines: a record a line
        if quoted and block is not None:
            before = _lines_before(io.StringIO(block.decode("utf-8", errors="replace"), newline=""), sep, row)
        elif quoted and not line_offset:  # pandas was given the whole file
            with contextlib.suppress(OSError), path.open(encoding="utf-8", errors="replace", newline="") as f:
                before = _lines_before(f, sep, row)
        return (row if before is None else before) + 1 + line_offset

    m = _BAD_LINE.search(str(exc))
    if m:
        what = expected or f"{n_fields} fields separated by {sep_name(sep)}"
        got = "" if expected else f", got {m.group(3)}"
        return DataFormatError(path, f"expected {what}{got}", line=line_of(int(m.group(2)) - 1))
    if m := _OPEN_QUOTE.search(str(exc)):
        return DataFormatError(
            path, 'a double quote (") opens a field here and is never closed', line=line_of(int(m.group(1)))
        )
    return DataFormatError(path, f"cannot parse: {exc}")


def _lines_before(text: Iterable[str], sep: str, row: int) -> int | None:
    """Lines of ``text`` before its record ``row`` (from 0), records split as the csv module splits them
    (a quoted field may hold line breaks); None when it cannot tell.  Only on the way to an error."""
    if len(sep) != 1:
        return None
    reader = csv.reader(text, delimiter=sep)
    try:
        for _ in range(row):
            next(reader)
    except (StopIteration, csv.Error):
        return None
    return reader.line_num


_ID_MAX = 2**62
"""Largest id a numeric id column may hold: well inside int64, which a larger one would wrap around."""

_TIME_MAX = 2**33
"""Unix seconds beyond which (either way, about the years 1698 and 2242) a time is not one."""


def parse_ids(path: Path, column: pd.Series, field: str, *, numeric: bool) -> npt.NDArray[Any]:
    """Ids as an array: ``int64`` when ``numeric`` (error at the first non-integer), else as read."""
    values = column.to_numpy()
    if not numeric:
        return values if values.dtype.kind in "iu" else values.astype(str)
    if values.dtype.kind == "i" or (
        values.dtype.kind == "u" and (not values.size or values.max() <= _ID_MAX)
    ):
        return values.astype(np.int64, copy=False)
    as_num = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    # past 2**63 an id would wrap around in int64 (and floats stop telling integers apart at 2**53)
    bad = ~np.isfinite(as_num) | (as_num != np.floor(as_num)) | (np.abs(as_num) > _ID_MAX)
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            path,
            f"expected an integer id, got {str(values[at])!r}",
            line=int(column.index[at]),
            field=field,
        )
    return as_num.astype(np.int64)


def parse_ratings(
    path: Path,
    column: pd.Series,
    field: str,
    *,
    low: float | None,
    high: float | None,
) -> npt.NDArray[np.float32]:
    """Ratings as ``float32``; error at the first non-number or value outside ``low..high``."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            path,
            f"expected a number, got {str(column.iloc[at])!r}",
            line=int(column.index[at]),
            field=field,
        )
    if low is not None and high is not None:
        out = (values < low) | (values > high)
        if out.any():
            at = int(np.flatnonzero(out)[0])
            raise DataFormatError(
                path,
                f"must be in {low:g}..{high:g}, got {str(column.iloc[at])!r}",
                line=int(column.index[at]),
                field=field,
            )
    return values.astype(np.float32)


def parse_times(
    path: Path, column: pd.Series, field: str, *, date_format: str | None = None
) -> npt.NDArray[np.int64]:
    """Unix seconds from integer epochs or dates; error at the first unparsable value (or a number
    too far from 1970 to be a time in seconds)."""
    values = column.to_numpy()
    if values.dtype.kind in "iu":
        if not values.size or (values.min() >= -_TIME_MAX and values.max() <= _TIME_MAX):  # no copy
            return values.astype(np.int64, copy=False)
        bad = np.abs(values.astype(np.float64)) > _TIME_MAX
    elif values.dtype.kind == "f" or pd.to_numeric(column.iloc[:1], errors="coerce").notna().all():
        as_num = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(as_num) | (np.abs(as_num) > _TIME_MAX)  # a stray word is NaN here too
        if not bad.any():
            return as_num.astype(np.int64)
    else:
        parsed = pd.to_datetime(column, errors="coerce", format=date_format or "ISO8601", utc=True)
        bad = parsed.isna().to_numpy()
        if not bad.any():
            seconds = (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
            return np.asarray(seconds.to_numpy(dtype=np.int64), dtype=np.int64)
    at = int(np.flatnonzero(bad)[0])
    raise DataFormatError(
        path,
        f"expected a Unix time or a date like 2005-09-06, got {str(values[at])!r}",
        line=int(column.index[at]),
        field=field,
    )
