"""Where thaw slumps occur: an inventory's distribution over terrain factors and their frequency ratios.

For elevation, slope, aspect, slope position and distance to water, the study area (the DEM, or an area of
interest) is divided into classes; for each class: the number of slumps (each slump counted in the class
holding most of its pixels), the slump area, the class's share of the study area and of the slump area, and the
frequency ratio FR = slump share ÷ area share (FR > 1: slumps are over-represented in the class).

Everything runs on the DEM's grid, in metres: a geographic DEM is first warped to the UTM zone of its centre.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.warp import calculate_default_transform, reproject, transform_bounds
from scipy import ndimage

from . import report, terrain
from .errors import OperationCanceled, RtsFusionError
from .grid import TargetGrid, utm_epsg
from .labels import rasterize_polygons
from .vector import read_geometries

MAX_PIXELS = 60_000_000
ASPECT_SECTORS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
POSITIONS = ("ridge", "upper slope", "middle slope", "flat", "lower slope", "valley")
DEFAULT_WATER_EDGES = (0.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)
# The study's slope classes (its slumps concentrate at 3–7°); the last class is open-ended.
STUDY_SLOPE_EDGES = (0.0, 3.0, 7.0, 15.0, 25.0)


@dataclass(frozen=True)
class InventoryOptions:
    """Class definitions of the factors.

    Attributes:
        elevation_bin: elevation class width (m).
        slope_bin: slope class width (degrees), used when slope_edges is empty.
        slope_edges: lower edges of the slope classes (degrees; the last class is open-ended); the study's
            0, 3, 7, 15, 25° by default; empty for equal-width classes of slope_bin.
        water_edges: lower edges of the distance-to-water classes (m); the last class is open-ended.
        tpi_radius: neighbourhood radius of the topographic position index (m).
        flat_slope: slopes below this are 'flat' (no aspect; 'flat' slope position when TPI is near 0).
        ndwi_threshold: NDWI above which an optical pixel is water (when no water layer is given).

    """

    elevation_bin: float = 100.0
    slope_bin: float = 2.0
    slope_edges: tuple[float, ...] = STUDY_SLOPE_EDGES
    water_edges: tuple[float, ...] = DEFAULT_WATER_EDGES
    tpi_radius: float = 300.0
    flat_slope: float = 2.0
    ndwi_threshold: float = 0.2


@dataclass
class Factor:
    """One factor's classes: per-pixel class index (−1 = not classed) and the class labels and bounds."""

    name: str
    classes: np.ndarray
    labels: list[str]
    lower: list[float | None] = field(default_factory=list)
    upper: list[float | None] = field(default_factory=list)


@dataclass
class InventoryResult:
    """The statistics rows, a summary per factor, and what was analysed."""

    rows: list[dict]
    summary: list[str]
    n_slumps: int
    study_area_km2: float
    pixel_size_m: float
    water_source: str


# ----- the analysis grid -------------------------------------------------------------------------------------------
def metric_grid_of(dem_path: str) -> TargetGrid:
    """The DEM's own grid if it is projected; else a UTM grid over it at about the same resolution."""
    with rasterio.open(dem_path) as ds:
        if ds.crs is None:
            raise RtsFusionError(f"The DEM '{dem_path}' has no coordinate reference system.")
        if not ds.crs.is_geographic:
            return TargetGrid(ds.crs.to_wkt(), tuple(ds.transform)[:6], ds.width, ds.height)
        west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
        utm = CRS.from_epsg(utm_epsg((west + east) / 2, (south + north) / 2))
        native = TargetGrid(ds.crs.to_wkt(), tuple(ds.transform)[:6], ds.width, ds.height)
        res = max(1.0, round(native.metres_per_pixel()[0]))
        transform, width, height = calculate_default_transform(
            ds.crs, utm, ds.width, ds.height, *ds.bounds, resolution=res
        )
        return TargetGrid(utm.to_wkt(), tuple(transform)[:6], width, height)


