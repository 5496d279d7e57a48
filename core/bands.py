"""Which optical band holds which wavelength: read from band names, wavelengths and the sensor's band layout.

The algorithms and the panel share this one reading, and nothing is ever mapped without saying how: a
:class:`BandMapping` carries, for each wavelength key, the band and where that came from, and
:func:`describe_mapping` turns it into the line every run logs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

OPTICAL_KEYS = ("blue", "green", "red", "nir", "swir1", "swir2")

# Band numbers of each optical key per sensor (blue, green, red, nir, swir1, swir2).
SENSOR_BANDS: dict[str, tuple[str, ...]] = {
    "sentinel2": ("2", "3", "4", "8", "11", "12"),
    "landsat8": ("2", "3", "4", "5", "6", "7"),
    "landsat5": ("1", "2", "3", "4", "5", "7"),
}

# The band lists of each sensor's usual products, by band count: a file with exactly that many unnamed bands
# is read in that order (and the log says so).
SENSOR_LAYOUTS: dict[str, dict[int, tuple[str, ...]]] = {
    "sentinel2": {
        12: ("1", "2", "3", "4", "5", "6", "7", "8", "8A", "9", "11", "12"),  # L2A: all but B10
        13: ("1", "2", "3", "4", "5", "6", "7", "8", "8A", "9", "10", "11", "12"),  # L1C: all thirteen
    },
    "landsat8": {
        7: ("1", "2", "3", "4", "5", "6", "7"),  # Collection 2 L2 SR_B1..SR_B7
    },
    "landsat5": {
        6: ("1", "2", "3", "4", "5", "7"),  # reflective bands (thermal B6 left out)
        7: ("1", "2", "3", "4", "5", "6", "7"),  # all seven in band order
    },
}

NAME_PATTERNS = {
    "blue": r"\bblue\b",
    "green": r"\bgreen\b",
    "red": r"\bred\b",
    "nir": r"\bnir\b|near[ _-]?infra",
    "swir1": r"swir[ _-]?1\b|swir[ _-]?16|short[ _-]?wave[ _-]?infra[a-z]*[ _-]?1\b",
    "swir2": r"swir[ _-]?2\b|swir[ _-]?22|short[ _-]?wave[ _-]?infra[a-z]*[ _-]?2\b",
}

# Centre-wavelength windows (µm) of each key; the narrow NIR band of Sentinel-2 (B8A, 0.865 µm) also falls in
# the NIR window, so the band nearest the window's preferred centre wins.
WAVELENGTHS_UM: dict[str, tuple[float, float, float]] = {
    "blue": (0.43, 0.52, 0.49),
    "green": (0.52, 0.60, 0.56),
    "red": (0.62, 0.69, 0.665),
    "nir": (0.76, 0.90, 0.835),
    "swir1": (1.50, 1.80, 1.61),
    "swir2": (2.05, 2.40, 2.2),
}

_WAVELENGTH_KEYS = ("WAVELENGTH", "CENTRAL_WAVELENGTH", "CENTRAL_WAVELENGTH_UM", "CENTER_WAVELENGTH", "WAVELENGTH_NM")


@dataclass(frozen=True)
class BandMapping:
    """The optical band (1-based) of each wavelength key and how it was found.

    Attributes:
        bands: key (blue … swir2) → band number.
        how: key → "given", "band name", "wavelength" or "<sensor> band order for N bands".
        sensor: the sensor key used or recognised, or None.

    """

    bands: Mapping[str, int] = field(default_factory=dict)
    how: Mapping[str, str] = field(default_factory=dict)
    sensor: str | None = None

    def missing(self, keys: Sequence[str]) -> list[str]:
        """The keys among `keys` that have no band."""
        return [k for k in keys if k not in self.bands]


def guess_sensor(descriptions: Sequence[str], tags: Mapping[str, str] | None = None) -> str | None:
    """A sensor key from band names or dataset tags (Sentinel-2: B8A/B11/B12/B0x; Landsat: SR_B*); else None."""
    text = " ".join(d.upper() for d in descriptions)
    meta = " ".join(f"{k}={v}" for k, v in (tags or {}).items()).upper()
    if re.search(r"\bB(8A|11|12)\b", text) or re.search(r"\bB0\d\b", text) or "SENTINEL-2" in meta:
        return "sentinel2"
    if "SR_B" in text or re.search(r"\bB10\b", text) or re.search(r"LANDSAT_[89]|OLI", meta):
        return "landsat8"
    if re.search(r"LANDSAT_[45]|\bTM\b", meta):
        return "landsat5"
    return None


def _band_number(description: str) -> str | None:
    m = re.search(r"(?:^|[^A-Z0-9])(?:SR_)?B(?:AND)?[ _]?0?(\d{1,2}A?)\b", description.upper())
    return m.group(1) if m else None


def _wavelength_um(tags: Mapping[str, str]) -> float | None:
    for key, value in tags.items():
        if key.upper() in _WAVELENGTH_KEYS:
            try:
                v = float(str(value).split()[0])
            except (ValueError, IndexError):
                continue
            unit = str(tags.get("WAVELENGTH_UNITS", tags.get("wavelength_units", ""))).lower()
            return v / 1000.0 if (v > 100 or unit.startswith(("nm", "nano"))) else v
    return None


def map_optical_bands(
    descriptions: Sequence[str],
    sensor: str | None = None,
    band_tags: Sequence[Mapping[str, str]] | None = None,
    dataset_tags: Mapping[str, str] | None = None,
    given: Mapping[str, int] | None = None,
) -> BandMapping:
    """Read which band holds which wavelength.

    Order of evidence: bands given by the user; plain names (Blue, NIR, SWIR1 …) in the band descriptions;
    centre wavelengths in the band metadata; sensor band codes (B2/B02/SR_B2/Band 2) for the given or
    recognised sensor; and, for a file of unnamed bands, the sensor's usual band order when the band count is
    that of one of its products. Keys not found are left out: the caller refuses those it needs.

    Args:
        descriptions: the band descriptions (empty strings for unnamed bands).
        sensor: a key of SENSOR_BANDS, or None / "other" / "auto" to recognise it from the names.
        band_tags: per-band metadata (for wavelengths), in band order.
        dataset_tags: the dataset's metadata (for the sensor).
        given: bands set by the user (key → 1-based band); they win over everything read from the file.

    """
    n = len(descriptions)
    bands: dict[str, int] = {}
    how: dict[str, str] = {}

    def take(key: str, band: int, source: str) -> None:
        if key not in bands and 1 <= band <= n and band not in bands.values():
            bands[key], how[key] = band, source

    for key, band in (given or {}).items():
        if band:
            bands[key], how[key] = int(band), "given"
    for i, d in enumerate(descriptions, 1):
        low = d.lower()
        for key, pattern in NAME_PATTERNS.items():
            if re.search(pattern, low) and not (key == "red" and "edge" in low):
                take(key, i, "band name")
    if band_tags:
        waves = [(_wavelength_um(t), i) for i, t in enumerate(band_tags, 1)]
        for key, (lo, hi, centre) in WAVELENGTHS_UM.items():
            inside = [(abs(w - centre), i) for w, i in waves if w is not None and lo <= w <= hi]
            if inside:
                take(key, min(inside)[1], "wavelength")
    known = sensor if sensor in SENSOR_BANDS else guess_sensor(descriptions, dataset_tags)
    if known in SENSOR_BANDS:
        numbers = {_band_number(d): i for i, d in enumerate(descriptions, 1) if _band_number(d)}
        for key, number in zip(OPTICAL_KEYS, SENSOR_BANDS[known]):
            if number in numbers:
                take(key, numbers[number], "band name")
        layout = SENSOR_LAYOUTS[known].get(n)
        if layout and not any(d.strip() for d in descriptions):
            for key, number in zip(OPTICAL_KEYS, SENSOR_BANDS[known]):
                take(key, layout.index(number) + 1, f"usual band order of a {n}-band {known} file")
    return BandMapping(bands, how, known)


def describe_mapping(mapping: BandMapping, keys: Sequence[str] = OPTICAL_KEYS) -> str:
    """One line naming the band of each key and how it was found, e.g. 'BLUE = band 2 (band name), …'."""
    parts = [
        f"{k.upper()} = band {mapping.bands[k]} ({mapping.how.get(k, 'given')})" for k in keys if k in mapping.bands
    ]
    return ", ".join(parts) if parts else "no optical band mapped"
