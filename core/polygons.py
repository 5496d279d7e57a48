"""Detections to polygons: threshold, clean (holes, small objects, nodata fragments), vectorise, attribute."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import rasterio
from osgeo import gdal, gdal_array, ogr, osr
from rasterio.windows import Window
from scipy import ndimage

from .errors import OperationCanceled, RtsFusionError
from .grid import TargetGrid, read_window, utm_epsg, warped_vrt
from .outputs import AtomicOutput, check_not_input
from .stack import read_stack_info
from .terrain import slope_degrees

gdal.UseExceptions()
ogr.UseExceptions()
FOUR = ndimage.generate_binary_structure(2, 1)  # 4-connectivity, as rasterio's shapes()
UINT8_SCALE = 250  # RTS Fusion's uint8 probability: p × 250, 255 = nodata
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
        RtsFusionError: unreadable file, a raster without any valid pixel, or one that is not a probability or
            mask (several bands, values outside 0–1, 0–250 or 0/1).

    """
    name = os.path.basename(path)
    try:
        with rasterio.open(path) as ds:
            if ds.count != 1:
                raise RtsFusionError(
                    f"The detection raster '{name}' has {ds.count} bands; a one-band probability raster (0–1) or "
                    "slump mask (0/1) is needed, such as the outputs of Detect thaw slumps."
                )
            data = ds.read(1)
            tags = ds.tags()
            grid = TargetGrid(ds.crs.to_wkt() if ds.crs else "", tuple(ds.transform)[:6], ds.width, ds.height)
            nodata = ds.nodata
    except rasterio.errors.RasterioIOError as exc:
        raise RtsFusionError(f"Cannot read the detection raster '{path}': {exc}") from exc
    floating = np.issubdtype(data.dtype, np.floating)
    valid = np.isfinite(data) if floating else np.ones(data.shape, bool)
    if nodata is not None:
        valid &= data != nodata
    if not valid.any():
        raise RtsFusionError(f"The detection raster '{path}' holds only nodata.")
    first = data.flat[int(valid.argmax())]  # a valid value, as the starting point of min and max
    lo, hi = float(data.min(where=valid, initial=first)), float(data.max(where=valid, initial=first))
    scaled = tags.get("RTSFUSION_PROBABILITY", "").startswith("uint8")
    top, kind = (UINT8_SCALE, "a probability scaled to 0–250") if scaled else (1, "a probability (0–1) or mask (0/1)")
    if lo < 0 or hi > top * (1 + 1e-6) or (not floating and not scaled and np.any((data > 1) & valid)):
        raise RtsFusionError(
            f"The detection raster '{name}' holds values from {lo:g} to {hi:g}, so it is not {kind}. Give the "
            "probability or mask raster written by Detect thaw slumps (or set the raster's nodata value)."
        )
    if scaled:
        prob = data.astype(np.float32) / UINT8_SCALE
    elif floating:
        prob = data.astype(np.float32, copy=False)
    else:
        prob = None
    binary = (prob >= threshold) if prob is not None else data > 0
    return Detections(binary & valid, valid, None if prob is None else np.where(valid, prob, 0), grid)


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


def _offset_on(base: TargetGrid, grid: TargetGrid) -> tuple[int, int] | None:
    """(col, row) of `grid`'s origin on `base` when both share CRS and pixel size and lie on one lattice, else None."""
    a, b = base.affine, grid.affine
    if base.crs_wkt != grid.crs_wkt or (a.a, a.b, a.d, a.e) != (b.a, b.b, b.d, b.e) or a.b or a.d:
        return None
    col, row = (b.c - a.c) / a.a, (b.f - a.f) / a.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return round(col), round(row)


def _read_padded(ds, band: int, col: int, row: int, width: int, height: int) -> np.ndarray:
    """A band's window as float32, NaN where it reaches beyond the raster."""
    out = np.full((height, width), np.nan, np.float32)
    c0, r0 = max(col, 0), max(row, 0)
    c1, r1 = min(col + width, ds.width), min(row + height, ds.height)
    if c1 > c0 and r1 > r0:
        out[r0 - row : r1 - row, c0 - col : c1 - col] = ds.read(band, window=Window(c0, r0, c1 - c0, r1 - r0))
    return out


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

    offset = _offset_on(info.grid, grid)
    with contextlib.ExitStack() as stack:
        ds = stack.enter_context(rasterio.open(stack_path))
        vrt = None if offset is not None else stack.enter_context(warped_vrt(ds, grid, Resampling.bilinear, halo=1))
        win = Window(0, 0, grid.width, grid.height)
        for b in dict.fromkeys(wanted):
            if offset is not None:  # the detection grid lies on the stack's lattice: read it, NaN beyond
                col, row = offset
                arr = _read_padded(ds, info.band_index(b), col - 1, row - 1, grid.width + 2, grid.height + 2)
            else:
                arr = read_window(vrt, [info.band_index(b)], win, halo=1)[0]
            arr[arr == info.nodata] = np.nan
            if b == "DEM" and "SLOPE" not in info.band_names:
                dx, dy = grid.metres_per_pixel()
                out["SLOPE"] = slope_degrees(arr, dx, dy)[1:-1, 1:-1]
            out[b] = arr[1:-1, 1:-1]
    return out