def read_on_grid(path: str, grid: TargetGrid, bands: Sequence[int] = (1,), resampling=Resampling.bilinear):
    """Bands of a raster warped onto the grid as float32 (C, H, W) with NaN for nodata."""
    out = np.full((len(bands), grid.height, grid.width), np.nan, np.float32)
    with rasterio.open(path) as ds:
        for k, b in enumerate(bands):
            reproject(
                rasterio.band(ds, b),
                out[k],
                src_nodata=ds.nodata,
                dst_transform=grid.affine,
                dst_crs=grid.crs,
                dst_nodata=np.nan,
                resampling=resampling,
            )
    return out


def label_polygons(path: str, grid: TargetGrid) -> tuple[np.ndarray, int]:
    """Each polygon feature burnt with its 1-based position in the layer; (labels int32, count)."""
    geoms = read_geometries(path, grid.crs_wkt)
    if not geoms:
        return np.zeros((grid.height, grid.width), np.int32), 0
    shapes = [(json.loads(g.ExportToJson()), i) for i, (_, g) in enumerate(geoms, 1)]
    labels = rasterize(shapes, out_shape=(grid.height, grid.width), transform=grid.affine, fill=0, dtype="int32")
    return labels, len(geoms)


# ----- the factors --------------------------------------------------------------------------------------------------
def binned(name: str, values: np.ndarray, width: float, unit: str) -> Factor:
    """Equal-width classes aligned on multiples of width."""
    ok = np.isfinite(values)
    if not ok.any():
        return Factor(name, np.full(values.shape, -1), [])
    start = math.floor(np.nanmin(values) / width) * width
    idx = np.where(ok, np.floor((np.where(ok, values, start) - start) / width), -1).astype(np.int32)
    n = int(idx.max()) + 1
    lows = [start + i * width for i in range(n)]
    labels = [f"{lo:g}–{lo + width:g} {unit}" for lo in lows]
    return Factor(name, idx, labels, lows, [lo + width for lo in lows])


def edged(name: str, values: np.ndarray, edges: Sequence[float], unit: str) -> Factor:
    """Classes between given lower edges; the last one open-ended."""
    edges = sorted(edges)
    ok = np.isfinite(values)
    idx = np.where(ok, np.searchsorted(edges, np.where(ok, values, edges[0]), side="right") - 1, -1).astype(np.int32)
    idx[ok & (values < edges[0])] = -1
    uppers = [*edges[1:], None]
    labels = [f"{lo:g}–{hi:g} {unit}" if hi is not None else f"≥ {lo:g} {unit}" for lo, hi in zip(edges, uppers)]
    return Factor(name, idx, labels, list(edges), uppers)


def aspect_factor(dem: np.ndarray, px: float, flat: np.ndarray) -> Factor:
    """Eight 45° sectors of the direction the slope faces, centred on N, NE …; flat pixels their own class."""
    s, c = terrain.aspect_sin_cos(dem, px, px)
    deg = np.degrees(np.arctan2(s, c)) % 360
    idx = (np.floor(((np.nan_to_num(deg) + 22.5) % 360) / 45)).astype(np.int32)
    idx = np.where(flat, 8, idx)
    idx = np.where(np.isfinite(s) & np.isfinite(dem), idx, -1)
    lows = [(k * 45 - 22.5) % 360 for k in range(8)]
    return Factor("aspect", idx, [*ASPECT_SECTORS, "flat"], [*lows, None], [(lo + 45) % 360 for lo in lows] + [None])


def position_factor(dem: np.ndarray, px: float, slope: np.ndarray, radius: float, flat_slope: float) -> Factor:
    """Slope position from the standardised TPI (Weiss 2001): ridge, upper, middle, flat, lower, valley."""
    t = terrain.tpi(dem, radius, px, px)
    sd = float(np.nanstd(t))
    z = t / sd if sd > 0 else np.zeros_like(t)
    idx = np.full(dem.shape, -1, np.int32)
    ok = np.isfinite(z) & np.isfinite(slope)
    idx[ok & (z > 1)] = 0
    idx[ok & (z > 0.5) & (z <= 1)] = 1
    mid = ok & (z >= -0.5) & (z <= 0.5)
    idx[mid & (slope > flat_slope)] = 2
    idx[mid & (slope <= flat_slope)] = 3
    idx[ok & (z >= -1) & (z < -0.5)] = 4
    idx[ok & (z < -1)] = 5
    return Factor("slope position", idx, list(POSITIONS), [None] * 6, [None] * 6)


