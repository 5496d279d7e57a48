"""The target grid all inputs are aligned onto, and window-by-window warping of a source onto it."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from .errors import AlignmentError

RESAMPLING = {
    "reflectance": Resampling.bilinear,
    "thermal": Resampling.bilinear,
    "elevation": Resampling.cubic,
    "mask": Resampling.nearest,
}

# GDAL's block cache defaults to 5 % of RAM and fills with every block read or written; capping it keeps
# memory bounded by the processing window instead of growing with the raster.
GDAL_CACHE_MB = 128

# Metres per degree on the WGS 84 ellipsoid (latitude direction; longitude scales with cos(latitude)).
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON_EQUATOR = 111_320.0


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 UTM zone holding a longitude/latitude (326xx north, 327xx south)."""
    return (32600 if lat >= 0 else 32700) + int((lon + 180) // 6) + 1


@dataclass(frozen=True)
class TargetGrid:
    """A north-up raster grid: CRS (WKT), affine transform coefficients and size in pixels."""

    crs_wkt: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int

    @property
    def crs(self) -> CRS:
        """The grid's CRS as a rasterio CRS."""
        return CRS.from_wkt(self.crs_wkt)

    @property
    def affine(self) -> Affine:
        """The grid's affine transform."""
        return Affine(*self.transform)

    @property
    def pixel_size(self) -> tuple[float, float]:
        """(x, y) pixel size in CRS units, both positive."""
        return abs(self.transform[0]), abs(self.transform[4])

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in the grid's CRS."""
        return self.window_bounds((0, 0, self.width, self.height))

    def window_bounds(self, window: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in the grid's CRS of a pixel window (col_off, row_off, width, height)."""
        c, r, w, h = window
        a = self.window_transform(r, c)
        return a.c, a.f + a.e * h, a.c + a.a * w, a.f

    def window_transform(self, row_off: int, col_off: int) -> Affine:
        """Transform of a window whose top-left pixel is (row_off, col_off); offsets may be negative."""
        return self.affine * Affine.translation(col_off, row_off)

    def metres_per_pixel(self, row_centre: float | None = None) -> tuple[float, float]:
        """Pixel size in metres at a row (the grid's centre row by default).

        In a geographic CRS the east–west size shrinks with the cosine of latitude.
        """
        crs = self.crs
        px, py = self.pixel_size
        if crs.is_geographic:
            row = self.height / 2 if row_centre is None else row_centre
            lat = self.affine.f + self.affine.e * row
            return px * _M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat)), py * _M_PER_DEG_LAT
        factor = crs.linear_units_factor[1] if crs.is_projected else 1.0
        return px * factor, py * factor

    def row_metres(self, row_off: int, rows: int) -> np.ndarray:
        """East–west pixel size in metres for each of `rows` rows from row_off, as a (rows, 1) column."""
        if not self.crs.is_geographic:
            return np.full((rows, 1), self.metres_per_pixel()[0])
        lat = self.affine.f + self.affine.e * (np.arange(rows) + row_off + 0.5)
        return (self.pixel_size[0] * _M_PER_DEG_LON_EQUATOR * np.cos(np.radians(lat)))[:, None]


@dataclass(frozen=True)
class SourceInfo:
    """What alignment needs to know of one input raster."""

    label: str
    path: str
    crs_wkt: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int
    count: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in the source's own CRS."""
        a = Affine(*self.transform)
        xs = [a.c, a.c + a.a * self.width]
        ys = [a.f, a.f + a.e * self.height]
        return min(xs), min(ys), max(xs), max(ys)


def inspect_source(path: str, label: str) -> SourceInfo:
    """Open a raster and check it can be aligned (readable, non-empty, georeferenced).

    Raises:
        AlignmentError: unreadable file, no pixels, no CRS or no geotransform, or a rotated grid.

    """
    try:
        with rasterio.open(path) as ds:
            crs, transform, width, height, count = ds.crs, ds.transform, ds.width, ds.height, ds.count
    except rasterio.errors.RasterioIOError as exc:
        raise AlignmentError(f"The {label} layer '{path}' cannot be read as a raster: {exc}") from exc
    if width == 0 or height == 0 or count == 0:
        raise AlignmentError(f"The {label} layer '{path}' is empty ({width} × {height} pixels, {count} bands).")
    if crs is None or transform == Affine.identity():
        raise AlignmentError(
            f"The {label} layer '{path}' has no georeferencing (no CRS or no geotransform), so it cannot "
            "be placed on a map. Georeference it first (e.g. from its metadata corners) and try again."
        )
    if transform.b != 0 or transform.d != 0:
        raise AlignmentError(f"The {label} layer '{path}' has a rotated grid; warp it to a north-up grid first.")
    return SourceInfo(label, path, crs.to_wkt(), tuple(transform)[:6], width, height, count)


def _fmt(b: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in b) + "]"


