"""Polygon layers rasterised onto a stack grid: slump labels and areas of interest."""

from __future__ import annotations

import os

import numpy as np
import rasterio
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


def _display(path: str) -> str:
    base, _, suffix = path.partition("|")
    return os.path.basename(base) + (f" ({suffix.split('=', 1)[1]})" if suffix.startswith("layername=") else "")


def require_overlap(polygons_path: str, raster_path: str, polygons_role: str, raster_role: str) -> None:
    """Refuse a polygon layer none of whose polygons covers a valid pixel of a raster, naming both.

    Args:
        polygons_path: the polygon layer (any CRS; a path may carry '|layername=').
        raster_path: the raster (its first band's mask gives the valid pixels).
        polygons_role: what the polygons are, for the message ("the 2024 inventory").
        raster_role: what the raster is ("the 2024 stack").

    Raises:
        RtsFusionError: unreadable inputs, or no overlap.

    """
    try:
        with rasterio.open(raster_path) as ds:
            grid = TargetGrid(ds.crs.to_wkt() if ds.crs else "", tuple(ds.transform)[:6], ds.width, ds.height)
            valid = ds.read_masks(1) > 0
    except rasterio.errors.RasterioIOError as exc:
        raise RtsFusionError(f"Cannot read {raster_role} '{_display(raster_path)}': {exc}") from exc
    if not (rasterize_polygons(polygons_path, grid, all_touched=True).astype(bool) & valid).any():
        raise RtsFusionError(
            f"{polygons_role[:1].upper()}{polygons_role[1:]} '{_display(polygons_path)}' does not overlap the valid "
            f"pixels of {raster_role} '{_display(raster_path)}': check that both cover the same place and that their "
            "CRS are set right."
        )