def water_mask(
    grid: TargetGrid,
    water_path: str | None,
    optical_path: str | None,
    green_band: int,
    nir_band: int,
    threshold: float,
) -> tuple[np.ndarray, str]:
    """Water pixels from a polygon layer, or from the optical layer's NDWI (McFeeters); and how they were found."""
    if water_path:
        return rasterize_polygons(water_path, grid).astype(bool), "water layer"
    if optical_path:
        g, n = read_on_grid(optical_path, grid, (green_band, nir_band))
        with np.errstate(invalid="ignore", divide="ignore"):
            ndwi = (g - n) / (g + n)
        return np.nan_to_num(ndwi, nan=-1.0) > threshold, f"NDWI > {threshold:g} of the optical layer"
    raise RtsFusionError("Distance to water needs a water layer or an optical layer (for NDWI).")


# ----- statistics ---------------------------------------------------------------------------------------------------
def factor_rows(factor: Factor, slump_labels: np.ndarray, n_slumps: int, valid: np.ndarray, px_area: float):
    """Per class: slumps, slump pixels/area, slump share, area share and frequency ratio."""
    cls = np.where(valid, factor.classes, -1)
    n = len(factor.labels)
    inside = cls >= 0
    area_px = np.bincount(cls[inside], minlength=n)[:n].astype(float)
    is_slump = inside & (slump_labels > 0)
    slump_px = np.bincount(cls[is_slump], minlength=n)[:n].astype(float)
    counts = np.zeros(n, int)
    if n_slumps and is_slump.any():
        # Majority class of each slump's pixels.
        pair = slump_labels[is_slump].astype(np.int64) * (n + 1) + cls[is_slump]
        tally = np.bincount(pair, minlength=(n_slumps + 1) * (n + 1)).reshape(n_slumps + 1, n + 1)[1:, :n]
        has = tally.sum(axis=1) > 0
        np.add.at(counts, tally[has].argmax(axis=1), 1)
    total_area, total_slump = area_px.sum(), slump_px.sum()
    rows = []
    for i, label in enumerate(factor.labels):
        area_share = area_px[i] / total_area if total_area else 0.0
        slump_share = slump_px[i] / total_slump if total_slump else 0.0
        rows.append(
            {
                "factor": factor.name,
                "class": label,
                "lower": factor.lower[i] if factor.lower else None,
                "upper": factor.upper[i] if factor.upper else None,
                "slumps": int(counts[i]),
                "slump_area_m2": round(float(slump_px[i] * px_area), 1),
                "slump_share": round(float(slump_share), 4),
                "area_share": round(float(area_share), 4),
                "frequency_ratio": round(float(slump_share / area_share), 3) if area_share > 0 else None,
            }
        )
    return rows


def summarize(rows: list[dict]) -> list[str]:
    """One sentence per factor: where most slumps are and which class has the highest frequency ratio."""
    lines = []
    for name in dict.fromkeys(r["factor"] for r in rows):
        fr = [r for r in rows if r["factor"] == name]
        most = max(fr, key=lambda r: (r["slump_share"], r["slumps"]))
        top = max((r for r in fr if r["frequency_ratio"] is not None), key=lambda r: r["frequency_ratio"])
        lines.append(
            f"{name.capitalize()}: most slump area in {most['class']} ({100 * most['slump_share']:.0f} % of it, "
            f"{most['slumps']} slumps, on {100 * most['area_share']:.0f} % of the area); highest frequency ratio "
            f"{top['frequency_ratio']:.2f} in {top['class']}."
        )
    return lines


