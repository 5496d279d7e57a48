"""Polygon layers rasterised onto a stack grid: slump labels and areas of interest."""

from __future__ import annotations

import numpy as np
from rasterio.features import rasterize

from .errors import RtsFusionError
from .grid import TargetGrid
from .vector import read_polygons


def rasterize_polygons(path: str, grid: TargetGrid, all_touched: bool = False) -> np.ndarray:
    """Burn the polygons of a vector file (any CRS) into a uint8 mask on the grid (1 inside, 0 outside).

    Raises:
        RtsFusionError: the file cannot be read.

    """
    try:
        polygons = read_polygons(path, grid.crs_wkt)
    except (ValueError, RuntimeError) as exc:
        raise RtsFusionError(f"Cannot read polygons from '{path}': {exc}") from exc
    if not polygons:
        return np.zeros((grid.height, grid.width), dtype=np.uint8)
    shapes = [({"type": "Polygon", "coordinates": rings}, 1) for rings in polygons]
    return rasterize(
        shapes,
        out_shape=(grid.height, grid.width),
        transform=grid.affine,
        fill=0,
        all_touched=all_touched,
        dtype="uint8",
    )
