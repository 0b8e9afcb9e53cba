"""Reading and changing titles, their availability, and members."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, or_, select, text

from openflix.errors import NotFoundError
from openflix.store.reader import HotReader
from openflix.store.schema import Title, TitleRegion

__all__ = [
    "MemberRow",
    "TitleRow",
    "get_member",
    "get_title",
    "list_titles",
    "read_member",
    "set_availability",
    "titles_by_id",
]


@dataclass(frozen=True)
class TitleRow:
    """A title as the API shows it; ``genres`` is a list of names."""

    id: int
    name: str
    year: int | None
    genres: list[str]
    regions: list[str] | None = None


@dataclass(frozen=True)
class MemberRow:
    """A member's profile."""

    id: int
    name: str
    region: str
    country: str
    revision: int = 0


def _genres(text: str) -> list[str]:
    return [g for g in text.split("|") if g]


def list_titles(
    conn: Connection,
    *,
    query: str | None = None,
    genre: str | None = None,
    year: int | None = None,
    region: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> tuple[list[TitleRow], int]:
    """One page of titles matching every given filter, ordered by id, and the total count.

    ``query`` matches words of the name case-insensitively; ``genre`` is an
    exact genre name; ``region`` keeps titles available there.
    """
    stmt = select(Title.__table__)
    if query:
        for word in query.split():
            stmt = stmt.where(Title.name.ilike(f"%{_escape(word)}%", escape="\\"))
    if genre:
        g = _escape(genre)
        stmt = stmt.where(
            or_(
                Title.genres == genre,
                Title.genres.like(f"{g}|%", escape="\\"),
                Title.genres.like(f"%|{g}", escape="\\"),
                Title.genres.like(f"%|{g}|%", escape="\\"),
            )
        )
    if year is not None:
        stmt = stmt.where(Title.year == year)
    if region:
        stmt = stmt.where(Title.id.in_(select(TitleRegion.title_id).where(TitleRegion.region == region)))
    total = conn.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = conn.execute(stmt.order_by(Title.id).limit(limit).offset(offset)).all()
    return [TitleRow(t.id, t.name, t.year, _genres(t.genres)) for t in rows], int(total)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def get_title(conn: Connection, title_id: int) -> TitleRow:
    """A title with the regions it is available in."""
    t = conn.execute(select(Title.__table__).where(Title.id == title_id)).first()
    if t is None:
        raise NotFoundError(f"title {title_id} does not exist")
    regions = conn.scalars(
        select(TitleRegion.region).where(TitleRegion.title_id == title_id).order_by(TitleRegion.region)
    ).all()
    return TitleRow(t.id, t.name, t.year, _genres(t.genres), list(regions))


_TITLES_BY_ID = select(Title.__table__).where(Title.id.in_(bindparam("ids", expanding=True)))


def titles_by_id(conn: Connection, ids: Sequence[int] | None) -> dict[int, TitleRow]:
    """The titles among ``ids`` that exist (every title for ``None``), keyed by id."""
    if ids is None:
        rows = conn.execute(select(Title.__table__)).all()
    elif not ids:
        return {}
    else:  # one expanding parameter: no per-id clause to build
        rows = conn.execute(_TITLES_BY_ID, {"ids": [int(i) for i in ids]}).all()
    return {t.id: TitleRow(t.id, t.name, t.year, _genres(t.genres)) for t in rows}


def set_availability(conn: Connection, title_id: int, regions: Sequence[str]) -> TitleRow:
    """Make a title available in exactly ``regions``."""
    get_title(conn, title_id)
    conn.execute(delete(TitleRegion).where(TitleRegion.title_id == title_id))
    if regions:
        conn.execute(insert(TitleRegion), [{"title_id": title_id, "region": r} for r in sorted(set(regions))])
    return get_title(conn, title_id)


_MEMBER_SQL = "SELECT id, name, region, country, revision FROM members WHERE id = :id"


def read_member(reader: HotReader, member_id: int) -> MemberRow:
    """:func:`get_member` through the request-path reader (see :mod:`openflix.store.reader`)."""
    return _member(reader.rows(_MEMBER_SQL, {"id": member_id}), member_id)


def get_member(conn: Connection, member_id: int) -> MemberRow:
    """A member's profile, with its revision."""
    return _member(conn.execute(text(_MEMBER_SQL), {"id": member_id}).all(), member_id)


def _member(rows: Sequence[Any], member_id: int) -> MemberRow:
    if not rows:
        raise NotFoundError(f"member {member_id} does not exist")
    m = rows[0]
    return MemberRow(int(m[0]), m[1], m[2], m[3], int(m[4]))
