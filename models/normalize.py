"""Input normalisation from the model card (numpy, so training and tiled inference share it)."""

from __future__ import annotations

import numpy as np

from .card import Normalization

IMAGENET_MEAN = {"RED": 0.485, "GREEN": 0.456, "BLUE": 0.406}
IMAGENET_STD = {"RED": 0.229, "GREEN": 0.224, "BLUE": 0.225}


def normalize(x: np.ndarray, norm: Normalization, bands: tuple[str, ...]) -> np.ndarray:
    """Normalise a batch (B, C, h, w) with NaN for nodata; nodata becomes 0 afterwards.

    Returns:
        float32 array of the same shape.

    """
    x = x.astype(np.float32, copy=True)
    if norm.method == "standardize":
        mean = np.asarray(norm.mean, np.float32)[None, :, None, None]
        std = np.asarray(norm.std, np.float32)[None, :, None, None]
        x = (x - mean) / std
    else:  # chip_minmax: per chip and band to 0–1, RGB then with ImageNet mean/std (the study's scheme)
        with np.errstate(invalid="ignore"), np.testing.suppress_warnings() as sup:
            sup.filter(RuntimeWarning)
            lo = np.nanmin(x, axis=(2, 3), keepdims=True)
            hi = np.nanmax(x, axis=(2, 3), keepdims=True)
        span = np.where(hi - lo > 0, hi - lo, 1.0)
        x = (x - lo) / span
        for i, b in enumerate(bands):
            if b in IMAGENET_MEAN:
                x[:, i] = (x[:, i] - IMAGENET_MEAN[b]) / IMAGENET_STD[b]
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
