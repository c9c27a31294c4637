"""Pixel size and channel names recorded in TIFF / OME-TIFF metadata."""

from __future__ import annotations

import json
import re


def ome_pixel_size(ome_xml: str | None) -> float | None:
    """PhysicalSizeX of OME-XML in µm (None when absent)."""
    if not ome_xml:
        return None
    m = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', ome_xml)
    if not m:
        return None
    unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', ome_xml)
    value = float(m.group(1))
    u = unit.group(1) if unit else "µm"
    factor = {"µm": 1.0, "um": 1.0, "micron": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}.get(u, 1.0)
    return value * factor


def tiff_pixel_size(tif, page) -> float | None:
    """Pixel size from OME-XML, ImageJ metadata or the resolution tags (None when not recorded)."""
    size = ome_pixel_size(tif.ome_metadata)
    if size:
        return size
    tags = page.tags
    if "XResolution" not in tags:
        return None
    num, den = tags["XResolution"].value
    if num == 0 or den == 0:
        return None
    px_per_unit = num / den
    unit = tags["ResolutionUnit"].value if "ResolutionUnit" in tags else 2
    ij = tif.imagej_metadata or {}
    if ij.get("unit") in ("micron", "um", "µm", "\\u00B5m"):
        return 1.0 / px_per_unit
    unit = int(unit)
    if unit == 3:  # centimetre
        return 1e4 / px_per_unit
    if unit in (4, 5):  # millimetre / micrometre (tifffile's RESUNIT extensions of the TIFF tag)
        return (1e3 if unit == 4 else 1.0) / px_per_unit
    if unit == 2 and px_per_unit > 1000:  # inch; ignore screen-like 72/96/300 dpi values
        return 25400.0 / px_per_unit
    return None


def channel_names_from_tiff(tif, n: int) -> list[str]:
    """Channel names from OME-XML or a JSON description (``channels`` or tifffile's ``Channel.Name``)."""
    if tif.ome_metadata:
        names = re.findall(r'<Channel [^>]*Name="([^"]*)"', tif.ome_metadata)
        if len(names) == n:
            return names
    desc = tif.pages[0].description if tif.pages else ""
    if desc.startswith("{"):
        try:
            meta = json.loads(desc)
            names = meta.get("channels") or meta.get("channel_names")
            if names is None and isinstance(meta.get("Channel"), dict):  # tifffile's shaped metadata
                names = meta["Channel"].get("Name")
            if isinstance(names, list) and len(names) == n:
                return [str(x) for x in names]
        except ValueError:
            pass
    return []
