"""What the dock decides without widgets: band mapping guesses, unmet model needs, algorithm parameters.

Kept free of Qt so it is tested directly; the dock only reads its widgets into these functions and hands the
parameters to the Processing algorithms (it holds no processing logic).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..core.bands import OPTICAL_KEYS, map_optical_bands
from ..core.bands import guess_sensor as _core_guess_sensor
from ..core.features import Available
from ..core.features import unmet_needs as _core_unmet_needs
from ..core.spectral import SENSORS
from ..processing_provider.band_importance import BandImportanceAlgorithm as _Imp
from ..processing_provider.map_slumps import MapSlumpsAlgorithm as _Map

SENSOR_KEYS = tuple(SENSORS)


def guess_sensor(descriptions: Sequence[str]) -> str | None:
    """A sensor key from band names (core.bands.guess_sensor); None when unclear."""
    return _core_guess_sensor(descriptions)


def guess_band_mapping(descriptions: Sequence[str], sensor: str | None = None) -> dict[str, int]:
    """1-based optical band indices for blue…swir2, read from band descriptions by core.bands.

    Keys that cannot be told are left out (never a default 1, 2, 3 …): the panel leaves those bands unset,
    and the algorithm reads them from the file or asks for them.
    """
    return dict(map_optical_bands(descriptions, sensor).bands)


def unmet_needs(
    bands: Sequence[str],
    has_thermal: bool,
    has_dem: bool,
    has_series_or_fti: bool,
    mapped: dict[str, int],
    sensor: str,
) -> list[str]:
    """Why the chosen layers cannot supply a model's bands: one message per problem (empty: all fine).

    The rule is the feature catalogue's (core.features.unmet_needs); this only adapts the panel's choices.
    """
    available = Available(
        optical_bands=frozenset(k for k in OPTICAL_KEYS if k in mapped),
        thermal=has_thermal,
        dem=has_dem,
        fti_source=has_series_or_fti,
        sensor=sensor,
    )
    return [u.message[0].upper() + u.message[1:] + "." for u in _core_unmet_needs(bands, available)]


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
        _Map.MODEL: model,
        _Map.OPTICAL: optical,
        _Map.THERMAL: thermal,
        _Map.DEM: dem,
        _Map.TEMPERATURE_SERIES: series,
        _Map.SENSOR: SENSOR_KEYS.index(sensor),
        _Map.DEVICE: device,
        _Map.THRESHOLD: threshold,
        _Map.MIN_AREA: min_area,
        _Map.STACK: os.path.join(folder, "fused_stack.tif"),
        _Map.PROBABILITY: os.path.join(folder, "slump_probability.tif"),
        _Map.MASK: os.path.join(folder, "slump_mask.tif"),
        _Map.POLYGONS: os.path.join(folder, "thaw_slumps.gpkg"),
    }
    for key in OPTICAL_KEYS:
        params[f"BAND_{key.upper()}"] = mapped.get(key)
    return params


def importance_parameters(
    model: str, stack: object, truth: object, method: int, repeats: int, device: int, folder: str
) -> dict:
    """Parameters of rtsfusion:bandimportance for the dock's choices."""
    return {
        _Imp.MODEL: model,
        _Imp.STACK: stack,
        _Imp.TRUTH: truth,
        _Imp.METHOD: method,
        _Imp.REPEATS: repeats,
        _Imp.SEED: 0,
        _Imp.DEVICE: device,
        _Imp.OUTPUT: "TEMPORARY_OUTPUT",
        _Imp.CSV: os.path.join(folder, "band_importance.csv"),
        _Imp.CHART: os.path.join(folder, "band_importance.png"),
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