def object_sizes(labels: np.ndarray, n: int) -> np.ndarray:
    """Pixel count of objects 0…n of a label raster, counted over the labelled pixels only (objects are sparse)."""
    flat = labels.ravel()
    return np.bincount(flat[np.flatnonzero(flat)], minlength=n + 1)


def label_objects(det: Detections, opts: PolygonizeOptions) -> tuple[np.ndarray, int]:
    """Clean the binary detections and label the objects (4-connected). Returns (labels, count)."""
    px_area = det.grid.metres_per_pixel()[0] * det.grid.metres_per_pixel()[1]
    binary = det.binary
    if opts.fill_holes_m2 > 0:
        holes, n_holes = ndimage.label(ndimage.binary_fill_holes(binary, structure=FOUR) & ~binary)
        small = object_sizes(holes, n_holes) * px_area < opts.fill_holes_m2
        small[0] = False
        binary = binary | (small[holes] & det.valid)
    labels, n = ndimage.label(binary, structure=FOUR)
    if n == 0:
        return labels, 0
    drop = np.zeros(n + 1, dtype=bool)
    if opts.min_area_m2 > 0:
        drop |= object_sizes(labels, n) * px_area < opts.min_area_m2
    if opts.drop_touching_nodata and not det.valid.all():
        near_nodata = ndimage.binary_dilation(~det.valid, structure=np.ones((3, 3), bool))
        drop[np.unique(labels[near_nodata & (labels > 0)])] = True
    drop[0] = False
    if not drop.any():
        return labels, n
    keep = np.flatnonzero(~drop[1:]) + 1
    remap = np.zeros(n + 1, dtype=labels.dtype)
    remap[keep] = np.arange(1, len(keep) + 1)
    flat = labels.ravel()
    where = np.flatnonzero(flat)
    flat[where] = remap[flat[where]]  # only the labelled pixels change
    return labels, len(keep)


def _boundary_lengths(labels: np.ndarray, n: int, dx: float, dy: float) -> np.ndarray:
    """Boundary length (holes included) of objects 1…n of a label raster: their pixel edges, in CRS units.

    This is exactly the perimeter of the polygons GDAL traces from the labels (before any simplification).
    """
    count = np.zeros(n + 1)
    for a, b, step in ((labels[:, 1:], labels[:, :-1], dy), (labels[1:], labels[:-1], dx)):
        diff = a != b
        count += (np.bincount(a[diff], minlength=n + 1) + np.bincount(b[diff], minlength=n + 1)) * step
    for edge, step in ((labels[:, 0], dy), (labels[:, -1], dy), (labels[0], dx), (labels[-1], dx)):
        count += np.bincount(edge, minlength=n + 1) * step
    return count[1:]


def _trace(labels: np.ndarray, grid: TargetGrid, layer: ogr.Layer, is_canceled: Callable[[], bool]) -> None:
    """Trace each object of a label raster as one polygon (GDAL's polygoniser) into a layer whose field 0 is id."""
    raster = gdal_array.OpenArray(np.ascontiguousarray(labels, dtype=np.int32))  # no copy
    raster.SetGeoTransform(grid.affine.to_gdal())
    band = raster.GetRasterBand(1)
    try:  # the band is its own mask: background (0) is skipped
        gdal.Polygonize(band, band, layer, 0, [], callback=lambda *_: 0 if is_canceled() else 1)
    except RuntimeError as exc:
        if is_canceled():
            raise OperationCanceled("Polygonising cancelled.") from exc
        raise