def build_target_grid(
    sources: Sequence[SourceInfo],
    crs: str | None = None,
    pixel_size: float | None = None,
    extent: tuple[float, float, float, float] | None = None,
) -> TargetGrid:
    """The grid every source is warped onto.

    By default the first source (the optical layer) sets the CRS and the pixel size, and the grid covers
    the intersection of all sources, snapped to the first source's pixel lattice so that the optical
    image is not resampled at all when nothing else is asked for.

    Args:
        sources: the inputs; the first is the reference.
        crs: target CRS (any string rasterio understands, e.g. "EPSG:32646"), or None for the reference's.
        pixel_size: target pixel size in target CRS units, or None for the reference's.
        extent: (xmin, ymin, xmax, ymax) in the target CRS to clip to, or None.

    Raises:
        AlignmentError: the sources (and extent) do not overlap, or a parameter is invalid.

    """
    ref = sources[0]
    ref_crs = CRS.from_wkt(ref.crs_wkt)
    try:
        dst_crs = CRS.from_user_input(crs) if crs else ref_crs
    except rasterio.errors.CRSError as exc:
        raise AlignmentError(f"Unknown target CRS {crs!r}: {exc}") from exc
    ref_aff = Affine(*ref.transform)
    same_lattice = dst_crs == ref_crs and (pixel_size is None or math.isclose(pixel_size, abs(ref_aff.a)))
    if pixel_size is None:
        if dst_crs != ref_crs:
            raise AlignmentError("Give a pixel size when the target CRS differs from the optical layer's.")
        px, py = abs(ref_aff.a), abs(ref_aff.e)
    elif pixel_size <= 0:
        raise AlignmentError(f"The pixel size must be positive, not {pixel_size}.")
    else:
        px = py = float(pixel_size)
        _check_pixel_units(dst_crs, px)

    boxes = []
    for s in sources:
        try:
            b = transform_bounds(CRS.from_wkt(s.crs_wkt), dst_crs, *s.bounds, densify_pts=21)
        except Exception:  # noqa: BLE001 - PROJ raises several kinds for coordinates it cannot transform
            b = (math.nan,) * 4
        if not all(math.isfinite(v) for v in b):
            # Coordinates no CRS can hold (e.g. a geotransform shifted by 10^6): a georeferencing mistake.
            raise AlignmentError(
                f"The {s.label} layer's extent {tuple(round(v, 3) for v in s.bounds)} cannot be placed in the "
                f"target CRS ({dst_crs.to_string()}): its coordinates lie outside what its CRS can describe. "
                f"Check the {s.label} layer's georeferencing (CRS and geotransform)."
            )
        boxes.append((s, b))
    xmin = max(b[0] for _, b in boxes)
    ymin = max(b[1] for _, b in boxes)
    xmax = min(b[2] for _, b in boxes)
    ymax = min(b[3] for _, b in boxes)
    if extent is not None:
        xmin, ymin = max(xmin, extent[0]), max(ymin, extent[1])
        xmax, ymax = min(xmax, extent[2]), min(ymax, extent[3])

    if same_lattice:
        # Snap inwards to the reference pixel edges.
        x0, y0 = ref_aff.c, ref_aff.f
        left = x0 + math.ceil((xmin - x0) / px - 1e-9) * px
        right = x0 + math.floor((xmax - x0) / px + 1e-9) * px
        top = y0 - math.ceil((y0 - ymax) / py - 1e-9) * py
        bottom = y0 - math.floor((y0 - ymin) / py + 1e-9) * py
    else:
        left = math.ceil(xmin / px - 1e-9) * px
        right = math.floor(xmax / px + 1e-9) * px
        top = math.floor(ymax / py + 1e-9) * py
        bottom = math.ceil(ymin / py - 1e-9) * py
    width = int(round((right - left) / px))
    height = int(round((top - bottom) / py))
    if (width < 1 or height < 1) and xmax > xmin and ymax > ymin:
        units = _units(dst_crs)
        raise AlignmentError(
            f"The pixel size {px:g} {units} is larger than the layers' common area "
            f"({xmax - xmin:.6g} × {ymax - ymin:.6g} {units} in {dst_crs.to_string()}): not one pixel fits. "
            "Give a smaller pixel size."
        )
    if width < 1 or height < 1:
        lines = [f"- {s.label} '{s.path}': {_fmt(b)}" for s, b in boxes]
        if extent is not None:
            lines.append(f"- requested extent: {_fmt(extent)}")
        raise AlignmentError(
            f"The layers do not overlap, so there is nothing to align. Extents in {dst_crs.to_string()} "
            "(xmin, ymin, xmax, ymax):\n" + "\n".join(lines)
        )
    return TargetGrid(dst_crs.to_wkt(), (px, 0.0, left, 0.0, -py, top), width, height)


def warped_vrt(ds: rasterio.io.DatasetReader, grid: TargetGrid, resampling: Resampling, halo: int = 0) -> WarpedVRT:
    """A virtual warp of a source onto the grid grown by `halo` pixels on each side (float32, NaN nodata).

    The halo may reach beyond the grid: that is how terrain features get the DEM they need at the
    grid's border. Source nodata and pixels outside the source read as NaN. Reading windows of one
    virtual warp gives the same values whatever the window layout, which keeps the stack independent
    of the processing window size. Close it after use (it is a context manager).
    """
    return WarpedVRT(
        ds,
        crs=grid.crs,
        transform=grid.window_transform(-halo, -halo),
        width=grid.width + 2 * halo,
        height=grid.height + 2 * halo,
        resampling=resampling,
        src_nodata=ds.nodata,
        nodata=np.nan,
        dtype="float32",
    )