def inventory_statistics(
    slumps_path: str,
    dem_path: str,
    water_path: str | None = None,
    optical_path: str | None = None,
    green_band: int = 2,
    nir_band: int = 4,
    aoi_path: str | None = None,
    options: InventoryOptions = InventoryOptions(),
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
) -> InventoryResult:
    """Distribution and frequency ratios of an RTS inventory over elevation, slope, aspect, position, water.

    Without a water layer or an optical layer, distance to water is left out.

    Raises:
        RtsFusionError: unreadable or nodata-only DEM, no slump in the study area, a too large DEM.
        OperationCanceled: cancelled.

    """
    progress, is_canceled = progress or (lambda _p: None), is_canceled or (lambda: False)
    grid = metric_grid_of(dem_path)
    if grid.width * grid.height > MAX_PIXELS:
        raise RtsFusionError(
            f"The DEM grid is {grid.width} × {grid.height} px; give an area of interest or a DEM below "
            f"{MAX_PIXELS:,} px."
        )
    px = abs(grid.transform[0])
    dem = read_on_grid(dem_path, grid)[0]
    valid = np.isfinite(dem)
    if aoi_path:
        valid &= rasterize_polygons(aoi_path, grid).astype(bool)
    if not valid.any():
        raise RtsFusionError("The DEM holds no valid elevation in the study area.")
    labels, n = label_polygons(slumps_path, grid)
    if not (labels[valid] > 0).any():
        raise RtsFusionError("No slump polygon of the inventory lies on valid DEM pixels of the study area.")
    progress(15)
    slope = terrain.slope_degrees(dem, px, px)
    factors = [
        binned("elevation", dem, options.elevation_bin, "m"),
        edged("slope", slope, options.slope_edges, "°")
        if options.slope_edges
        else binned("slope", slope, options.slope_bin, "°"),
        aspect_factor(dem, px, slope < options.flat_slope),
        position_factor(dem, px, slope, options.tpi_radius, options.flat_slope),
    ]
    water_source = "none"
    if water_path or optical_path:
        water, water_source = water_mask(grid, water_path, optical_path, green_band, nir_band, options.ndwi_threshold)
        if water.any():
            dist = ndimage.distance_transform_edt(~water) * px
            factors.append(edged("distance to water", np.where(valid, dist, np.nan), options.water_edges, "m"))
            valid &= ~water  # the study area is land
        else:
            water_source += " (no water found: distance left out)"
    progress(40)
    rows: list[dict] = []
    for k, f in enumerate(factors):
        if is_canceled():
            raise OperationCanceled("Inventory statistics cancelled.")
        rows += factor_rows(f, labels, n, valid, px * px)
        progress(40 + 60 * (k + 1) / len(factors))
    counted = len(np.unique(labels[valid & (labels > 0)]))
    return InventoryResult(rows, summarize(rows), counted, float(valid.sum() * px * px / 1e6), px, water_source)


def write_report(path: str, result: InventoryResult) -> str:
    """An HTML report: summary, one frequency-ratio chart (PNG beside it) and one table per factor."""
    folder = report.assets_folder(path)
    sections = [
        (
            "Summary",
            f"<p>{result.n_slumps} slumps over {result.study_area_km2:.2f} km² (grid {result.pixel_size_m:g} m; "
            f"water from: {result.water_source}).</p><ul>"
            + "".join(f"<li>{s}</li>" for s in result.summary)
            + "</ul><p>Frequency ratio = share of slump area in a class ÷ share of the study area in it; above 1 "
            "the class holds more slumps than its size implies.</p>",
        )
    ]
    for name in dict.fromkeys(r["factor"] for r in result.rows):
        fr = [r for r in result.rows if r["factor"] == name]
        png = os.path.join(folder, f"{name.replace(' ', '_')}.png")
        report.bar_chart(
            png,
            [r["class"] for r in fr],
            [r["frequency_ratio"] or 0.0 for r in fr],
            name.capitalize(),
            "Frequency ratio",
        )
        table = [{k: r[k] for k in ("class", "slumps", "slump_area_m2", "slump_share", "area_share", "frequency_ratio")}
                 for r in fr]  # fmt: skip
        sections.append((name.capitalize(), report.image(png, path) + report.table(table)))
    return report.write_html(path, "RTS inventory statistics", sections)
