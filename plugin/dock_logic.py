"""What the dock decides without widgets: band mapping guesses, unmet model needs, algorithm parameters.

Kept free of Qt so it is tested directly; the dock only reads its widgets into these functions and hands the
parameters to the Processing algorithms (it holds no processing logic).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from ..core.features import FEATURES
from ..core.spectral import SENSORS, TASSELED_CAP
from ..core.stack import OPTICAL_KEYS

SENSOR_KEYS = tuple(SENSORS)
# Band numbers of each optical key per sensor (blue, green, red, nir, swir1, swir2).
SENSOR_BANDS = {
    "sentinel2": ("2", "3", "4", "8", "11", "12"),
    "landsat8": ("2", "3", "4", "5", "6", "7"),
    "landsat5": ("1", "2", "3", "4", "5", "7"),
}
NAME_PATTERNS = {
    "blue": r"\bblue\b",
    "green": r"\bgreen\b",
    "red": r"\bred\b",
    "nir": r"\bnir\b|near[ _-]?infra",
    "swir1": r"swir[ _-]?1\b|swir[ _-]?16",
    "swir2": r"swir[ _-]?2\b|swir[ _-]?22",
}


def guess_sensor(descriptions: Sequence[str]) -> str | None:
    """A sensor key from band names: Sentinel-2 (B8A, B11, B12) or Landsat (SR_B*); None when unclear."""
    text = " ".join(d.upper() for d in descriptions)
    if re.search(r"\bB(8A|11|12)\b", text) or re.search(r"\bB0\d\b", text):
        return "sentinel2"
    if "SR_B" in text or re.search(r"\bB10\b", text):
        return "landsat8"
    return None


def _band_number(description: str) -> str | None:
    m = re.search(r"(?:^|[^A-Z0-9])(?:SR_)?B0?(\d{1,2}A?)\b", description.upper())
    return m.group(1) if m else None


def guess_band_mapping(descriptions: Sequence[str], sensor: str | None = None) -> dict[str, int]:
    """1-based optical band indices for blue…swir2, guessed from band descriptions.

    Plain names (Blue, NIR, SWIR1 …) win; otherwise sensor band codes (B2/B02/SR_B2 …) are read for the given
    or guessed sensor. Keys not found are left out; with nothing recognised, bands 1–6 in order (the
    algorithms' default) are returned for as many bands as the layer has.
    """
    found: dict[str, int] = {}
    for i, d in enumerate(descriptions, 1):
        low = d.lower()
        for key, pattern in NAME_PATTERNS.items():
            if key not in found and re.search(pattern, low) and not (key == "red" and "edge" in low):
                found[key] = i
    sensor = sensor if sensor in SENSOR_BANDS else guess_sensor(descriptions)
    if sensor in SENSOR_BANDS:
        numbers = {_band_number(d): i for i, d in enumerate(descriptions, 1) if _band_number(d)}
        for key, number in zip(OPTICAL_KEYS, SENSOR_BANDS[sensor]):
            if key not in found and number in numbers:
                found[key] = numbers[number]
    if not found:
        return {key: i for i, key in enumerate(OPTICAL_KEYS, 1) if i <= len(descriptions)}
    return found


def unmet_needs(
    bands: Sequence[str],
    has_thermal: bool,
    has_dem: bool,
    has_series_or_fti: bool,
    mapped: dict[str, int],
    sensor: str,
) -> list[str]:
    """Why the chosen layers cannot supply a model's bands: one message per problem (empty: all fine)."""
    problems = []
    unknown = [b for b in bands if b not in FEATURES]
    if unknown:
        problems.append(f"The model needs bands this plugin cannot derive: {', '.join(unknown)}.")
    needs: dict[str, list[str]] = {}
    for b in bands:
        for need in FEATURES[b].needs if b in FEATURES else ():
            needs.setdefault(need, []).append(b)
    if "lst" in needs and not has_thermal:
        problems.append(f"{', '.join(needs['lst'])} need(s) a thermal layer.")
    if "dem" in needs and not has_dem:
        problems.append(f"{', '.join(needs['dem'])} need(s) a DEM.")
    if "fti_source" in needs and not has_series_or_fti:
        problems.append(f"{', '.join(needs['fti_source'])} need(s) a temperature series (or an FTI raster).")
    for key in OPTICAL_KEYS:
        if key in needs and key not in mapped:
            problems.append(f"{', '.join(needs[key])} need(s) the {key.upper()} band: map it.")
    if any(b in ("TCB", "TCG", "TCW") for b in bands) and sensor not in TASSELED_CAP:
        problems.append(
            f"Tasseled Cap bands need a sensor with published coefficients, not {SENSORS.get(sensor, sensor)}."
        )
    return problems


def map_parameters(
    model: str,
    optical: object,
    thermal: object | None,
    dem: object | None,
    series: object | None,
    mapped: dict[str, int],
    sensor: str,
    device: int,
    threshold: float | None,
    min_area: float,
    folder: str,
) -> dict:
    """Parameters of rtsfusion:mapslumps for the dock's choices; outputs go to `folder`."""
    params = {
        "MODEL": model,
        "OPTICAL": optical,
        "THERMAL": thermal,
        "DEM": dem,
        "TEMPERATURE_SERIES": series,
        "SENSOR": SENSOR_KEYS.index(sensor),
        "DEVICE": device,
        "THRESHOLD": threshold,
        "MIN_AREA": min_area,
        "STACK": os.path.join(folder, "fused_stack.tif"),
        "PROBABILITY": os.path.join(folder, "slump_probability.tif"),
        "MASK": os.path.join(folder, "slump_mask.tif"),
        "POLYGONS": os.path.join(folder, "thaw_slumps.gpkg"),
    }
    for key in OPTICAL_KEYS:
        params[f"BAND_{key.upper()}"] = mapped.get(key)
    return params


def importance_parameters(
    model: str, stack: object, truth: object, method: int, repeats: int, device: int, folder: str
) -> dict:
    """Parameters of rtsfusion:bandimportance for the dock's choices."""
    return {
        "MODEL": model,
        "STACK": stack,
        "TRUTH": truth,
        "METHOD": method,
        "REPEATS": repeats,
        "SEED": 0,
        "DEVICE": device,
        "OUTPUT": "TEMPORARY_OUTPUT",
        "CSV": os.path.join(folder, "band_importance.csv"),
        "CHART": os.path.join(folder, "band_importance.png"),
    }


def read_importance_csv(path: str) -> list[dict]:
    """Rows of a band-importance CSV (numbers parsed; empty cells None)."""
    import csv

    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            row: dict = {}
            for k, v in r.items():
                if v == "":
                    row[k] = None
                elif k in ("rank", "samples"):
                    row[k] = int(v)
                elif k in ("importance", "std", "f1_drop", "iou_drop", "iou_std"):
                    row[k] = float(v)
                else:
                    row[k] = v
            rows.append(row)
    return rows
