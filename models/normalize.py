"""Input normalisation from the model card (numpy, so training and tiled inference share it)."""

from __future__ import annotations

import numpy as np

from .card import Normalization

IMAGENET_MEAN = {"RED": 0.485, "GREEN": 0.456, "BLUE": 0.406}
IMAGENET_STD = {"RED": 0.229, "GREEN": 0.224, "BLUE": 0.225}
# The authors' data.py: a band is "flat" (scaled to 0) when its chip range is at most this; RGB is divided by
# std + 1e-7 after subtracting the ImageNet mean, and every other band by 1 + 1e-7.
_FLAT = 1e-6
_STD_EPS = 1e-7


def _chip_range(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-chip minima and maxima over (h, w) and any leading band axis kept, NaN (nodata) ignored."""
    with np.errstate(invalid="ignore"), np.testing.suppress_warnings() as sup:
        sup.filter(RuntimeWarning)
        return np.nanmin(x, axis=(-2, -1), keepdims=True), np.nanmax(x, axis=(-2, -1), keepdims=True)


def _study(x: np.ndarray, norm: Normalization, bands: tuple[str, ...]) -> np.ndarray:
    rgb = [i for i, b in enumerate(bands) if b in IMAGENET_MEAN]
    factors = [i for i in range(len(bands)) if i not in rgb]
    if factors:
        f = x[:, factors]
        lo, hi = _chip_range(f)
        span = hi - lo
        x[:, factors] = np.where(span > _FLAT, (f - lo) / np.where(span > _FLAT, span, 1.0), 0.0) / (1 + _STD_EPS)
    if rgb:
        c = x[:, rgb]
        if norm.rgb_divisor > 0:
            c = c / norm.rgb_divisor
        else:  # the three bands scaled together, as their loader does for a non-8-bit optical chip
            lo, hi = _chip_range(c.reshape(c.shape[0], 1, -1, c.shape[-1]))
            span = hi - lo
            c = np.where(span > _FLAT, (c - lo) / np.where(span > _FLAT, span, 1.0), np.clip(c, 0.0, 1.0))
        for j, i in enumerate(rgb):
            x[:, i] = (c[:, j] - IMAGENET_MEAN[bands[i]]) / (IMAGENET_STD[bands[i]] + _STD_EPS)
    return x


def _standardize(x: np.ndarray, norm: Normalization) -> None:
    """(x − mean) / std per band, in place, one chip at a time (each pass stays in the CPU cache)."""
    mean = np.asarray(norm.mean, np.float32)[:, None, None]
    std = np.asarray(norm.std, np.float32)[:, None, None]
    for chip in x:
        np.subtract(chip, mean, out=chip)
        np.divide(chip, std, out=chip)
        np.nan_to_num(chip, copy=False, nan=0.0, posinf=0.0, neginf=0.0)


def normalize(x: np.ndarray, norm: Normalization, bands: tuple[str, ...], inplace: bool = False) -> np.ndarray:
    """Normalise a batch (B, C, h, w) with NaN for nodata; nodata becomes 0 afterwards.

    Args:
        x: the batch; left unchanged unless `inplace` (then a float32 x is overwritten and returned).
        norm: the model card's normalisation.
        bands: the band names of the C channels.
        inplace: normalise x itself when it is float32 (the tiling engine's freshly cut tiles), saving a copy.

    Returns:
        float32 array of the same shape.

    """
    x = x if inplace and x.dtype == np.float32 else x.astype(np.float32, copy=True)
    if norm.method == "standardize":
        _standardize(x, norm)
        return x
    if norm.method == "study":
        x = _study(x, norm, bands)
    else:  # chip_minmax: per chip and band to 0–1, RGB then with ImageNet mean/std
        lo, hi = _chip_range(x)
        span = np.where(hi - lo > 0, hi - lo, 1.0)
        x = (x - lo) / span
        for i, b in enumerate(bands):
            if b in IMAGENET_MEAN:
                x[:, i] = (x[:, i] - IMAGENET_MEAN[b]) / IMAGENET_STD[b]
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32, copy=False)
