"""Spectral indices and Tasseled-Cap transforms on surface reflectance (0–1) arrays."""

from __future__ import annotations

import numpy as np

from .bands import OPTICAL_KEYS
from .errors import FeatureError

# Tasseled-Cap coefficients for reflectance in the order blue, green, red, NIR, SWIR1, SWIR2.
# Landsat 8/9 OLI: Baig et al. (2014), Remote Sensing Letters 5(5).
# Sentinel-2 MSI (B2, B3, B4, B8, B11, B12): Shi & Xu (2019), IEEE JSTARS 12(10).
# Landsat 4/5 TM reflectance factors: Crist (1985), Remote Sensing of Environment 17.
TASSELED_CAP: dict[str, dict[str, tuple[float, ...]]] = {
    "landsat8": {
        "TCB": (0.3029, 0.2786, 0.4733, 0.5599, 0.5080, 0.1872),
        "TCG": (-0.2941, -0.2430, -0.5424, 0.7276, 0.0713, -0.1608),
        "TCW": (0.1511, 0.1973, 0.3283, 0.3407, -0.7117, -0.4559),
    },
    "sentinel2": {
        "TCB": (0.3510, 0.3813, 0.3437, 0.7196, 0.2396, 0.1949),
        "TCG": (-0.3599, -0.3533, -0.4734, 0.6633, 0.0087, -0.2856),
        "TCW": (0.2578, 0.2305, 0.0883, 0.1071, -0.7611, -0.5308),
    },
    "landsat5": {
        "TCB": (0.2043, 0.4158, 0.5524, 0.5741, 0.3124, 0.2303),
        "TCG": (-0.1603, -0.2819, -0.4934, 0.7940, -0.0002, -0.1446),
        "TCW": (0.0315, 0.2021, 0.3102, 0.1594, -0.6806, -0.6109),
    },
}

SENSORS: dict[str, str] = {
    "sentinel2": "Sentinel-2 MSI",
    "landsat8": "Landsat 8/9 OLI",
    "landsat5": "Landsat 4/5 TM",
    "other": "Other sensor (no Tasseled Cap)",
}


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Num / den as float32, NaN where the denominator is zero."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den != 0, num / np.where(den != 0, den, 1), np.nan)
    return out.astype(np.float32)


def normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a - b) / (a + b), NaN where a + b is zero."""
    return _ratio(a - b, a + b)


def ndvi(nir: np.ndarray, red: np.ndarray) -> np.ndarray:
    """Normalised difference vegetation index."""
    return normalized_difference(nir, red)


def ndwi(green: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """McFeeters (1996) normalised difference water index: (G - NIR) / (G + NIR)."""
    return normalized_difference(green, nir)


def ndmi(nir: np.ndarray, swir1: np.ndarray) -> np.ndarray:
    """Normalised difference moisture index: (NIR - SWIR1) / (NIR + SWIR1)."""
    return normalized_difference(nir, swir1)


def nbr(nir: np.ndarray, swir2: np.ndarray) -> np.ndarray:
    """Normalised burn ratio: (NIR - SWIR2) / (NIR + SWIR2)."""
    return normalized_difference(nir, swir2)


def evi(nir: np.ndarray, red: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """Enhanced vegetation index, 2.5 (NIR - R) / (NIR + 6 R - 7.5 B + 1), on reflectance 0–1."""
    return _ratio(2.5 * (nir - red), nir + 6.0 * red - 7.5 * blue + 1.0)


def tasseled_cap(bands: dict[str, np.ndarray], sensor: str, component: str) -> np.ndarray:
    """One Tasseled-Cap component (TCB, TCG or TCW) from six reflectance bands.

    Args:
        bands: reflectance arrays keyed blue, green, red, nir, swir1, swir2.
        sensor: a key of TASSELED_CAP (sentinel2, landsat8, landsat5).
        component: TCB, TCG or TCW.

    Raises:
        FeatureError: the sensor has no published coefficients here.

    """
    require_tasseled_cap(sensor, component)
    coeffs = TASSELED_CAP[sensor][component]
    out = np.zeros_like(bands["blue"], dtype=np.float32)
    for c, key in zip(coeffs, OPTICAL_KEYS):  # the coefficients are in the bands' order
        out += np.float32(c) * bands[key]
    return out


def require_tasseled_cap(sensor: str, component: str = "TCB/TCG/TCW") -> None:
    """Raise FeatureError unless the sensor has published Tasseled-Cap coefficients here."""
    if sensor not in TASSELED_CAP:
        known = ", ".join(SENSORS[k] for k in TASSELED_CAP)
        raise FeatureError(
            f"Tasseled Cap ({component}) needs published coefficients for the sensor; "
            f"'{SENSORS.get(sensor, sensor)}' has none here. Known: {known}. "
            "Choose the right sensor or drop TCB/TCG/TCW from the feature list."
        )
