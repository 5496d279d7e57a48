"""Which project rasters are the optical image, thermal layer, DEM and temperature series (no Qt: tested directly)."""

from __future__ import annotations

import re
from collections.abc import Sequence

_DATE = re.compile(r"\d{4}-\d{2}(-\d{2})?")
_ROLE_NAMES = {
    "series": r"series|monthly|daily|era5|air[ _-]?temp",
    "dem": r"\bdem\b|\bdtm\b|\bdsm\b|srtm|elev|height|arcticdem|copdem|gdem|terrain",
    "thermal": r"thermal|\blst\b|\btir\b|st_b10|surface[ _-]?temp|brightness[ _-]?temp|_b10\b|_b6\b",
    "optical": r"optical|sentinel|\bs2\b|landsat|\bl[5789]\b|rgb|multispectral|\bsr\b|\btoa\b|image|planet|msi",
}
_OPTICAL_BANDS = r"\b(blue|green|red|nir|swir\w*|b0?[1-9]|b1[0-2]|b8a|sr_b\d)\b"
_NOT_INPUT = r"stack|probab|slump|mask|result"


def guess_layer_roles(layers: Sequence[tuple[str, Sequence[str]]]) -> dict[str, int]:
    """Which raster (by index) is the optical image, thermal layer, DEM and temperature series.

    Read from layer names (``dem``, ``SRTM``, ``LST``, ``thermal``, ``series`` …) and band descriptions (dates
    for a series; Blue/NIR/B4 … for optical). A layer gets one role at most; a role nothing points to is left
    out rather than filled with any layer (a DEM is never guessed as the optical image). Results of earlier runs
    (stack, probability, mask) are skipped.

    Args:
        layers: (layer name, band descriptions) of each raster layer.

    Returns:
        Role ("optical", "thermal", "dem", "series") → index into `layers`.

    """
    roles: dict[str, int] = {}
    taken: set[int] = set()

    def pick(role: str, test) -> None:
        for i, (name, descriptions) in enumerate(layers):
            if i not in taken and role not in roles and test(name.lower(), [d.lower() for d in descriptions]):
                roles[role] = i
                taken.add(i)

    def named(role: str):
        return lambda name, _d: re.search(_ROLE_NAMES[role], name) is not None and not re.search(_NOT_INPUT, name)

    def dated(_name: str, descriptions: list[str]) -> bool:
        return len(descriptions) >= 3 and sum(bool(_DATE.search(d)) for d in descriptions) >= 0.8 * len(descriptions)

    def optical_bands(name: str, descriptions: list[str]) -> bool:
        hits = sum(bool(re.search(_OPTICAL_BANDS, d)) for d in descriptions)
        return len(descriptions) >= 3 and hits >= 3 and not re.search(_NOT_INPUT, name)

    pick("series", dated)
    pick("series", lambda n, d: named("series")(n, d) and len(d) >= 3)
    pick("optical", optical_bands)
    pick("optical", lambda n, d: named("optical")(n, d) and len(d) >= 3)
    pick("dem", lambda n, d: named("dem")(n, d) and len(d) == 1)
    pick("thermal", lambda n, d: named("thermal")(n, d) and len(d) <= 2)
    pick("thermal", lambda n, d: len(d) == 1 and any("lst" in x or "thermal" in x for x in d))
    pick("dem", lambda n, d: len(d) == 1 and any(re.search(r"elev|height|\bdem\b", x) for x in d))
    return roles
