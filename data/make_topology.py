"""Write the sample Open Connect topology, ``data/topology.yaml`` (deterministic).

Six regions (the regions members are assigned to), 11 exchange sites, 19 ISPs
with 2-3 embedded sites each (45), 222 appliances of three models; every site
in its city's own time zone, so each fills in its local night.  Addresses
come from private and documentation ranges: each ISP announces its own
``10.<isp>.0.0/16`` (and an IPv6 ``2001:db8:<isp>::/48``) to all of its sites,
and one more specific block per site, so nested prefixes are exercised; each
region owns ``172.<16+r>.0.0/16`` for clients no ISP announces.

    python data/make_topology.py [OUT]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

REGIONS: list[dict[str, Any]] = [
    {
        "region": "us", "country": "US",
        "exchange": [("ix-nyc", 40.71, -74.01, "America/New_York"),
                     ("ix-chi", 41.88, -87.63, "America/Chicago"),
                     ("ix-lax", 34.05, -118.24, "America/Los_Angeles")],
        "isps": [("Northwind", ["bos", "nyc", "phl"]), ("Bluepeak", ["dal", "hou", "atl"]),
                 ("Cascade", ["sea", "pdx"]), ("Sierra", ["sfo", "lax", "sd"]), ("Prairie", ["chi", "den"])],
    },
    {
        "region": "ca", "country": "CA",
        "exchange": [("ix-tor", 43.65, -79.38, "America/Toronto")],
        "isps": [("Maple", ["tor", "mtl"]), ("Borealis", ["van", "cgy"])],
    },
    {
        "region": "br", "country": "BR",
        "exchange": [("ix-sao", -23.55, -46.63, "America/Sao_Paulo"),
                     ("ix-rio", -22.91, -43.17, "America/Sao_Paulo")],
        "isps": [("Ipe", ["sao", "cps", "rio"]), ("Jacaranda", ["bsb", "bhz"]), ("Sabia", ["poa", "cwb"])],
    },
    {
        "region": "gb", "country": "GB",
        "exchange": [("ix-lon", 51.51, -0.13, "Europe/London"), ("ix-man", 53.48, -2.24, "Europe/London")],
        "isps": [("Thames", ["lon", "bri", "cam"]), ("Pennine", ["man", "lds"]), ("Clyde", ["gla", "edi"])],
    },
    {
        "region": "de", "country": "DE",
        "exchange": [("ix-fra", 50.11, 8.68, "Europe/Berlin")],
        "isps": [("Rheinnetz", ["fra", "cgn", "stu"]), ("Spree", ["ber", "ham"]), ("Isar", ["muc", "nue"])],
    },
    {
        "region": "jp", "country": "JP",
        "exchange": [("ix-tyo", 35.68, 139.69, "Asia/Tokyo"), ("ix-osa", 34.69, 135.50, "Asia/Tokyo")],
        "isps": [("Sakura", ["tyo", "yok", "sai"]), ("Kaede", ["osa", "kob"]), ("Fuji", ["ngo", "fuk"])],
    },
]  # fmt: skip

CITY = {
    "bos": (42.36, -71.06), "nyc": (40.71, -74.01), "phl": (39.95, -75.17), "dal": (32.78, -96.80),
    "hou": (29.76, -95.37), "atl": (33.75, -84.39), "sea": (47.61, -122.33), "pdx": (45.52, -122.68),
    "sfo": (37.77, -122.42), "lax": (34.05, -118.24), "sd": (32.72, -117.16), "chi": (41.88, -87.63),
    "den": (39.74, -104.99), "tor": (43.65, -79.38), "mtl": (45.50, -73.57), "van": (49.28, -123.12),
    "cgy": (51.05, -114.07), "sao": (-23.55, -46.63), "cps": (-22.91, -47.06), "rio": (-22.91, -43.17),
    "bsb": (-15.79, -47.88), "bhz": (-19.92, -43.94), "poa": (-30.03, -51.23), "cwb": (-25.43, -49.27),
    "lon": (51.51, -0.13), "bri": (51.45, -2.59), "cam": (52.21, 0.12), "man": (53.48, -2.24),
    "lds": (53.80, -1.55), "gla": (55.86, -4.25), "edi": (55.95, -3.19), "fra": (50.11, 8.68),
    "cgn": (50.94, 6.96), "stu": (48.78, 9.18), "ber": (52.52, 13.40), "ham": (53.55, 9.99),
    "muc": (48.14, 11.58), "nue": (49.45, 11.08), "tyo": (35.68, 139.69), "yok": (35.44, 139.64),
    "sai": (35.86, 139.65), "osa": (34.69, 135.50), "kob": (34.69, 135.20), "ngo": (35.18, 136.91),
    "fuk": (33.59, 130.40),
}  # fmt: skip

ZONE = {  # the cities whose time zone is not their region's first exchange site's
    "dal": "America/Chicago", "hou": "America/Chicago", "chi": "America/Chicago", "den": "America/Denver",
    "sea": "America/Los_Angeles", "pdx": "America/Los_Angeles", "sfo": "America/Los_Angeles",
    "lax": "America/Los_Angeles", "sd": "America/Los_Angeles", "van": "America/Vancouver",
    "cgy": "America/Edmonton",
}  # fmt: skip

MODELS = [
    {"name": "storage-280", "kind": "storage", "storage_tb": 280, "throughput_gbps": 18,
     "disks": 36, "nics": 2, "psus": 2},
    {"name": "flash-36", "kind": "flash", "storage_tb": 36, "throughput_gbps": 100, "disks": 12, "nics": 2,
     "psus": 2},
    {"name": "global-120", "kind": "global", "storage_tb": 120, "throughput_gbps": 10, "disks": 12, "nics": 1,
     "psus": 1},
]  # fmt: skip


def build() -> dict[str, Any]:
    """The topology document."""
    sites: list[dict[str, Any]] = []
    isps: list[dict[str, Any]] = []
    announcements: list[dict[str, Any]] = []
    appliances: list[dict[str, Any]] = []
    regions = []

    def add_appliances(site: str, model: str, count: int) -> None:
        for _ in range(count):
            n = len(appliances) + 1
            status = "active"
            if n % 41 == 7:
                status = "draining"
            elif n % 67 == 11:
                status = "offline"
            appliance: dict[str, Any] = {
                "serial": f"OCA-{n:05d}",
                "site": site,
                "model": model,
                "hostname": f"oca-{n:05d}.{site}.openflix.example",
                "status": status,
            }
            appliances.append(appliance)

    isp_number = 0
    for r, spec in enumerate(REGIONS):
        region, country = spec["region"], spec["country"]
        regions.append({"name": region, "prefixes": [f"172.{16 + r}.0.0/16", f"2001:db8:ff{r:02x}::/48"]})
        for name, lat, lon, zone in spec["exchange"]:
            sites.append(
                {"name": name, "kind": "exchange", "region": region, "country": country, "latitude": lat,
                 "longitude": lon, "timezone": zone, "fill_window": "02:00-06:00"}
            )  # fmt: skip
            add_appliances(name, "storage-280", 8)
            add_appliances(name, "flash-36", 2)
        for isp_name, cities in spec["isps"]:
            isp_number += 1
            isps.append({"name": isp_name, "asn": 64511 + isp_number})
            for i, city in enumerate(cities):
                site = f"{isp_name.lower()}-{city}"
                lat, lon = CITY[city]
                sites.append(
                    {"name": site, "kind": "embedded", "region": region, "country": country, "latitude": lat,
                     "longitude": lon, "timezone": ZONE.get(city, spec["exchange"][0][3]),
                     "fill_window": "03:00-07:00", "isp": isp_name}
                )  # fmt: skip
                announcements.append(
                    {
                        "isp": isp_name,
                        "site": site,
                        "prefixes": [
                            f"10.{isp_number}.0.0/16",
                            f"10.{isp_number}.{64 * i}.0/18",
                            f"2001:db8:{isp_number:x}::/48",
                            f"2001:db8:{isp_number:x}:{i:x}000::/52",
                        ],
                    }
                )
                add_appliances(site, "global-120", 2 + (isp_number + i) % 2)
    return {
        "default_region": "us",
        "regions": regions,
        "appliance_models": MODELS,
        "isps": isps,
        "sites": sites,
        "announcements": announcements,
        "appliances": appliances,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path(__file__).with_name("topology.yaml"))
    out = parser.parse_args(argv).out
    header = "# The sample Open Connect topology; written by data/make_topology.py.\n"
    out.write_text(header + yaml.safe_dump(build(), sort_keys=False, default_flow_style=None, width=110))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
