"""Thermal features: land-surface temperature from several encodings, its anomaly, and the freeze–thaw index."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import FeatureError

KELVIN_OFFSET = 273.15


@dataclass(frozen=True)
class ThermalSpec:
    """How to turn the thermal raster's values into land-surface temperature.

    value × scale + offset gives a temperature in ``unit`` ("K" or "C"); when ``k1`` and ``k2`` are given
    it gives at-sensor radiance instead, converted to brightness temperature with the Planck constants
    of the band (e.g. Landsat TM band 6: K1 = 607.76, K2 = 1260.56). ``scale``/``offset`` of None mean
    "take them from the file's own metadata, else 1 and 0".
    """

    unit: str = "K"
    scale: float | None = None
    offset: float | None = None
    k1: float | None = None
    k2: float | None = None

    def __post_init__(self) -> None:
        if self.unit not in ("K", "C"):
            raise FeatureError(f"Thermal unit must be 'K' or 'C', not {self.unit!r}.")
        if (self.k1 is None) != (self.k2 is None):
            raise FeatureError("Give both K1 and K2 thermal constants, or neither.")


def lst_kelvin(values: np.ndarray, spec: ThermalSpec, scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """Land-surface temperature in kelvin.

    Args:
        values: raw thermal raster values (NaN where no data).
        spec: the encoding of those values.
        scale: scale to use when spec.scale is None (the file's own).
        offset: offset to use when spec.offset is None (the file's own).

    """
    s = spec.scale if spec.scale is not None else scale
    o = spec.offset if spec.offset is not None else offset
    v = values.astype(np.float64) * s + o
    if spec.k1 is not None and spec.k2 is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(v > 0, spec.k2 / np.log(spec.k1 / v + 1.0), np.nan)
    elif spec.unit == "C":
        v = v + KELVIN_OFFSET
    return v.astype(np.float32)


def check_plausible_lst(lst_k: np.ndarray) -> None:
    """Refuse LST outside 170–360 K: a wrong unit or scale would otherwise pass silently.

    Raises:
        FeatureError: the median temperature is implausible for the Earth's surface.

    """
    finite = lst_k[np.isfinite(lst_k)]
    if finite.size == 0:
        return
    med = float(np.median(finite))
    if not 170.0 <= med <= 360.0:
        raise FeatureError(
            f"The thermal layer gives a median land-surface temperature of {med:.1f} K, which is not "
            "plausible. Check the thermal unit (K or °C), scale and offset (e.g. Landsat Collection 2 "
            "ST_B10: scale 0.00341802, offset 149.0, unit K)."
        )


def standardized_anomaly(values: np.ndarray, mean: float, std: float) -> np.ndarray:
    """(values − scene mean) / scene std: the scene-standardised LST anomaly in σ units."""
    if not np.isfinite(std) or std <= 0:
        return np.zeros_like(values, dtype=np.float32)
    return ((values - mean) / std).astype(np.float32)


def parse_dates(texts: Sequence[str]) -> list[dt.date]:
    """Parse ISO dates (YYYY-MM-DD, or any text starting with one, e.g. a band description)."""
    out = []
    for t in texts:
        token = str(t).strip()[:10]
        try:
            out.append(dt.date.fromisoformat(token))
        except ValueError as exc:
            raise FeatureError(
                f"Cannot read a date from {t!r}: give the temperature series' dates as YYYY-MM-DD "
                "(as band descriptions of the series raster, or in the dates parameter)."
            ) from exc
    return out


def degree_days(series_c: np.ndarray, dates: Sequence[dt.date]) -> tuple[np.ndarray, np.ndarray]:
    """Thawing and freezing degree-days (°C·day) of a temperature series, integrated over one year.

    The series is treated as periodic: each date stands for the days up to halfway to its neighbours,
    wrapping from the last date to the first one a year later, so a monthly climatology covers 365 days.

    Args:
        series_c: (T, H, W) temperatures in °C, T ≥ 2, NaN where no data.
        dates: the T dates, in any order.

    Returns:
        (TDD, FDD), each (H, W), both ≥ 0.

    """
    if len(dates) != series_c.shape[0]:
        raise FeatureError(f"{series_c.shape[0]} temperature bands but {len(dates)} dates.")
    if len(dates) < 2:
        raise FeatureError("A freeze–thaw index needs a temperature series of at least two dates.")
    doy = np.array([d.timetuple().tm_yday for d in dates], dtype=np.float64)
    order = np.argsort(doy)
    doy = doy[order]
    series = series_c[order].astype(np.float64)
    prev_gap = np.diff(np.concatenate([[doy[-1] - 365.0], doy]))
    next_gap = np.diff(np.concatenate([doy, [doy[0] + 365.0]]))
    weights = (prev_gap + next_gap) / 2.0  # (T,) days represented by each date; sums to 365
    w = weights[:, None, None]
    tdd = np.sum(np.clip(series, 0, None) * w, axis=0)
    fdd = np.sum(np.clip(-series, 0, None) * w, axis=0)
    return tdd.astype(np.float32), fdd.astype(np.float32)


def freeze_thaw_index(tdd: np.ndarray, fdd: np.ndarray) -> np.ndarray:
    """FTI = √TDD / (√TDD + √FDD), from 0 (never thaws) to 1 (never freezes).

    This is one minus Nelson & Outcalt's (1987) frost number; values below 0.5 favour permafrost.
    """
    a = np.sqrt(np.clip(tdd, 0, None))
    b = np.sqrt(np.clip(fdd, 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(a + b > 0, a / (a + b), np.nan)
    out[np.isnan(tdd) | np.isnan(fdd)] = np.nan
    return out.astype(np.float32)