def read_window(vrt: WarpedVRT, bands: Sequence[int], window: Window, halo: int = 0) -> np.ndarray:
    """Read bands of a grid window (grown by the vrt's halo) from a warped_vrt.

    Returns:
        float32 array (len(bands), window.height + 2·halo, window.width + 2·halo).

    """
    grown = Window(window.col_off, window.row_off, window.width + 2 * halo, window.height + 2 * halo)
    return vrt.read(list(bands), window=grown).astype(np.float32, copy=False)


def bounded_gdal_cache() -> rasterio.Env:
    """A rasterio environment with GDAL's block cache capped at GDAL_CACHE_MB (use as a context manager)."""
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20)


def iter_windows(grid: TargetGrid, size: int) -> list[Window]:
    """Square windows of `size` pixels (smaller at the right and bottom edges) covering the grid."""
    return [
        Window(c, r, min(size, grid.width - c), min(size, grid.height - r))
        for r in range(0, grid.height, size)
        for c in range(0, grid.width, size)
    ]


def _units(crs: CRS) -> str:
    """The linear or angular unit of a CRS in words ("metre", "degree", "US survey foot" …)."""
    if crs.is_geographic:
        return "degree"
    try:
        return crs.linear_units or "unit"
    except (AttributeError, rasterio.errors.CRSError):
        return "unit"


def _check_pixel_units(crs: CRS, pixel_size: float) -> None:
    """Refuse a pixel size that reads like metres in a geographic CRS (a degree is ~111 km)."""
    if crs.is_geographic and pixel_size >= 1.0:
        raise AlignmentError(
            f"The target CRS {crs.to_string()} is geographic (its unit is the degree), and a pixel size of "
            f"{pixel_size:g} degree(s) is {pixel_size * _M_PER_DEG_LAT / 1000:,.0f} km: it looks like metres. "
            f"Give the pixel size in degrees (10 m ≈ {10 / _M_PER_DEG_LAT:.6f}°) or choose a projected CRS "
            "(e.g. the UTM zone of the area)."
        )


# A target pixel this many times finer than the finest input only interpolates; it cannot be meant.
MAX_REFINEMENT = 10.0


def _source_metres(src: SourceInfo) -> float:
    """The finer pixel side of a source, in metres."""
    crs = CRS.from_wkt(src.crs_wkt)
    a = Affine(*src.transform)
    grid = TargetGrid(src.crs_wkt, tuple(a)[:6], src.width, src.height)
    if crs.is_geographic or crs.is_projected:
        return min(grid.metres_per_pixel())
    return min(abs(a.a), abs(a.e))


def check_grid_size(
    grid: TargetGrid,
    sources: Sequence[SourceInfo],
    bands: int,
    folder: str,
    bytes_per_value: int = 4,
) -> int:
    """Refuse a grid that cannot be meant before anything is written; return its estimated size in bytes.

    Refused: a pixel size more than MAX_REFINEMENT times finer than the finest input, and an output whose
    uncompressed size (pixels × bands × bytes) exceeds the free disk space of `folder`.

    Raises:
        AlignmentError: naming the pixel size, the CRS's units and the sizes.

    """
    import shutil

    units = _units(grid.crs)
    px = min(grid.pixel_size)
    target_m = min(grid.metres_per_pixel())
    finest = min(sources, key=_source_metres)
    finest_m = _source_metres(finest)
    pixels = grid.width * grid.height
    size = pixels * bands * bytes_per_value
    if target_m * MAX_REFINEMENT < finest_m:
        hint = (
            " It looks like degrees: in a projected CRS the pixel size is in metres."
            if not grid.crs.is_geographic and px < 0.01
            else ""
        )
        raise AlignmentError(
            f"The pixel size {px:g} {units} (≈ {target_m:.3g} m) is more than {MAX_REFINEMENT:g} times finer than "
            f"the finest input, the {finest.label} layer (≈ {finest_m:.3g} m per pixel): the grid would have "
            f"{grid.width:,} × {grid.height:,} pixels ({size / 1e9:,.1f} GB) of interpolated values.{hint} "
            "Give a pixel size near the inputs' resolution, or leave it empty."
        )
    existing = os.path.abspath(folder or ".")
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)  # a folder still to be created: its nearest existing parent
    free = shutil.disk_usage(existing).free
    if size > free:
        raise AlignmentError(
            f"The output grid ({grid.width:,} × {grid.height:,} pixels of {px:g} {units}, {bands} band(s)) needs "
            f"up to {size / 1e9:,.2f} GB, but only {free / 1e9:,.2f} GB are free in '{folder}'. Give a larger "
            "pixel size, a smaller extent, fewer features, or another output folder."
        )
    return size
