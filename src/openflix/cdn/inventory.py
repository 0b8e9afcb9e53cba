"""The network gear steering decides over: sites and appliances, as plain frozen values.

Units: storage in TB, throughput in Gbps, coordinates in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Appliance", "ApplianceStatus", "Site", "SiteKind"]


class SiteKind(StrEnum):
    """Where a site is: inside an ISP's network, or at an internet exchange."""

    EMBEDDED = "embedded"
    EXCHANGE = "exchange"


class ApplianceStatus(StrEnum):
    """An appliance's administrative state; only ``active`` ones are steered to."""

    ACTIVE = "active"
    DRAINING = "draining"
    OFFLINE = "offline"
    FAILED = "failed"


@dataclass(frozen=True)
class Site:
    """A place appliances stand: an ISP's embedded site or an exchange site, in a region."""

    id: int
    name: str
    kind: SiteKind
    region: str
    country: str = ""
    latitude: float = 0.0
    longitude: float = 0.0
    timezone: str = "UTC"


@dataclass(frozen=True)
class Appliance:
    """A cache appliance at a site, with the hostname its URLs use."""

    id: int
    site_id: int
    hostname: str
    status: ApplianceStatus = ApplianceStatus.ACTIVE
