"""A whole Open Connect topology as one document: parsed, validated completely, or refused with every reason.

The document (JSON or YAML, the same shape) names everything by its natural key,
so it reads and diffs well and can be kept in version control::

    default_region: us
    regions:            # prefixes of whole regions, for clients no ISP announces
      - {name: us, prefixes: [100.64.0.0/12]}
    appliance_models:   # kind: storage | flash | global; TB and Gbps; component layout
      - {name: storage-280, kind: storage, storage_tb: 280, throughput_gbps: 18, disks: 36, nics: 2, psus: 2}
    isps:
      - {name: Northwind, asn: 64501}
    sites:              # kind: exchange | embedded (an embedded site belongs to an ISP)
      - {name: ix-nyc, kind: exchange, region: us, country: US, latitude: 40.7, longitude: -74.0,
         timezone: America/New_York, fill_window: "02:00-06:00"}
      - {name: northwind-bos, kind: embedded, isp: Northwind, region: us, ...}
    announcements:      # what an ISP announces over BGP to one of its embedded sites
      - {isp: Northwind, site: northwind-bos, prefixes: [10.1.0.0/16, "2001:db8:1::/48"]}
    appliances:         # status: active | draining | offline | failed
      - {serial: OCA-0001, site: ix-nyc, model: storage-280, hostname: oca-0001.ix-nyc.example,
         status: active}

An appliance gets its model's components (``disk0``… ``nic0``… ``psu0``…, all
``ok``) unless it lists its own ``components: [{name, kind, status}]``.

:func:`parse` checks everything before anything is used — types, ranges,
unknown or duplicate names, a prefix announced by two ISPs (nested prefixes
are fine), an announcement to another ISP's site — and raises one
:class:`~openflix.errors.DataError` listing every problem with its place in the
document (``sites[3].latitude``) and, when the text is given, its line.

An import makes the inventory equal to the document, so the document must be
whole: every section is required (an empty one is written ``[]``), and a key
given twice in one mapping — which JSON and YAML readers silently resolve to
the last — is refused with both lines, rather than dropping the first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import yaml

from openflix import timeofday
from openflix.cdn.inventory import ApplianceStatus, SiteKind
from openflix.cdn.prefixes import normalize_prefix
from openflix.errors import DataError

__all__ = [
    "ApplianceDoc",
    "ComponentDoc",
    "ComponentKind",
    "ComponentStatus",
    "DocPath",
    "ISPDoc",
    "ModelDoc",
    "RegionDoc",
    "SiteDoc",
    "Topology",
    "dump",
    "load_file",
    "parse",
]

MAX_ERRORS = 25
"""Problems listed in one error message (the count of the rest follows)."""

COMPONENT_KINDS = ("disk", "nic", "psu")
COMPONENT_STATUSES = ("ok", "degraded", "failed")
MODEL_KINDS = ("storage", "flash", "global")
ComponentKind = str
ComponentStatus = str
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_HOST = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


@dataclass(frozen=True)
class RegionDoc:
    name: str
    prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelDoc:
    """An appliance model: storage in TB, throughput in Gbps, and how many of each component it has."""

    name: str
    kind: str
    storage_tb: float
    throughput_gbps: float
    disks: int = 0
    nics: int = 0
    psus: int = 0

    def layout(self) -> tuple[ComponentDoc, ...]:
        """The components a new appliance of this model has, all ``ok``."""
        return tuple(
            ComponentDoc(f"{kind}{i}", kind, "ok")
            for kind, count in (("disk", self.disks), ("nic", self.nics), ("psu", self.psus))
            for i in range(count)
        )


@dataclass(frozen=True)
class ISPDoc:
    name: str
    asn: int


@dataclass(frozen=True)
class SiteDoc:
    name: str
    kind: SiteKind
    region: str
    country: str = ""
    latitude: float = 0.0
    longitude: float = 0.0
    timezone: str = "UTC"
    fill_window: str = "02:00-06:00"
    isp: str | None = None


@dataclass(frozen=True)
class ComponentDoc:
    name: str
    kind: str
    status: str = "ok"


@dataclass(frozen=True)
class ApplianceDoc:
    serial: str
    site: str
    model: str
    hostname: str
    status: ApplianceStatus = ApplianceStatus.ACTIVE
    components: tuple[ComponentDoc, ...] = ()


@dataclass(frozen=True)
class AnnouncementDoc:
    isp: str
    site: str
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class Topology:
    """A validated topology: every reference resolves, every value is in range.

    Regions are sorted by name, announcements by (ISP, site) and prefixes as
    text, so two documents that say the same compare equal.
    """

    default_region: str = ""
    regions: tuple[RegionDoc, ...] = ()
    models: tuple[ModelDoc, ...] = ()
    isps: tuple[ISPDoc, ...] = ()
    sites: tuple[SiteDoc, ...] = ()
    announcements: tuple[AnnouncementDoc, ...] = ()
    appliances: tuple[ApplianceDoc, ...] = field(default=())

    def to_document(self) -> dict[str, Any]:
        """The plain document :func:`parse` reads back into an equal topology."""
        layouts = {m.name: m.layout() for m in self.models}

        def appliance(a: ApplianceDoc) -> dict[str, Any]:
            out: dict[str, Any] = {
                "serial": a.serial,
                "site": a.site,
                "model": a.model,
                "hostname": a.hostname,
                "status": str(a.status),
            }
            if a.components != layouts.get(a.model):
                out["components"] = [c.__dict__.copy() for c in a.components]
            return out

        def site(s: SiteDoc) -> dict[str, Any]:
            out = {**s.__dict__, "kind": str(s.kind)}
            if s.isp is None:
                del out["isp"]
            return out

        return {
            "default_region": self.default_region,
            "regions": [{"name": r.name, "prefixes": list(r.prefixes)} for r in self.regions],
            "appliance_models": [m.__dict__.copy() for m in self.models],
            "isps": [i.__dict__.copy() for i in self.isps],
            "sites": [site(s) for s in self.sites],
            "announcements": [
                {"isp": a.isp, "site": a.site, "prefixes": list(a.prefixes)} for a in self.announcements
            ],
            "appliances": [appliance(a) for a in self.appliances],
        }


def dump(topology: Topology, fmt: str) -> str:
    """The topology as ``json`` or ``yaml`` text."""
    doc = topology.to_document()
    if fmt == "json":
        return json.dumps(doc, indent=1) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=110)
    raise DataError(f"topology format must be json or yaml (got {fmt!r})")


def load_file(path: str | Path) -> Topology:
    """Read and validate a topology file (``.json``, ``.yaml`` or ``.yml``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{p}: no such topology file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: cannot read the topology file as UTF-8 text: {exc}") from None
    return parse_text(text, str(p))


def parse_text(text: str, source: str = "topology") -> Topology:
    """Parse JSON or YAML text (JSON is tried first) and validate it.

    A key given twice in one mapping is refused, naming both lines.
    """
    too_deep = f"{source}: not valid JSON or YAML: lists and mappings nested too deeply to read"
    try:
        doc = json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise DataError(too_deep) from None
    except ValueError as exc:
        duplicate = isinstance(exc, _JSONDuplicateKeyError)
        try:
            doc = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
        except _YAMLDuplicateKeyError as dup:
            mark, first = dup.problem_mark, dup.context_mark
            line = f":{mark.line + 1}" if mark is not None else ""
            before = f" (first at line {first.line + 1})" if first is not None else ""
            raise DataError(f"{source}{line}: {dup.problem}{before}; give each key once") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"{source}:{mark.line + 1}" if mark is not None else source
            problem = getattr(err, "problem", None) or str(err)
            raise DataError(f"{where}: not valid JSON or YAML: {problem}") from None
        except RecursionError:
            raise DataError(too_deep) from None
        except ValueError as err:  # a value YAML's constructors refuse, e.g. an integer of 5,000 digits
            raise DataError(f"{source}: not valid JSON or YAML: {str(err).split(';')[0]}") from None
        if duplicate:  # JSON that YAML reads without the duplicate (not expected): still refused
            raise DataError(f"{source}: {exc}; give each key once") from None
    return parse(doc, source=source, text=text)


class _JSONDuplicateKeyError(ValueError):
    """A JSON object names a key twice."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _JSONDuplicateKeyError(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


class _YAMLDuplicateKeyError(yaml.constructor.ConstructorError):
    """A YAML mapping names a key twice (``context_mark``: the first, ``problem_mark``: the second)."""


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping instead of keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key: the base class says so
                break
            if first is not key_node:
                raise _YAMLDuplicateKeyError(
                    None, first.start_mark, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


DocPath = tuple[str | int, ...]
"""Where a node is in a document: keys and list indices from the root."""


class _Problems:
    """Collects every problem of a document, each with its path.

    ``roots`` names parts of the document by what the caller knows them as
    (``{("sites", 56): "body"}``: a problem at ``sites[56].timezone`` is
    reported as ``body.timezone``, without the source).  A problem about a
    value given twice keeps where it was ``first`` given: in a whole
    document that is a path and a line; where ``roots`` name the changed
    part, an entry outside it is one already stored, named by its name.
    """

    def __init__(self, roots: Mapping[DocPath, str] | None = None, doc: object = None) -> None:
        self.items: list[tuple[DocPath, str, DocPath | None]] = []
        self.roots = dict(roots or {})
        self.doc = doc

    def add(self, path: DocPath, message: str, *, first: DocPath | None = None) -> None:
        """A problem at ``path``; with ``first``, ``message`` names the value given again (``ASN 64500``)."""
        self.items.append((path, message, first))

    def rooted(self, path: DocPath) -> str | None:
        """``path`` as ``roots`` names it (``body.prefixes[1]``), or ``None`` outside them."""
        for n in range(len(path), 0, -1):
            label = self.roots.get(path[:n])
            if label is not None:
                rest = _path_text(path[n:]) if n < len(path) else ""
                return f"{label}{'' if not rest or rest.startswith('[') else '.'}{rest}"
        return None

    def _where(self, path: DocPath, source: str, line: int | None) -> str:
        rooted = self.rooted(path)
        if rooted is not None:
            return rooted
        return f"{source}:{line}: {_path_text(path)}" if line else f"{source}: {_path_text(path)}"

    def named(self, path: DocPath) -> str:
        """Another place of the document in a message: its path, or where ``roots`` name the changed
        part, its name there or the stored entry's name."""
        rooted = self.rooted(path)
        if rooted is not None:
            return rooted
        return _entry_label(self.doc, path) if self.roots else _path_text(path)

    def _again(self, message: str, first: DocPath, line: int | None) -> str:
        rooted = self.rooted(first)
        if rooted is None and self.roots:  # a stored entry has it
            return f"{message} is already used by {self.named(first)}"
        at = rooted or (f"{_path_text(first)}, line {line}" if line else _path_text(first))
        return f"{message} appears twice (first at {at})"

    def raise_if_any(self, source: str, text: str | None) -> None:
        if not self.items:
            return
        lines = _line_finder(text)
        shown = []
        for path, message, first in self.items[:MAX_ERRORS]:
            if first is not None and self.rooted(path) is None and self.rooted(first) is not None:
                path, first = first, path  # said at the request's field, naming the stored entry
            said = message if first is None else self._again(message, first, lines(first))
            shown.append(f"{self._where(path, source, lines(path))}: {said}")
        more = len(self.items) - MAX_ERRORS
        if more > 0:
            shown.append(f"... and {more} more")
        raise DataError(
            f"the topology has {len(self.items)} problem(s); nothing was written:\n  " + "\n  ".join(shown)
        )


_ENTRY_KINDS = {
    "regions": ("region", "name"),
    "appliance_models": ("appliance model", "name"),
    "isps": ("ISP", "name"),
    "sites": ("site", "name"),
    "appliances": ("appliance", "serial"),
}


def _entry_label(doc: object, path: DocPath) -> str:
    """The entry of ``doc`` at ``path`` by kind and name (``ISP 'northwind'``), else the path."""
    try:
        item = doc[path[0]][path[1]]  # type: ignore[index]
        if path[0] == "announcements":
            return f"its announcement to site {item['site']!r}"  # the message names the ISP
        kind, key = _ENTRY_KINDS[str(path[0])]
        return f"{kind} {item[key]!r}"
    except (KeyError, IndexError, TypeError):
        return _path_text(path)


def _path_text(path: Sequence[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out or "(document)"


def _line_finder(text: str | None) -> Callable[[Sequence[str | int]], int | None]:
    """path -> 1-based line of that node in ``text`` (YAML composes JSON too); ``None`` if unknown."""
    root = None
    if text is not None:
        try:
            root = yaml.compose(text)
        except yaml.YAMLError:
            root = None

    def find(path: Sequence[str | int]) -> int | None:
        node = root
        line = None
        for key in path:
            if node is None:
                break
            line = node.start_mark.line + 1
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
            else:
                node = None
        if node is not None:
            line = node.start_mark.line + 1
        return line

    return find


class _Reader:
    """Typed access to one mapping of the document, recording problems instead of raising."""

    def __init__(self, problems: _Problems, path: tuple[str | int, ...], value: object) -> None:
        self.problems = problems
        self.path = path
        self.ok = isinstance(value, Mapping)
        self.value: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
        if not self.ok:
            problems.add(path, f"expected a mapping (object), got {_kind(value)}")

    def unknown(self, known: Iterable[str]) -> None:
        extra = sorted(set(map(str, self.value)) - set(known))
        if extra:
            self.problems.add(self.path, f"unknown field(s) {', '.join(extra)}")

    def _missing(self, key: str, default: Any) -> Any:
        if default is _REQUIRED:
            self.problems.add((*self.path, key), "is required")
            return None
        return default

    def text(self, key: str, default: Any = None, pattern: re.Pattern[str] | None = None) -> Any:
        if key not in self.value or self.value[key] is None:
            return self._missing(key, default)
        v = self.value[key]
        if isinstance(v, str) and v == "" and default == "":
            return v
        if not isinstance(v, str) or not v.strip():
            self.problems.add((*self.path, key), f"expected a non-empty string, got {_kind(v)}")
            return None
        if pattern is not None and not pattern.fullmatch(v):
            self.problems.add((*self.path, key), f"{v!r} is not a valid value (expected {pattern.pattern})")
            return None
        return v

    def choice(self, key: str, options: Sequence[str], default: Any = None) -> Any:
        v = self.text(key, default)
        if v is not None and v not in options:
            self.problems.add((*self.path, key), f"expected one of {', '.join(options)}, got {v!r}")
            return None
        return v

    def number(
        self, key: str, low: float, high: float, default: Any = None, *, open_low: bool = False
    ) -> Any:
        if key not in self.value or self.value[key] is None:
            return self._missing(key, default)
        v = self.value[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or v != v:
            self.problems.add((*self.path, key), f"expected a number, got {_kind(v)}")
            return None
        if v < low or v > high or (open_low and v == low):
            bound = f"> {low:g}" if open_low else f">= {low:g}"
            self.problems.add((*self.path, key), f"expected a number {bound} and <= {high:g}, got {v!r}")
            return None
        return float(v)

    def integer(self, key: str, low: int, high: int, default: Any = None) -> Any:
        if key not in self.value or self.value[key] is None:
            return self._missing(key, default)
        v = self.value[key]
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            self.problems.add((*self.path, key), f"expected an integer in {low}..{high}, got {v!r}")
            return None
        return v

    def items(self, key: str, *, required: bool = False) -> list[tuple[tuple[str | int, ...], Any]]:
        v = self.value.get(key)
        if v is None:
            if required and self.ok:
                got = "missing" if key not in self.value else "null"
                self.problems.add((*self.path, key), f"expected a list (write [] for none), got {got}")
            return []
        if not isinstance(v, list):
            self.problems.add((*self.path, key), f"expected a list, got {_kind(v)}")
            return []
        return [((*self.path, key, i), item) for i, item in enumerate(v)]


_REQUIRED: Any = object()


def _kind(value: object) -> str:
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"[:80]


_ZONES: set[str] | None = None


def _valid_zone(name: str) -> bool:
    global _ZONES
    if _ZONES is None:
        _ZONES = available_timezones() | {"UTC"}
    if name in _ZONES:
        return True
    try:
        ZoneInfo(name)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return False
    return True


def _unique(
    problems: _Problems,
    seen: dict[str, tuple[str | int, ...]],
    key: str | None,
    where: tuple[str | int, ...],
    what: str,
    *,
    quoted: bool = True,
) -> bool:
    if key is None:
        return False
    if key in seen:
        problems.add(where, f"{what} {key!r}" if quoted else f"{what} {key}", first=seen[key])
        return False
    seen[key] = where
    return True


def parse(
    doc: object,
    *,
    source: str = "topology",
    text: str | None = None,
    roots: Mapping[DocPath, str] | None = None,
) -> Topology:
    """Validate a plain document (as loaded from JSON or YAML) into a :class:`Topology`.

    Raises :class:`~openflix.errors.DataError` listing every problem found,
    each at its path in the document (or under the name ``roots`` gives that
    part of it, e.g. ``body`` for the item a request changed).
    """
    problems = _Problems(roots, doc)
    top = _Reader(problems, (), doc)
    if not top.ok:
        problems.raise_if_any(source, text)
    top.unknown(
        ("default_region", "regions", "appliance_models", "isps", "sites", "announcements", "appliances")
    )

    regions: list[RegionDoc] = []
    region_names: dict[str, tuple[str | int, ...]] = {}
    region_prefixes: dict[str, tuple[str | int, ...]] = {}
    for path, item in top.items("regions", required=True):
        r = _Reader(problems, path, item)
        r.unknown(("name", "prefixes"))
        name = r.text("name", _REQUIRED, _NAME)
        prefixes = _prefixes(problems, r, region_prefixes, f"region {name!r}")
        if _unique(problems, region_names, name, path, "region"):
            regions.append(RegionDoc(name, tuple(sorted(prefixes))))

    models: dict[str, ModelDoc] = {}
    broken: set[str] = set()
    model_paths: dict[str, tuple[str | int, ...]] = {}
    isp_paths: dict[str, tuple[str | int, ...]] = {}
    site_paths: dict[str, tuple[str | int, ...]] = {}
    for path, item in top.items("appliance_models", required=True):
        r = _Reader(problems, path, item)
        r.unknown(("name", "kind", "storage_tb", "throughput_gbps", "disks", "nics", "psus"))
        name = r.text("name", _REQUIRED, _NAME)
        values = (
            r.choice("kind", MODEL_KINDS, _REQUIRED),
            r.number("storage_tb", 0, 10_000, _REQUIRED, open_low=True),
            r.number("throughput_gbps", 0, 10_000, _REQUIRED, open_low=True),
            r.integer("disks", 0, 1000, 0),
            r.integer("nics", 0, 64, 0),
            r.integer("psus", 0, 16, 0),
        )
        if _unique(problems, model_paths, name, path, "appliance model") and None not in values:
            models[name] = ModelDoc(name, *values)
        elif name is not None:
            broken.add(name)  # named, but wrong: its problem is listed once, not at every reference

    isps: dict[str, ISPDoc] = {}
    asns: dict[str, tuple[str | int, ...]] = {}
    for path, item in top.items("isps", required=True):
        r = _Reader(problems, path, item)
        r.unknown(("name", "asn"))
        name = r.text("name", _REQUIRED, _NAME)
        asn = r.integer("asn", 1, 4_294_967_295, _REQUIRED)
        if asn is not None:
            _unique(problems, asns, str(asn), (*path, "asn"), "ASN", quoted=False)
        if _unique(problems, isp_paths, name, path, "ISP") and asn is not None:
            isps[name] = ISPDoc(name, asn)
        elif name is not None:
            broken.add(name)

    default_region = top.text("default_region", "", _NAME) or ""
    sites: dict[str, SiteDoc] = {}
    for path, item in top.items("sites", required=True):
        r = _Reader(problems, path, item)
        r.unknown(
            ("name", "kind", "region", "country", "latitude", "longitude", "timezone", "fill_window", "isp")
        )
        name = r.text("name", _REQUIRED, _NAME)
        kind = r.choice("kind", tuple(SiteKind), _REQUIRED)
        region = r.text("region", _REQUIRED, _NAME)
        zone = r.text("timezone", "UTC")
        if zone is not None and not _valid_zone(zone):
            problems.add((*path, "timezone"), f"{zone!r} is not an IANA time zone (e.g. Europe/Amsterdam)")
            zone = None
        window = r.text("fill_window", "02:00-06:00")
        if window is not None:
            try:
                timeofday.window(window)
            except ValueError as exc:
                problems.add((*path, "fill_window"), str(exc))
                window = None
        isp = r.text("isp", None)
        if kind == SiteKind.EMBEDDED and isp is None:
            problems.add((*path, "isp"), "an embedded site must name the ISP it stands in")
        elif kind == SiteKind.EXCHANGE and isp is not None:
            problems.add((*path, "isp"), "an exchange site belongs to no ISP; remove the field")
        elif isp is not None and isp not in isps and isp not in broken:
            problems.add((*path, "isp"), f"unknown ISP {isp!r} (not in isps)")
        site_values: tuple[Any, ...] = (
            kind,
            region,
            r.text("country", "") or "",
            r.number("latitude", -90, 90, 0.0),
            r.number("longitude", -180, 180, 0.0),
            zone,
            window,
        )
        if _unique(problems, site_paths, name, path, "site") and None not in site_values:
            _, _, country, latitude, longitude, _, _ = site_values
            sites[name] = SiteDoc(
                name, SiteKind(kind), region, country, latitude, longitude, zone, window, isp
            )
        elif name is not None:
            broken.add(name)
    if default_region and sites and default_region not in {s.region for s in sites.values()}:
        problems.add(("default_region",), f"{default_region!r} is the region of no site")

    announcements: list[AnnouncementDoc] = []
    owner_of: dict[str, tuple[str, tuple[str | int, ...]]] = {}
    told: set[tuple[DocPath, str]] = set()
    for path, item in top.items("announcements", required=True):
        r = _Reader(problems, path, item)
        r.unknown(("isp", "site", "prefixes"))
        isp = r.text("isp", _REQUIRED)
        site_name = r.text("site", _REQUIRED)
        if isp is not None and isp not in isps and isp not in broken:
            problems.add((*path, "isp"), f"unknown ISP {isp!r} (not in isps)")
        site = sites.get(site_name) if site_name is not None else None
        if site_name is not None and site is None and site_name not in broken:
            problems.add((*path, "site"), f"unknown site {site_name!r} (not in sites)")
        elif site is not None and site.isp != isp:
            problems.add(
                (*path, "site"),
                f"site {site_name!r} is not an embedded site of ISP {isp!r}; "
                "an ISP announces only to its own sites",
            )
        announced: list[str] = []
        for ppath, p in r.items("prefixes"):
            prefix = _prefix(problems, ppath, p)
            if prefix is None:
                continue
            owner = owner_of.get(prefix)
            if owner is not None and owner[0] != isp:
                rule = "a prefix belongs to one ISP (nested prefixes are fine)"
                if problems.rooted(owner[1]) is not None and problems.rooted(ppath) is None:
                    # the request's prefix came first in the document: said once, at its field
                    if (owner[1], prefix) not in told:
                        told.add((owner[1], prefix))
                        where = problems.named(ppath)
                        problems.add(
                            owner[1], f"prefix {prefix} is already announced by ISP {isp!r} ({where}); {rule}"
                        )
                else:
                    where = problems.named(owner[1])
                    problems.add(
                        ppath,
                        f"prefix {prefix} is announced by ISP {owner[0]!r} ({where}) and by ISP {isp!r}; "
                        + rule,
                    )
                continue
            owner_of.setdefault(prefix, (isp, ppath))
            announced.append(prefix)
        if isp is not None and site is not None and site.isp == isp:
            announcements.append(AnnouncementDoc(isp, site_name, tuple(sorted(set(announced)))))

    appliances: list[ApplianceDoc] = []
    serials: dict[str, tuple[str | int, ...]] = {}
    hosts: dict[str, tuple[str | int, ...]] = {}
    for path, item in top.items("appliances", required=True):
        r = _Reader(problems, path, item)
        r.unknown(("serial", "site", "model", "hostname", "status", "components"))
        serial = r.text("serial", _REQUIRED, _NAME)
        site_name = r.text("site", _REQUIRED)
        model_name = r.text("model", _REQUIRED)
        host = r.text("hostname", _REQUIRED, _HOST)
        status = r.choice("status", tuple(ApplianceStatus), "active")
        if site_name is not None and site_name not in sites and site_name not in broken:
            problems.add((*path, "site"), f"unknown site {site_name!r} (not in sites)")
        model = models.get(model_name) if model_name is not None else None
        if model_name is not None and model is None and model_name not in broken:
            problems.add(
                (*path, "model"), f"unknown appliance model {model_name!r} (not in appliance_models)"
            )
        components = _components(problems, r)
        fresh_serial = _unique(problems, serials, serial, (*path, "serial"), "serial")
        fresh_host = _unique(problems, hosts, host.lower() if host else None, (*path, "hostname"), "hostname")
        if fresh_serial and fresh_host and site_name in sites and model is not None and status is not None:
            appliances.append(
                ApplianceDoc(
                    serial,
                    site_name,
                    model.name,
                    host,
                    ApplianceStatus(status),
                    components if components is not None else model.layout(),
                )
            )
    problems.raise_if_any(source, text)
    return Topology(
        default_region,
        tuple(sorted(regions, key=lambda r: r.name)),
        tuple(models.values()),
        tuple(isps.values()),
        tuple(sites.values()),
        tuple(sorted(announcements, key=lambda a: (a.isp, a.site))),
        tuple(appliances),
    )


def _prefix(problems: _Problems, path: tuple[str | int, ...], value: object) -> str | None:
    if not isinstance(value, str):
        problems.add(path, f"expected a network in CIDR form (e.g. 203.0.113.0/24), got {_kind(value)}")
        return None
    try:
        return normalize_prefix(value)
    except DataError as exc:
        problems.add(path, str(exc).removeprefix("prefix: "))
        return None


def _prefixes(
    problems: _Problems, r: _Reader, seen: dict[str, tuple[str | int, ...]], what: str
) -> tuple[str, ...]:
    out = []
    for path, p in r.items("prefixes"):
        prefix = _prefix(problems, path, p)
        if prefix is not None and _unique(problems, seen, prefix, path, "region prefix"):
            out.append(prefix)
    return tuple(out)


def _components(problems: _Problems, r: _Reader) -> tuple[ComponentDoc, ...] | None:
    if r.value.get("components") is None:
        return None
    out = []
    names: dict[str, tuple[str | int, ...]] = {}
    for path, item in r.items("components"):
        c = _Reader(problems, path, item)
        c.unknown(("name", "kind", "status"))
        name = c.text("name", _REQUIRED, _NAME)
        kind = c.choice("kind", COMPONENT_KINDS, _REQUIRED)
        status = c.choice("status", COMPONENT_STATUSES, "ok")
        if _unique(problems, names, name, path, "component") and kind is not None and status is not None:
            out.append(ComponentDoc(name, kind, status))
    return tuple(out)
