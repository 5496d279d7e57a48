"""Detections to polygons: threshold, clean (holes, small objects, nodata fragments), vectorise, attribute."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import rasterio
from osgeo import ogr, osr
from rasterio.features import shapes
from scipy import ndimage

from .errors import OperationCanceled, RtsFusionError
from .grid import TargetGrid, read_window, utm_epsg, warped_vrt
from .stack import read_stack_info
from .terrain import slope_degrees
from .vector import PolygonRecord, write_polygons

ogr.UseExceptions()
FOUR = ndimage.generate_binary_structure(2, 1)  # 4-connectivity, as rasterio's shapes()
ZONAL = (("DEM", "elev_mean"), ("SLOPE", "slope_mean"), ("LST", "lst_mean"), ("NDVI", "ndvi_mean"))


@dataclass(frozen=True)
class PolygonizeOptions:
    """Cleaning of detections before vectorising.

    Attributes:
        threshold: probability at or above which a pixel is a slump (probability input only).
        min_area_m2: drop objects smaller than this.
        fill_holes_m2: fill holes smaller than this inside objects.
        simplify_m: Douglas–Peucker tolerance in map units, topology preserved (0 = none).
        smooth_iterations: Chaikin corner-cutting passes that round the pixel staircase (0 = none); a polygon
            whose smoothed form would be invalid (self-intersecting) keeps its unsmoothed outline.
        drop_touching_nodata: drop objects touching nodata (fragments cut by missing data).

    """

    threshold: float = 0.5
    min_area_m2: float = 0.0
    fill_holes_m2: float = 0.0
    simplify_m: float = 0.0
    smooth_iterations: int = 0
    drop_touching_nodata: bool = True


@dataclass
class Detections:
    """A binary detection raster read from a probability or mask GeoTIFF."""

    binary: np.ndarray
    valid: np.ndarray
    probability: np.ndarray | None
    grid: TargetGrid


def read_detections(path: str, threshold: float = 0.5) -> Detections:
    """Read a probability raster (float 0–1, or RTS Fusion's uint8 ×250) or a 0/1 mask, as a binary array.

    Raises:
        RtsFusionError: unreadable file or a raster without any valid pixel.

    """
    try:
        with rasterio.open(path) as ds:
            band = ds.read(1, masked=True)
            tags = ds.tags()
            grid = TargetGrid(ds.crs.to_wkt() if ds.crs else "", tuple(ds.transform)[:6], ds.width, ds.height)
            dtype = ds.dtypes[0]
    except rasterio.errors.RasterioIOError as exc:
        raise RtsFusionError(f"Cannot read the detection raster '{path}': {exc}") from exc
    valid = ~np.ma.getmaskarray(band)
    if not valid.any():
        raise RtsFusionError(f"The detection raster '{path}' holds only nodata.")
    values = band.filled(0).astype(np.float32)
    kind = tags.get("RTSFUSION_PROBABILITY", "")
    if kind.startswith("uint8"):
        prob = values / 250.0
    elif np.issubdtype(np.dtype(dtype), np.floating):
        prob = values
    else:
        prob = None
    binary = (prob >= threshold) if prob is not None else values > 0
    return Detections(binary & valid, valid, prob, grid)


def _metric_transform(crs_wkt: str, x: float, y: float):
    """A transformation to the local UTM zone when the CRS is geographic (areas in m²), else None."""
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs_wkt)
    if not srs.IsGeographic():
        return None
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    utm = osr.SpatialReference()
    utm.ImportFromEPSG(utm_epsg(x, y))
    utm.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return osr.CoordinateTransformation(srs, utm)


def _ogr_polygon(geojson: dict) -> ogr.Geometry:
    poly = ogr.Geometry(ogr.wkbPolygon)
    for ring_coords in geojson["coordinates"]:
        ring = ogr.Geometry(ogr.wkbLinearRing)
        for x, y in ring_coords:
            ring.AddPoint_2D(float(x), float(y))
        poly.AddGeometry(ring)
    return poly


def chaikin(ring: np.ndarray, iterations: int) -> np.ndarray:
    """Chaikin corner cutting of a closed ring (N+1, 2), first point repeated last; returns a closed ring.

    Each pass replaces every edge P→Q by the points ¾P+¼Q and ¼P+¾Q, so the curve stays inside the
    polygon's convex corners and outside its concave ones; the area changes by well under one pixel row.
    """
    pts = ring[:-1]
    for _ in range(iterations):
        nxt = np.roll(pts, -1, axis=0)
        pts = np.stack([0.75 * pts + 0.25 * nxt, 0.25 * pts + 0.75 * nxt], axis=1).reshape(-1, 2)
    return np.vstack([pts, pts[:1]])


def _smooth(poly: ogr.Geometry, iterations: int) -> ogr.Geometry:
    out = ogr.Geometry(ogr.wkbPolygon)
    for coords in _rings(poly):
        ring = ogr.Geometry(ogr.wkbLinearRing)
        for x, y in chaikin(np.asarray(coords, dtype=float), iterations):
            ring.AddPoint_2D(float(x), float(y))
        out.AddGeometry(ring)
    return out


def _rings(geom: ogr.Geometry) -> list[list[tuple[float, float]]]:
    rings = []
    for i in range(geom.GetGeometryCount()):
        r = geom.GetGeometryRef(i)
        rings.append([(r.GetX(j), r.GetY(j)) for j in range(r.GetPointCount())])
    return rings


def _zonal_layers(stack_path: str, grid: TargetGrid) -> dict[str, np.ndarray]:
    """DEM, slope, LST and NDVI of the stack on the detection grid (slope derived from DEM if absent)."""
    info = read_stack_info(stack_path)
    wanted = [b for b, _ in ZONAL if b in info.band_names]
    if "SLOPE" not in wanted and "DEM" in info.band_names:
        wanted.append("DEM")
    out: dict[str, np.ndarray] = {}
    if not wanted:
        return out
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    with rasterio.open(stack_path) as ds, warped_vrt(ds, grid, Resampling.bilinear, halo=1) as vrt:
        win = Window(0, 0, grid.width, grid.height)
        for b in dict.fromkeys(wanted):
            arr = read_window(vrt, [info.band_index(b)], win, halo=1)[0]
            arr[arr == info.nodata] = np.nan
            if b == "DEM" and "SLOPE" not in info.band_names:
                dx, dy = grid.metres_per_pixel()
                out["SLOPE"] = slope_degrees(arr, dx, dy)[1:-1, 1:-1]
            out[b] = arr[1:-1, 1:-1]
    return out


def label_objects(det: Detections, opts: PolygonizeOptions) -> tuple[np.ndarray, int]:
    """Clean the binary detections and label the objects (4-connected). Returns (labels, count)."""
    px_area = det.grid.metres_per_pixel()[0] * det.grid.metres_per_pixel()[1]
    binary = det.binary.copy()
    if opts.fill_holes_m2 > 0:
        holes, n_holes = ndimage.label(ndimage.binary_fill_holes(binary, structure=FOUR) & ~binary)
        small = np.bincount(holes.ravel(), minlength=n_holes + 1) * px_area < opts.fill_holes_m2
        small[0] = False
        binary |= small[holes] & det.valid
    labels, n = ndimage.label(binary, structure=FOUR)
    if n == 0:
        return labels, 0
    drop = np.zeros(n + 1, dtype=bool)
    if opts.min_area_m2 > 0:
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        drop |= sizes * px_area < opts.min_area_m2
    if opts.drop_touching_nodata and not det.valid.all():
        near_nodata = ndimage.binary_dilation(~det.valid, structure=np.ones((3, 3), bool))
        drop[np.unique(labels[near_nodata & (labels > 0)])] = True
    drop[0] = False
    keep = np.flatnonzero(~drop[1:]) + 1
    remap = np.zeros(n + 1, dtype=np.int32)
    remap[keep] = np.arange(1, len(keep) + 1)
    return remap[labels], len(keep)


def polygonize(
    raster_path: str,
    output: str,
    opts: PolygonizeOptions = PolygonizeOptions(),
    stack_path: str | None = None,
    layer_name: str = "thaw_slumps",
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
) -> int:
    """Vectorise a probability or mask raster into a GeoPackage of attributed slump polygons.

    Attributes: id, area_m2, perimeter_m, pixels, prob_mean and prob_max (probability input), and the zonal
    means elev_mean, slope_mean, lst_mean, ndvi_mean from the fused stack when it is given.

    Returns:
        The number of polygons written.

    Raises:
        RtsFusionError: unreadable inputs.
        OperationCanceled: cancelled; the output is removed.

    """
    progress, is_canceled = progress or (lambda _p: None), is_canceled or (lambda: False)
    det = read_detections(raster_path, opts.threshold)
    labels, n = label_objects(det, opts)
    progress(20)
    ids = np.arange(1, n + 1)
    stats: dict[str, np.ndarray] = {}
    if n and det.probability is not None:
        stats["prob_mean"] = ndimage.mean(det.probability, labels, ids)
        stats["prob_max"] = ndimage.maximum(det.probability, labels, ids)
    if n and stack_path:
        for band, layer in _zonal_layers(stack_path, det.grid).items():
            name = dict(ZONAL)[band]
            finite = np.isfinite(layer)
            sums = ndimage.sum(np.where(finite, layer, 0), labels, ids)
            counts = ndimage.sum(finite, labels, ids)
            stats[name] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    pixels = np.bincount(labels.ravel(), minlength=n + 1)[1:] if n else np.zeros(0, int)
    progress(40)
    records = []
    example = {"id": 0, "area_m2": 0.0, "perimeter_m": 0.0, "pixels": 0, **{k: 0.0 for k in stats}}
    try:
        for k, (geom, value) in enumerate(shapes(labels, mask=labels > 0, connectivity=4, transform=det.grid.affine)):
            if is_canceled():
                raise OperationCanceled("Polygonising cancelled.")
            i = int(value)
            poly = _ogr_polygon(geom)
            if opts.simplify_m > 0:
                simple = poly.SimplifyPreserveTopology(opts.simplify_m)
                if simple is not None and simple.IsValid() and not simple.IsEmpty():
                    poly = simple
            if opts.smooth_iterations > 0:
                smooth = _smooth(poly, opts.smooth_iterations)
                if smooth.IsValid() and not smooth.IsEmpty():
                    poly = smooth
            measured = poly.Clone()
            ct = _metric_transform(det.grid.crs_wkt, *poly.Centroid().GetPoint_2D())
            if ct is not None:
                measured.Transform(ct)
            attrs = {
                "id": i,
                "area_m2": round(measured.GetArea(), 2),
                "perimeter_m": round(measured.Boundary().Length(), 2),
                "pixels": int(pixels[i - 1]),
            }
            for name, values in stats.items():
                v = float(values[i - 1])
                attrs[name] = round(v, 4) if np.isfinite(v) else None
            rings = _rings(poly)
            records.append(PolygonRecord(rings[0], attrs, tuple(rings[1:])))
            if k % 200 == 0:
                progress(40 + 50 * k / max(n, 1))
        records.sort(key=lambda r: r.attributes["id"])
        write_polygons(output, layer_name, det.grid.crs_wkt, records, fields=list(example.items()))
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(output)
        raise
    progress(100)
    return len(records)
