"""Terrain features from a DEM in metres: slope, aspect, curvature, TPI and TRI.

All functions take a 2-D elevation array (rows run south, columns east) and the pixel size in metres
(``dy`` may be a column vector of per-row sizes for grids in a geographic CRS). Pixels whose window
reaches outside the array or touches NaN come back as NaN, which is why callers pass the DEM with a
halo of ``terrain_halo()`` pixels and crop afterwards.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

ArrayOrFloat = float | np.ndarray


def _neighbours(z: np.ndarray) -> tuple[np.ndarray, ...]:
    """The 3×3 neighbourhood of each pixel as nine arrays z1..z9 (z1 north-west, z5 centre), NaN-padded."""
    p = np.pad(z.astype(np.float64), 1, constant_values=np.nan)
    h, w = z.shape
    return tuple(p[r : r + h, c : c + w] for r in range(3) for c in range(3))


def gradient(z: np.ndarray, dx: ArrayOrFloat, dy: ArrayOrFloat) -> tuple[np.ndarray, np.ndarray]:
    """Horn (1981) gradient: (dz/d_east, dz/d_north), unitless rise over run."""
    z1, z2, z3, z4, _, z6, z7, z8, z9 = _neighbours(z)
    dzdx = ((z3 + 2 * z6 + z9) - (z1 + 2 * z4 + z7)) / (8.0 * dx)
    dzdy = ((z1 + 2 * z2 + z3) - (z7 + 2 * z8 + z9)) / (8.0 * dy)
    return dzdx, dzdy


def slope_degrees(z: np.ndarray, dx: ArrayOrFloat, dy: ArrayOrFloat) -> np.ndarray:
    """Slope angle in degrees (Horn's method)."""
    gx, gy = gradient(z, dx, dy)
    return np.degrees(np.arctan(np.hypot(gx, gy))).astype(np.float32)


def aspect_sin_cos(z: np.ndarray, dx: ArrayOrFloat, dy: ArrayOrFloat) -> tuple[np.ndarray, np.ndarray]:
    """Sine and cosine of aspect, the azimuth the slope faces (clockwise from north); 0, 0 on flats.

    Encoding aspect as sin/cos keeps north-east and north-west close, unlike a 0–360° angle.
    """
    gx, gy = gradient(z, dx, dy)
    mag = np.hypot(gx, gy)
    with np.errstate(invalid="ignore", divide="ignore"):
        # Downslope direction is minus the gradient; sin(aspect) = east component, cos = north component.
        s = np.where(mag > 1e-12, -gx / mag, 0.0)
        c = np.where(mag > 1e-12, -gy / mag, 0.0)
    nan = np.isnan(mag)
    s[nan] = np.nan
    c[nan] = np.nan
    return s.astype(np.float32), c.astype(np.float32)


def curvatures(z: np.ndarray, dx: ArrayOrFloat, dy: ArrayOrFloat) -> tuple[np.ndarray, np.ndarray]:
    """Plan and profile curvature (1/m) after Zevenbergen & Thorne (1987).

    With their sign convention a bowl z = c (x² + y²) has profile curvature −2c and plan curvature +2c
    away from its centre. Both are 0 on flats, where the direction of the slope is undefined.

    Returns:
        (plan, profile) as float32 arrays.

    """
    z1, z2, z3, z4, z5, z6, z7, z8, z9 = _neighbours(z)
    d = ((z4 + z6) / 2 - z5) / (dx * dx)
    e = ((z2 + z8) / 2 - z5) / (dy * dy)
    f = (-z1 + z3 + z7 - z9) / (4 * dx * dy)
    g = (z6 - z4) / (2 * dx)
    h = (z2 - z8) / (2 * dy)
    g2h2 = g * g + h * h
    with np.errstate(invalid="ignore", divide="ignore"):
        flat = g2h2 < 1e-18
        denom = np.where(flat, 1.0, g2h2)
        profile = np.where(flat, 0.0, -2 * (d * g * g + e * h * h + f * g * h) / denom)
        plan = np.where(flat, 0.0, 2 * (d * h * h + e * g * g - f * g * h) / denom)
    invalid = np.isnan(g2h2) | np.isnan(d) | np.isnan(e) | np.isnan(f)
    plan[invalid] = np.nan
    profile[invalid] = np.nan
    return plan.astype(np.float32), profile.astype(np.float32)


def radius_pixels(radius_m: float, dx: float, dy: float) -> tuple[int, int]:
    """Kernel half-sizes (columns, rows) for a neighbourhood radius in metres; at least one pixel."""
    return max(1, int(math.floor(radius_m / dx))), max(1, int(math.floor(radius_m / dy)))


def terrain_halo(radius_m: float, dx: float, dy: float) -> int:
    """Pixels of DEM needed around a window so every terrain feature is defined inside it."""
    rx, ry = radius_pixels(radius_m, dx, dy)
    return max(rx, ry, 1)


def disc_kernel(radius_m: float, dx: float, dy: float) -> np.ndarray:
    """Elliptical (circular in metres) neighbourhood kernel, centre excluded, as float weights."""
    rx, ry = radius_pixels(radius_m, dx, dy)
    yy, xx = np.mgrid[-ry : ry + 1, -rx : rx + 1]
    dist = np.hypot(xx * dx, yy * dy)
    k = (dist <= max(radius_m, dx, dy) + 1e-9).astype(np.float64)
    k[ry, rx] = 0.0
    return k


def _neighbour_mean(values: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Mean of values over the kernel around each pixel; NaN where any neighbour is NaN or outside."""
    valid = ~np.isnan(values)
    filled = np.where(valid, values, 0.0)
    total = ndimage.correlate(filled, kernel, mode="constant", cval=0.0)
    count = ndimage.correlate(valid.astype(np.float64), kernel, mode="constant", cval=0.0)
    full = kernel.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / full
    out[count < full - 1e-6] = np.nan
    return out


def tpi(z: np.ndarray, radius_m: float, dx: float, dy: float) -> np.ndarray:
    """Topographic position index: elevation minus the mean elevation within radius_m (metres).

    Positive on ridges and hill tops, negative in valleys, 0 on planes.
    """
    z64 = z.astype(np.float64)
    return (z64 - _neighbour_mean(z64, disc_kernel(radius_m, dx, dy))).astype(np.float32)


def tri(z: np.ndarray, radius_m: float, dx: float, dy: float) -> np.ndarray:
    """Terrain ruggedness index: root-mean-square elevation difference (m) to neighbours within radius_m.

    For radius one pixel this is Riley et al.'s (1999) TRI divided by √8 (a mean instead of a sum).
    Uses mean((z_i − z0)²) = mean(z_i²) − 2 z0 mean(z_i) + z0², so it costs two filters.
    """
    # Removing the window's mean elevation first keeps the squares small: at 5,000 m, z² would cost
    # the subtraction below most of float64's precision.
    z64 = z.astype(np.float64)
    if np.isfinite(z64).any():
        z64 = z64 - np.nanmean(z64)
    k = disc_kernel(radius_m, dx, dy)
    m1 = _neighbour_mean(z64, k)
    m2 = _neighbour_mean(z64 * z64, k)
    msd = np.maximum(m2 - 2 * z64 * m1 + z64 * z64, 0.0)
    return np.sqrt(msd).astype(np.float32)
