"""Typed settings with embedded defaults, overridden by ``OPENFLIX_*`` environment variables.

===========================  ===========================================  ==========================
variable                     meaning                                      default
===========================  ===========================================  ==========================
``OPENFLIX_DATA``            the dataset ``make run`` and ``--data`` use  the bundled latest-small
``OPENFLIX_MODEL``           the default model's name                     ``sequential``
``OPENFLIX_DATASETS_URL``    where ``openflix data fetch`` downloads      GroupLens' file server
``OPENFLIX_SEED``            seed of every random choice                  ``42``
``OPENFLIX_DATABASE_URL``    SQLAlchemy URL of the database               ``sqlite:///openflix.db``
``OPENFLIX_REDIS_URL``       Redis for jobs and rate limits               empty: jobs run in-process
``OPENFLIX_ARTIFACTS``       model artifacts: a directory or s3://b/p     ``artifacts``
``OPENFLIX_REGIONS``         regions members are assigned to on import    ``us,ca,br,gb,de,jp``
``OPENFLIX_RATE_LIMIT``      requests allowed per token                   ``6000/minute``
``OPENFLIX_MAX_BODY_MB``     largest request body accepted (MB)           ``16``
``OPENFLIX_MODEL_POLL``      how often servers look for a promotion (s)   ``2.0``
``OPENFLIX_RETRAIN_AT``      daily retrain time, HH:MM UTC, or ``off``    ``03:00``
``OPENFLIX_TOPOLOGY``        the CDN topology ``make run`` imports        the bundled sample
``OPENFLIX_HEALTH_STALE_S``  a health report older than this is unknown   ``300``
``OPENFLIX_URL_KEYS``       URL signing keys ``id:hex,…``; first signs   a generated local key file
``OPENFLIX_URL_TTL_S``       how long a signed playback URL is valid (s)  ``21600``
``OPENFLIX_ORIGIN_URL``      the origin's root, when no appliance can     ``https://origin.openflix.example/v1``
                             serve (its URLs signed for appliance 0)
``OPENFLIX_TITLE_GB``       storage one title takes on an appliance, GB  ``100``
``OPENFLIX_FILL``            fill each site in its window, or ``off``     ``on``
===========================  ===========================================  ==========================
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from openflix.errors import ConfigError

__all__ = ["Settings", "bundled_data", "project_root"]


def project_root() -> Path:
    """The source checkout's root (where ``data/`` lives)."""
    return Path(__file__).resolve().parents[2]


def bundled_data() -> Path:
    """The bundled MovieLens latest-small folder."""
    return project_root() / "data" / "ml-latest-small"


@dataclass(frozen=True)
class Settings:
    """What openflix needs to know about its environment."""

    data: Path = field(default_factory=bundled_data)
    model: str = "sequential"
    datasets_url: str = "https://files.grouplens.org/datasets/movielens"
    seed: int = 42
    database_url: str = "sqlite:///openflix.db"
    redis_url: str = ""
    artifacts: str = "artifacts"
    regions: str = "us,ca,br,gb,de,jp"
    rate_limit: str = "6000/minute"
    max_body_mb: float = 16.0
    model_poll: float = 2.0
    retrain_at: str = "03:00"
    topology: Path = field(default_factory=lambda: project_root() / "data" / "topology.yaml")
    health_stale_s: float = 300.0
    url_keys: str = ""
    url_ttl_s: float = 21_600.0
    origin_url: str = "https://origin.openflix.example/v1"
    title_gb: float = 100.0
    fill: str = "on"

    @property
    def region_list(self) -> tuple[str, ...]:
        """The configured regions, in order."""
        return tuple(r.strip() for r in self.regions.split(",") if r.strip())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, prefix: str = "OPENFLIX_") -> Settings:
        """Defaults overridden by ``OPENFLIX_<FIELD>`` variables.

        A malformed value raises :class:`ConfigError`.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(prefix + f.name.upper())
            if raw is None or raw == "":
                continue
            kind = Path if f.name in ("data", "topology") else type(getattr(cls, f.name))
            try:
                values[f.name] = value = Path(raw) if issubclass(kind, Path) else kind(raw)
            except ValueError as exc:
                raise ConfigError(
                    f"{prefix}{f.name.upper()}={raw!r} is not a valid {kind.__name__}; "
                    "fix or unset the variable"
                ) from exc
            if isinstance(value, int | float) and not (math.isfinite(value) and value >= 0):
                raise ConfigError(
                    f"{prefix}{f.name.upper()}={raw!r}: expected a finite number >= 0; fix or unset it"
                )
            if f.name in _POSITIVE and value == 0:
                raise ConfigError(f"{prefix}{f.name.upper()}={raw!r}: expected a number > 0; fix or unset it")
            if f.name in _CHOICES and str(value).strip().lower() not in _CHOICES[f.name]:
                words = " or ".join(_CHOICES[f.name])
                raise ConfigError(f"{prefix}{f.name.upper()}={raw!r}: expected {words}; fix or unset it")
            if f.name in _AT_MOST and value > (most := _AT_MOST[f.name]):  # type: ignore[operator]
                raise ConfigError(
                    f"{prefix}{f.name.upper()}={raw!r}: expected at most {most:,.0f}; fix or unset it"
                )
        return cls(**values)  # type: ignore[arg-type]


_POSITIVE = frozenset({"max_body_mb", "health_stale_s", "url_ttl_s", "title_gb"})
"""Settings for which 0 means nothing sensible (a size, a lifetime, an age); every number is >= 0."""
_CHOICES = {"fill": ("on", "off")}
"""Settings that take one of a few words (any case): anything else would silently mean the default."""
_AT_MOST = {"url_ttl_s": 365 * 86_400.0}
"""Upper bounds: a playback URL valid for over a year (1e30 s: past what the signer takes) is a typo."""