def _reshape(layer: ogr.Layer, crs_wkt: str, opts: PolygonizeOptions, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Simplify and smooth the traced polygons in place; their metric area and perimeter by id (n,) each."""
    area, perimeter = np.zeros(n), np.zeros(n)
    layer.ResetReading()
    for feat in layer:
        poly = feat.GetGeometryRef().Clone()
        if opts.simplify_m > 0:
            simple = poly.SimplifyPreserveTopology(opts.simplify_m)
            if simple is not None and simple.IsValid() and not simple.IsEmpty():
                poly = simple
        if opts.smooth_iterations > 0:
            smooth = _smooth(poly, opts.smooth_iterations)
            if smooth.IsValid() and not smooth.IsEmpty():
                poly = smooth
        measured = poly.Clone()
        ct = _metric_transform(crs_wkt, *poly.Centroid().GetPoint_2D())
        if ct is not None:
            measured.Transform(ct)
        i = feat.GetFieldAsInteger(0) - 1
        area[i], perimeter[i] = measured.GetArea(), measured.Boundary().Length()
        if opts.simplify_m > 0 or opts.smooth_iterations > 0:
            feat.SetGeometryDirectly(poly)
            layer.SetFeature(feat)
    return area, perimeter


def _is_geographic(crs_wkt: str) -> bool:
    srs = osr.SpatialReference()
    return bool(crs_wkt) and srs.ImportFromWkt(crs_wkt) == 0 and bool(srs.IsGeographic())


def _set_attributes(ds: ogr.DataSource, layer_name: str, columns: dict[str, tuple[np.ndarray, int | None]]) -> None:
    """Fill the layer's columns by id in a few SQL statements (a table of values joined on id), not per feature."""
    names = list(columns)
    table = "rtsfusion_attributes"
    ds.ExecuteSQL(f"CREATE TEMP TABLE {table} (id INTEGER PRIMARY KEY, {', '.join(f'{c}' for c in names)})")

    text = []
    for values, digits in columns.values():
        if digits is None:
            text.append(np.asarray(values, np.int64).astype(str))
        else:
            v = np.round(np.asarray(values, np.float64), digits)
            text.append(np.where(np.isfinite(v), v.astype(str), "NULL"))
    rows = ["(" + ",".join(r) + ")" for r in zip(np.arange(1, len(text[0]) + 1).astype(str), *text)]
    for start in range(0, len(rows), 500):
        ds.ExecuteSQL(f"INSERT INTO {table} VALUES {','.join(rows[start : start + 500])}")
    ds.ExecuteSQL(
        f'UPDATE "{layer_name}" SET ({", ".join(names)}) = '
        f'(SELECT {", ".join(names)} FROM {table} WHERE {table}.id = "{layer_name}".id)'
    )
    ds.ExecuteSQL(f"DROP TABLE {table}")


def polygonize(
    raster_path: str,
    output: str,
    opts: PolygonizeOptions = PolygonizeOptions(),
    stack_path: str | None = None,
    layer_name: str = "thaw_slumps",
    probability_path: str | None = None,
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
) -> int:
    """Vectorise a probability or mask raster into a GeoPackage of attributed slump polygons.

    Attributes: id, area_m2, perimeter_m, pixels, prob_mean and prob_max (probability input), and the zonal
    means elev_mean, slope_mean, lst_mean, ndvi_mean from the fused stack when it is given. Objects are traced
    by GDAL's polygoniser; on a projected grid without simplification or smoothing, area and perimeter are
    counted exactly from the pixels, otherwise measured on each polygon (in the local UTM zone for a
    geographic grid).

    With `probability_path`, `raster_path` is the mask thresholded from that probability raster (same grid): the
    objects come from the mask, prob_mean and prob_max from the probability.

    Returns:
        The number of polygons written.

    Raises:
        RtsFusionError: unreadable inputs, a raster that is not a probability or mask.
        OperationCanceled: cancelled; nothing is written (a file already at the output stays as it was).

    """
    progress, is_canceled = progress or (lambda _p: None), is_canceled or (lambda: False)
    check_not_input(output, {"detection raster": raster_path, "fused stack": stack_path}, "slump polygons")
    det = read_detections(raster_path, opts.threshold)
    if probability_path:
        prob = read_detections(probability_path).probability
        if prob is None or prob.shape != det.binary.shape:
            raise RtsFusionError(f"'{probability_path}' is not a probability raster on the grid of '{raster_path}'.")
        det.probability = prob
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
    pixels = object_sizes(labels, n)[1:]
    progress(40)
    out = AtomicOutput(output, "slump polygons")  # replaces the target only when the layer is complete
    srs = osr.SpatialReference()
    if det.grid.crs_wkt:
        srs.ImportFromWkt(det.grid.crs_wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    try:
        ds = ogr.GetDriverByName("GPKG").CreateDataSource(out.path)
        layer = ds.CreateLayer(layer_name, srs, ogr.wkbPolygon)
        for name, kind in (("id", ogr.OFTInteger), ("area_m2", ogr.OFTReal), ("perimeter_m", ogr.OFTReal),
                           ("pixels", ogr.OFTInteger), *((k, ogr.OFTReal) for k in stats)):  # fmt: skip
            layer.CreateField(ogr.FieldDefn(name, kind))
        ds.StartTransaction()
        _trace(labels, det.grid, layer, is_canceled)
        progress(70)
        if opts.simplify_m > 0 or opts.smooth_iterations > 0 or _is_geographic(det.grid.crs_wkt):
            area, perimeter = _reshape(layer, det.grid.crs_wkt, opts, n)
        else:
            a, b, _, d, e, _ = tuple(det.grid.affine)[:6]
            area = pixels * abs(a * e - b * d)
            perimeter = _boundary_lengths(labels, n, abs(a), abs(e))
        if is_canceled():
            raise OperationCanceled("Polygonising cancelled.")
        if n:
            columns = {"area_m2": (area, 2), "perimeter_m": (perimeter, 2), "pixels": (pixels, None)}
            _set_attributes(ds, layer_name, {**columns, **{k: (v, 4) for k, v in stats.items()}})
        ds.CommitTransaction()
        count = layer.GetFeatureCount()
        ds = layer = None
    except BaseException:
        ds = layer = None
        out.discard()
        raise
    out.commit()
    progress(100)
    return count
