"""Map a whole region on Dask: units on one global grid, each mapped by map_slumps, then merged.

The region's grid is the one a single run over the same inputs would use (core/stack.fused_grid). It is cut into
square units of `unit_size` pixels. Each unit is one Dask task running pipeline.map_slumps with a UnitWindow: its
fused stack covers every tile of the region's tile lattice that touches the unit's core (the halo; the DEM is read
beyond it by the terrain radius, as in a single run), and its probability and mask cover the core. So the
region's probabilities are those of a single run over the same area, up to float rounding.

Slumps are polygonised once every mask exists, again per unit: a unit owns the slumps whose first pixel (in
raster order) lies in its core, reads the mask mosaic around its core (widened until each owned slump is whole)
and polygonises exactly those with the same cleaning as mapslumps. A slump cut by a unit border is thus one
polygon, never split and never duplicated.

Each unit writes its rasters atomically, then a small JSON status record; a rerun skips units whose record says
done. Dask retries a unit whose worker died; a unit that still fails is reported with its error and the rest of
the region completes. Outputs in the folder: probability.vrt and mask.vrt over the unit files (COGs with
overviews on request), slumps.gpkg with the merged polygons, units.csv with each unit's state. Dask is imported
here only, inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..core.errors import EmptyExtentError, OperationCanceled, RtsFusionError
from ..core.grid import TargetGrid
from ..core.outputs import AtomicOutput, check_writable
from ..core.tiling import TileLayout
from .map_slumps import (
    LoadedModel,
    MapInputs,
    MapOptions,
    MapOutputs,
    UnitWindow,
    load_model,
    map_slumps,
    polygonize_options,
    write_vector,
)

ProgressFn = Callable[[float], None]
CancelFn = Callable[[], bool]
LogFn = Callable[[str], None]

DONE, EMPTY, FAILED, OUTSIDE, RUNNING = "done", "empty", "failed", "outside area of interest", "running"
LAYER = "thaw_slumps"
# Polygonising margin around a unit's core to start with (pixels); doubled while an owned slump reaches its edge.
MARGIN = 64
# Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536 to hand freed memory back to the system at once.
# Setting it also turns off glibc's adaptive mmap threshold, so every large numpy temporary is a fresh mmap and its
# pages fault in again: map_slumps on the 1024² sample scene took 20.3 s with it instead of 12.1 s (one process,
# 1 thread). Our workers keep glibc's default; a cluster of your own gets the same with this in its Dask config.
WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
_MODELS: dict[tuple[str, float, str], LoadedModel] = {}  # per worker process: each model loaded once


@dataclass(frozen=True)
class RegionOptions:
    """How the region is cut and where it runs.

    Attributes:
        unit_size: side of a unit's core in pixels (of the region's grid).
        workers: local worker processes (0: one per GPU, else one per CPU core); ignored with a scheduler.
        scheduler: address of an existing Dask scheduler (tcp://host:8786); empty for a local cluster.
        retries: times Dask reruns a unit whose worker died or which raised, before it is reported failed.
        aoi: polygon layer (file path, optionally '|layername=…') limiting the region: the grid is clipped to its
            bounding box and only units meeting its polygons are mapped.
        cog: also write the probability and mask as Cloud-Optimised GeoTIFFs with overviews.
        geoparquet: also write the polygons as GeoParquet (needs GDAL's Parquet driver).
        python: interpreter for local worker processes (inside QGIS: QGIS's Python, never the QGIS binary).

    """

    unit_size: int = 4096
    workers: int = 0
    scheduler: str = ""
    retries: int = 2
    aoi: str | None = None
    cog: bool = False
    geoparquet: bool = False
    python: str | None = None

    def __post_init__(self) -> None:
        if self.unit_size < 64:
            raise RtsFusionError(f"The unit size must be at least 64 pixels, not {self.unit_size}.")
        if self.workers < 0:
            raise RtsFusionError(f"The number of workers cannot be negative ({self.workers}).")
        if self.retries < 0:
            raise RtsFusionError(f"The number of retries cannot be negative ({self.retries}).")


@dataclass(frozen=True)
class UnitJob:
    """Everything one unit's task needs (sent to a Dask worker)."""

    id: str
    inputs: MapInputs
    model: str
    options: MapOptions
    unit: UnitWindow
    folder: str

    def paths(self) -> MapOutputs:
        """The unit's stack, probability and mask files (no polygons: they are made across units)."""
        d = os.path.join(self.folder, "units", self.id)
        return MapOutputs(
            os.path.join(d, "stack.tif"), os.path.join(d, "probability.tif"), os.path.join(d, "mask.tif"), ""
        )

    def fingerprint(self) -> str:
        """A hash of what the unit's result depends on (inputs, grid, window, model file, options).

        A rerun with other settings into the same folder redoes the unit instead of reusing it.
        """
        model = os.path.abspath(self.model)
        stat = os.stat(model) if os.path.exists(model) else None
        data = {
            "inputs": repr(self.inputs),
            "grid": repr(self.unit.grid),
            "halo": self.unit.halo,
            "core": self.unit.core,
            "model": [model, stat.st_size if stat else 0, stat.st_mtime if stat else 0],
            "options": repr(replace(self.options, device="auto")),  # any device gives the same map
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def status_path(self) -> str:
        """The unit's JSON status record."""
        return os.path.join(self.folder, "units", f"{self.id}.json")


@dataclass(frozen=True)
class RegionResult:
    """What a region run wrote and found.

    Attributes:
        folder: the output folder.
        probability, mask: VRT mosaics over the unit files.
        polygons: the merged GeoPackage; geoparquet: its GeoParquet copy or "".
        probability_cog, mask_cog: the COGs or "".
        status: the unit status table (CSV).
        count: slump polygons.
        units: units of the region; done: mapped in this run; resumed: done by an earlier run; empty: without
            valid data; outside: outside the area of interest; failed: (unit id, error) of units that failed.
        tiles: detection tiles run in this run.
        dashboard: the Dask dashboard's address.

    """

    folder: str
    probability: str
    mask: str
    polygons: str
    status: str
    count: int
    units: int
    done: int
    resumed: int
    empty: int
    outside: int
    failed: tuple[tuple[str, str], ...]
    tiles: int
    dashboard: str = ""
    probability_cog: str = ""
    mask_cog: str = ""
    geoparquet: str = ""


# ---------------------------------------------------------------------------------------------------- planning


def unit_windows(grid: TargetGrid, unit_size: int, tile: int, overlap: int) -> list[tuple[str, UnitWindow]]:
    """Cut the region's grid into units: (id, UnitWindow) row by row.

    A unit's halo is the span of the region's lattice tiles that touch its core, so its stack holds each of them.
    """
    out = []
    for r in range(0, grid.height, unit_size):
        for c in range(0, grid.width, unit_size):
            core = (c, r, min(unit_size, grid.width - c), min(unit_size, grid.height - r))
            layout = TileLayout(grid.height, grid.width, tile, overlap, core)
            first, end = layout.span
            top, bottom = layout.rows[0], layout.rows[-1] + layout.tile_height
            halo = (first, top, end - first, bottom - top)
            out.append((f"r{r // unit_size:04d}_c{c // unit_size:04d}", UnitWindow(grid, halo, core)))
    return out


def _aoi_geometry(aoi: str, grid: TargetGrid):
    """The area of interest's polygons united, in the grid's CRS (an ogr geometry).

    Read as every polygon layer of the plugin is (core.vector): QGIS's '|layername=' and '|subset=' suffixes apply.

    Raises:
        RtsFusionError: unreadable, empty or not polygons.

    """
    from osgeo import ogr

    from ..core.vector import read_geometries, split_source

    union = ogr.Geometry(ogr.wkbMultiPolygon)
    for _, geom in read_geometries(aoi, grid.crs_wkt):
        union = union.Union(geom)
    if union.IsEmpty():
        raise RtsFusionError(f"The area of interest '{split_source(aoi)[0]}' holds no polygon.")
    return union


def _window_box(grid: TargetGrid, window: tuple[int, int, int, int]):
    from osgeo import ogr

    x0, y0, x1, y1 = grid.window_bounds(window)
    return ogr.CreateGeometryFromWkt(f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))")


def plan_region(
    inputs: MapInputs, card, region: RegionOptions, folder: str, model: str, options: MapOptions
) -> tuple[TargetGrid, list[UnitJob], list[UnitJob]]:
    """The region's grid and its unit jobs: (grid, units to map, units outside the area of interest).

    Raises:
        RtsFusionError: inputs that cannot be aligned, an unreadable area of interest or one missing the layers.

    """
    from ..core.stack import GridOptions, fused_grid

    grid_options = inputs.grid
    aoi = None
    if region.aoi:
        grid = fused_grid(inputs.fusion, card.bands, grid_options)
        aoi = _aoi_geometry(region.aoi, grid)
        xmin, xmax, ymin, ymax = aoi.GetEnvelope()
        if grid_options.extent is not None:
            ex = grid_options.extent
            xmin, ymin, xmax, ymax = max(xmin, ex[0]), max(ymin, ex[1]), min(xmax, ex[2]), min(ymax, ex[3])
        grid_options = GridOptions(grid_options.crs, grid_options.pixel_size, (xmin, ymin, xmax, ymax))
    try:
        grid = fused_grid(inputs.fusion, card.bands, grid_options)
    except RtsFusionError as exc:
        if aoi is not None:
            raise RtsFusionError(f"The area of interest does not overlap the input layers: {exc}") from exc
        raise
    inputs = replace(inputs, grid=grid_options)
    jobs, outside = [], []
    for uid, unit in unit_windows(grid, region.unit_size, card.tile_size, card.overlap):
        job = UnitJob(uid, inputs, model, options, unit, folder)
        if aoi is not None and not aoi.Intersects(_window_box(grid, unit.core)):
            outside.append(job)
        else:
            jobs.append(job)
    return grid, jobs, outside


# ---------------------------------------------------------------------------------------------------- one unit


def _write_json(path: str, data: dict) -> None:
    """Write a small JSON record atomically (a killed process leaves the old record or none)."""
    with AtomicOutput(path, "unit status") as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)


def read_status(path: str) -> dict | None:
    """A unit's status record, or None when there is none (or it cannot be read)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_finished(job: UnitJob) -> bool:
    """Whether an earlier run finished the unit (done with its files present, or empty)."""
    status = read_status(job.status_path) or {}
    if status.get("fingerprint") != job.fingerprint():
        return False
    if status.get("state") == EMPTY:
        return True
    paths = job.paths()
    return status.get("state") == DONE and all(os.path.isfile(p) for p in (paths.stack, paths.probability, paths.mask))


def _cached_model(path: str, device: str) -> LoadedModel:
    """The model package loaded once per worker process (keyed by path, modification time and device)."""
    key = (os.path.abspath(path), os.path.getmtime(path), device)
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = load_model(path)
    return _MODELS[key]


def _worker_device(device: str) -> str:
    """On a machine with several GPUs, give each local worker its own (by the worker's number)."""
    if device == "cpu":
        return device
    try:
        import torch
    except ImportError:  # ONNX Runtime mapping without torch: its own provider choice applies
        return device
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count > 1:
        with contextlib.suppress(ValueError, ImportError):
            from distributed import get_worker

            name = get_worker().name
            index = int(name) if str(name).isdigit() else abs(hash(name))
            torch.cuda.set_device(index % count)
    return device


def run_unit(job: UnitJob) -> dict:
    """Map one unit (the Dask task): stack, probability and mask of its core, then its status record.

    A finished unit is skipped. Leftovers of an attempt killed mid-unit (temporary files) are removed first; the
    unit's files only ever appear complete. Returns the status record.

    Raises:
        RtsFusionError: the unit cannot be mapped (recorded as failed by the runner).

    """
    if is_finished(job):
        return {**(read_status(job.status_path) or {}), "resumed": True}
    paths = job.paths()
    folder = os.path.dirname(paths.stack)
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.startswith(".") and ".part" in name:  # an earlier attempt's temporary file
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(folder, name))
    os.makedirs(folder, exist_ok=True)
    base = {
        "id": job.id,
        "core": list(job.unit.core),
        "halo": list(job.unit.halo),
        "pid": os.getpid(),
        "fingerprint": job.fingerprint(),
    }
    _write_json(job.status_path, {**base, "state": RUNNING, "started": time.time()})
    start = time.perf_counter()
    options = replace(job.options, device=_worker_device(job.options.device))
    try:
        result = map_slumps(job.inputs, _cached_model(job.model, options.device), paths, options, unit=job.unit)
    except EmptyExtentError as exc:
        status = {**base, "state": EMPTY, "error": str(exc), "seconds": time.perf_counter() - start}
        _write_json(job.status_path, status)
        return status
    status = {
        **base,
        "state": DONE,
        "tiles": result.tiles,
        "slump_pixels": result.slump_pixels,
        "valid_pixels": result.valid_pixels,
        "seconds": round(time.perf_counter() - start, 3),
        "device": result.device,
        "warnings": list(result.warnings),
    }
    _write_json(job.status_path, status)
    return status


# ---------------------------------------------------------------------------------------------------- polygons


def _owned_mask(mask_vrt: str, grid: TargetGrid, core: tuple[int, int, int, int]):
    """The mask around a unit's core with only the slumps it owns: (window, binary, valid) or None when none.

    A slump is owned by the unit holding its first pixel in raster order; slumps are taken with their filled
    holes (the cleaning's extent), so the window grows until each owned one lies wholly inside it.
    """
    import rasterio
    from rasterio.windows import Window
    from scipy import ndimage

    from ..core.polygons import FOUR

    margin = MARGIN
    with rasterio.open(mask_vrt) as ds:
        while True:
            c0, r0 = max(0, core[0] - margin), max(0, core[1] - margin)
            c1 = min(grid.width, core[0] + core[2] + margin)
            r1 = min(grid.height, core[1] + core[3] + margin)
            data = ds.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
            valid = data != 255
            binary = (data == 1) & valid
            labels, n = ndimage.label(ndimage.binary_fill_holes(binary, structure=FOUR), structure=FOUR)
            if n == 0:
                return None
            ids, first = np.unique(labels.ravel(), return_index=True)
            rows, cols = np.divmod(first, labels.shape[1])
            rows, cols = rows + r0, cols + c0
            inside = (
                (ids > 0)
                & (rows >= core[1])
                & (rows < core[1] + core[3])
                & (cols >= core[0])
                & (cols < core[0] + core[2])
            )
            owned = ids[inside]
            if owned.size == 0:
                return None
            edges = []
            if c0 > 0:
                edges.append(labels[:, 0])
            if r0 > 0:
                edges.append(labels[0])
            if c1 < grid.width:
                edges.append(labels[:, -1])
            if r1 < grid.height:
                edges.append(labels[-1])
            cut = np.isin(owned, np.concatenate(edges)) if edges else np.zeros(owned.size, bool)
            if not cut.any():
                keep = np.isin(labels, owned) & binary
                return (c0, r0, c1 - c0, r1 - r0), keep, valid
            margin *= 2


def polygonize_unit(job: UnitJob, mosaics: tuple[str, str, str], out: str, layer_name: str = LAYER) -> tuple[str, int]:
    """Polygonise the slumps a unit owns from the region's mosaics (probability, mask, stack) into `out`.

    Returns:
        (out, count), out "" when the unit owns no slump.

    """
    from ..core.grid import bounded_gdal_cache

    # GDAL's block cache would otherwise keep blocks of every unit file this worker read (up to 5 % of RAM).
    with bounded_gdal_cache():
        return _polygonize_unit(job, mosaics, out, layer_name)


def _polygonize_unit(job: UnitJob, mosaics: tuple[str, str, str], out: str, layer_name: str) -> tuple[str, int]:
    import rasterio
    from rasterio.windows import Window

    from ..core.polygons import polygonize

    probability_vrt, mask_vrt, stack_vrt = mosaics
    grid = job.unit.grid
    found = _owned_mask(mask_vrt, grid, job.unit.core)
    if found is None:
        return "", 0
    (c0, r0, w, h), keep, valid = found
    work = tempfile.mkdtemp(prefix="rts_fusion_unit_")
    try:
        profile = {
            "driver": "GTiff",
            "width": w,
            "height": h,
            "count": 1,
            "crs": grid.crs,
            "transform": grid.window_transform(r0, c0),
        }
        mask_path, prob_path = os.path.join(work, "mask.tif"), os.path.join(work, "probability.tif")
        with rasterio.open(mask_path, "w", **profile, dtype="uint8", nodata=255) as dst:
            dst.write(np.where(valid, keep, 255).astype(np.uint8)[None])
        with rasterio.open(probability_vrt) as src:
            prob = src.read(1, window=Window(c0, r0, w, h))
            tags = src.tags()
            nodata = src.nodata
        with rasterio.open(prob_path, "w", **profile, dtype=prob.dtype, nodata=nodata) as dst:
            dst.write(prob[None])
            dst.update_tags(**tags)
        count = polygonize(
            mask_path,
            out,
            polygonize_options(job.options),
            stack_path=stack_vrt,
            layer_name=layer_name,
            probability_path=prob_path,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out, count


def merge_polygons(parts: list[str], output: str, crs_wkt: str, layer_name: str = LAYER) -> int:
    """Merge unit GeoPackages into one layer at `output` (written beside it, moved into place), ids renumbered."""
    from osgeo import ogr, osr

    ogr.UseExceptions()
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs_wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    count = 0
    with AtomicOutput(output, "slump polygons") as tmp:
        ds = ogr.GetDriverByName("GPKG").CreateDataSource(tmp)
        layer = ds.CreateLayer(layer_name, srs, ogr.wkbPolygon)
        fields: list[str] = []

        def add_field(defn) -> None:
            if defn.GetName() not in fields:
                layer.CreateField(defn)
                fields.append(defn.GetName())

        base = (("id", ogr.OFTInteger), ("area_m2", ogr.OFTReal), ("perimeter_m", ogr.OFTReal))
        for name, kind in (*base, ("pixels", ogr.OFTInteger), ("prob_mean", ogr.OFTReal), ("prob_max", ogr.OFTReal)):
            add_field(ogr.FieldDefn(name, kind))
        ds.StartTransaction()
        for part in parts:
            src = ogr.Open(part)
            src_layer = src.GetLayerByName(layer_name)
            src_defn = src_layer.GetLayerDefn()
            for i in range(src_defn.GetFieldCount()):
                add_field(src_defn.GetFieldDefn(i))
            for feat in src_layer:
                count += 1
                new = ogr.Feature(layer.GetLayerDefn())
                new.SetGeometry(feat.GetGeometryRef())
                for i in range(src_defn.GetFieldCount()):
                    name = src_defn.GetFieldDefn(i).GetName()
                    if feat.IsFieldSetAndNotNull(i):
                        new.SetField(name, feat.GetField(i))
                new.SetField("id", count)
                layer.CreateFeature(new)
            src = None
        ds.CommitTransaction()
        ds = layer = None
    return count


# ---------------------------------------------------------------------------------------------------- mosaics


def _build_vrt(
    path: str, sources: Sequence[str], what: str, bounds: tuple[float, float, float, float] | None = None
) -> str:
    """A VRT mosaic of rasters (written beside `path`, moved into place), with the first one's names and tags.

    `bounds` (xmin, ymin, xmax, ymax) fixes its extent (the region's grid, whichever units exist).
    """
    from osgeo import gdal

    gdal.UseExceptions()
    with AtomicOutput(path, what) as tmp:
        ds = gdal.BuildVRT(tmp, list(sources), outputBounds=bounds)
        if ds is None:
            raise RtsFusionError(f"Cannot build the {what} mosaic '{path}'.")
        with contextlib.suppress(RuntimeError):
            first = gdal.Open(sources[0])
            ds.SetMetadata(first.GetMetadata())
            for i in range(1, ds.RasterCount + 1):
                band, src = ds.GetRasterBand(i), first.GetRasterBand(i)
                band.SetDescription(src.GetDescription())
                band.SetMetadata(src.GetMetadata())
                if src.GetScale() is not None:  # DN → reflectance of the scenes (all alike, as a mosaic needs)
                    band.SetScale(src.GetScale())
                    band.SetOffset(src.GetOffset() or 0.0)
            first = None
        ds = None
    return path


RASTER_EXTENSIONS = (".tif", ".tiff", ".vrt", ".jp2", ".img")


def input_raster(paths: Sequence[str], vrt: str, label: str) -> str:
    """One raster for an input given as a raster, a VRT, a folder of rasters or several rasters (→ a VRT).

    Raises:
        RtsFusionError: a missing path, an empty folder, or rasters that cannot be mosaicked.

    """
    files: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(os.path.join(p, n) for n in os.listdir(p) if n.lower().endswith(RASTER_EXTENSIONS))
            if not found:
                raise RtsFusionError(f"The {label} folder '{p}' holds no raster ({', '.join(RASTER_EXTENSIONS)}).")
            files += found
        elif os.path.isfile(p):
            files.append(p)
        else:
            raise RtsFusionError(f"The {label} raster '{p}' does not exist.")
    if len(files) == 1:
        return files[0]
    counts = set()
    import rasterio

    for f in files:
        try:
            with rasterio.open(f) as ds:
                counts.add(ds.count)
        except rasterio.errors.RasterioIOError as exc:
            raise RtsFusionError(f"Cannot read the {label} raster '{f}': {exc}") from exc
    if len(counts) > 1:
        raise RtsFusionError(
            f"The {label} rasters have different band counts ({sorted(counts)}): they cannot be mosaicked."
        )
    os.makedirs(os.path.dirname(vrt), exist_ok=True)
    return _build_vrt(vrt, files, f"{label} mosaic")


def _write_cog(vrt: str, path: str, what: str, resampling: str) -> str:
    from osgeo import gdal

    gdal.UseExceptions()
    with AtomicOutput(path, what) as tmp:
        gdal.Translate(
            tmp,
            vrt,
            format="COG",
            creationOptions=[
                "COMPRESS=DEFLATE",
                "OVERVIEWS=AUTO",
                f"OVERVIEW_RESAMPLING={resampling}",
                "BIGTIFF=IF_SAFER",
            ],
        )
    return path


def _write_geoparquet(gpkg: str, path: str) -> str:
    with AtomicOutput(path, "GeoParquet polygons") as tmp:
        write_vector(gpkg, tmp, path, "Parquet")
    return path


def _write_status_table(path: str, rows: list[dict]) -> None:
    columns = ["id", "state", "col_off", "row_off", "width", "height", "tiles", "slump_pixels", "valid_pixels",
               "seconds", "resumed", "error"]  # fmt: skip
    with AtomicOutput(path, "unit status table") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            c, r, w, h = row.get("core", (0, 0, 0, 0))
            writer.writerow({**row, "col_off": c, "row_off": r, "width": w, "height": h})


def geoparquet_supported() -> bool:
    """Whether this GDAL can write GeoParquet (its Parquet driver, GDAL ≥ 3.5 built with Arrow)."""
    from osgeo import ogr

    return ogr.GetDriverByName("Parquet") is not None


# ---------------------------------------------------------------------------------------------------- the engine


def default_workers() -> int:
    """One local worker per GPU when there are GPUs, else one per CPU core this process may use."""
    with contextlib.suppress(ImportError):
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count():
            return torch.cuda.device_count()
    from ..models.device import usable_cores

    return usable_cores() or os.cpu_count() or 1


def local_cluster(workers: int, python: str | None = None):
    """A Dask LocalCluster of `workers` processes with 1 thread each that can import this package.

    Args:
        workers: number of worker processes.
        python: interpreter the worker processes are started with (inside QGIS: QGIS's Python, since
            sys.executable is the QGIS binary there); None keeps the current one.

    """
    import logging
    import multiprocessing

    import dask
    from distributed import LocalCluster

    from . import dask_preload

    if python:
        multiprocessing.set_executable(python)
    package = __name__.rsplit(".", 2)[0]
    with dask.config.set(WORKER_CONFIG):
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
            preload=[dask_preload.__file__],
            env={dask_preload.PACKAGE_ENV: package, dask_preload.ROOT_ENV: os.path.dirname(os.path.dirname(__file__))},
        )


@contextlib.contextmanager
def dask_client(region: RegionOptions, log: LogFn):
    """A Dask client on the given scheduler, or on a local cluster of processes (1 thread each) closed after."""
    from distributed import Client

    if region.scheduler:
        try:
            client = Client(region.scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise RtsFusionError(f"Cannot reach the Dask scheduler at '{region.scheduler}': {exc}") from exc
        log(f"Dask scheduler {region.scheduler}; dashboard: {client.dashboard_link}")
        try:
            yield client
        finally:
            client.close()
        return
    n = region.workers or default_workers()
    cluster = local_cluster(n, region.python)
    try:
        client = Client(cluster)
        log(
            f"Local Dask cluster: {n} worker process(es), 1 thread each, Python {region.python or sys.executable}; "
            f"dashboard: {cluster.dashboard_link}"
        )
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def _error_text(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    if not isinstance(exc, RtsFusionError):
        text = f"{exc.__class__.__name__}: {text}"
    return text


def map_region(
    inputs: MapInputs,
    model: str,
    folder: str,
    options: MapOptions = MapOptions(),
    region: RegionOptions = RegionOptions(),
    progress: ProgressFn | None = None,
    is_canceled: CancelFn | None = None,
    log: LogFn | None = None,
) -> RegionResult:
    """Map thaw slumps over a region on Dask: units → probability/mask mosaics → merged polygons → status table.

    Args:
        inputs: the source layers (each a raster or a VRT mosaic) and the target grid options.
        model: the model package path (every worker loads it once).
        folder: the output folder (created; a rerun into it resumes).
        options: detection and cleaning settings, as for map_slumps.
        region: unit size, workers or scheduler, area of interest, extra outputs.
        progress: called with 0–100 (finished units).
        is_canceled: polled while units run; cancelling stops the cluster's work.
        log: receives messages, the dashboard's address and each failed unit's error.

    Returns:
        What was written and found.

    Raises:
        RtsFusionError: inputs that cannot be mapped, or no unit could be mapped.
        OperationCanceled: cancelled (finished units stay, and a rerun resumes from them).

    """
    progress = progress or (lambda _p: None)
    is_canceled = is_canceled or (lambda: False)
    log = log or (lambda _m: None)
    if region.geoparquet and not geoparquet_supported():
        raise RtsFusionError(
            "GeoParquet was asked for, but this GDAL has no Parquet driver (GDAL 3.5 or later built with Arrow is "
            "needed). The polygons are written as a GeoPackage; convert it elsewhere or untick GeoParquet."
        )
    card = load_model(model).card  # a package or an exported model, whichever backend maps it
    if "LST_ANOMALY" in card.bands:
        raise RtsFusionError(
            "The model uses LST_ANOMALY, whose scene mean and spread would differ from unit to unit; region "
            "mapping does not support it yet. Map with 'Map thaw slumps', or use a model without that band."
        )
    folder = os.path.abspath(folder)
    os.makedirs(os.path.join(folder, "units"), exist_ok=True)
    check_writable(os.path.join(folder, "slumps.gpkg"), "slump polygons")
    grid, jobs, outside = plan_region(inputs, card, region, folder, model, options)
    log(
        f"Region grid {grid.width} × {grid.height} px; {len(jobs) + len(outside)} unit(s) of {region.unit_size} px"
        + (f", {len(outside)} outside the area of interest" if outside else "")
        + f"; tiles of {card.tile_size} px (overlap {card.overlap})."
    )
    if not jobs:
        raise RtsFusionError("No unit of the region meets the area of interest.")
    todo = [j for j in jobs if not is_finished(j)]
    if len(todo) < len(jobs):
        log(f"{len(jobs) - len(todo)} unit(s) already finished by an earlier run: skipped.")
    statuses: dict[str, dict] = {j.id: {**(read_status(j.status_path) or {}), "resumed": True} for j in jobs}
    failed: list[tuple[str, str]] = []
    dashboard = ""
    total = len(jobs) + 1  # the polygon stage counts as one more step
    finished = len(jobs) - len(todo)
    progress(100.0 * finished / total)
    with dask_client(region, log) as client:
        dashboard = client.dashboard_link
        if todo:
            from distributed import as_completed

            run = uuid.uuid4().hex[:8]  # task keys unique to this run (the dashboard shows the unit ids)

            futures = {
                client.submit(
                    run_unit,
                    j,
                    key=f"rtsfusion-unit-{j.id}-{run}",
                    retries=region.retries,
                    pure=False,
                ): j
                for j in todo
            }
            pending = as_completed(list(futures), with_results=False)
            try:
                while True:
                    if is_canceled():
                        raise OperationCanceled("Region mapping cancelled: finished units are kept; rerun to resume.")
                    batch = pending.next_batch(block=False)
                    if not batch:
                        if pending.is_empty():
                            break
                        time.sleep(0.1)
                        continue
                    for fut in batch:
                        job = futures[fut]
                        if fut.status == "finished":
                            statuses[job.id] = fut.result()
                        else:
                            error = _error_text(fut.exception())
                            failed.append((job.id, error))
                            statuses[job.id] = {
                                "id": job.id,
                                "core": list(job.unit.core),
                                "state": FAILED,
                                "error": error,
                            }
                            log(f"Unit {job.id} failed: {error}")
                        finished += 1
                        progress(100.0 * finished / total)
            except BaseException:
                client.cancel(list(futures), force=True)
                raise
        mapped = [j for j in jobs if statuses.get(j.id, {}).get("state") == DONE]
        if not mapped:
            raise RtsFusionError(
                "No unit of the region could be mapped"
                + (f": {failed[0][1]}" if failed else " (every unit holds no valid pixel).")
            )

        def path(name: str) -> str:
            return os.path.join(folder, name)

        mosaics = (
            _build_vrt(path("probability.vrt"), [j.paths().probability for j in mapped], "probability", grid.bounds),
            _build_vrt(path("mask.vrt"), [j.paths().mask for j in mapped], "mask", grid.bounds),
            _build_vrt(path("stack.vrt"), [j.paths().stack for j in mapped], "fused stack", grid.bounds),
        )
        parts_dir = tempfile.mkdtemp(prefix=".polygons_", dir=folder)
        try:
            polys = [
                client.submit(polygonize_unit, j, mosaics, os.path.join(parts_dir, f"{j.id}.gpkg"), pure=False)
                for j in mapped
            ]
            parts = []
            for fut in polys:
                if is_canceled():
                    client.cancel(polys, force=True)
                    raise OperationCanceled("Region mapping cancelled while polygonising; rerun to resume.")
                path, _count = fut.result()
                if path:
                    parts.append(path)
            polygons = os.path.join(folder, "slumps.gpkg")
            count = merge_polygons(parts, polygons, grid.crs_wkt)
        finally:
            shutil.rmtree(parts_dir, ignore_errors=True)
    rows = [statuses.get(j.id, {"id": j.id}) for j in jobs] + [
        {"id": j.id, "core": list(j.unit.core), "state": OUTSIDE} for j in outside
    ]
    status_path = os.path.join(folder, "units.csv")
    _write_status_table(status_path, rows)
    parquet = ""
    if region.geoparquet:
        parquet = _write_geoparquet(polygons, os.path.join(folder, "slumps.parquet"))
    cogs = ("", "")
    if region.cog:
        log("Writing Cloud-Optimised GeoTIFFs with overviews…")
        cogs = (
            _write_cog(mosaics[0], os.path.join(folder, "probability_cog.tif"), "probability COG", "AVERAGE"),
            _write_cog(mosaics[1], os.path.join(folder, "mask_cog.tif"), "mask COG", "NEAREST"),
        )
    progress(100.0)
    states = [r.get("state") for r in rows]
    resumed = sum(1 for j in jobs if statuses[j.id].get("resumed") and statuses[j.id].get("state") == DONE)
    result = RegionResult(
        folder=folder,
        probability=mosaics[0],
        mask=mosaics[1],
        polygons=polygons,
        status=status_path,
        count=count,
        units=len(jobs) + len(outside),
        done=states.count(DONE) - resumed,
        resumed=resumed,
        empty=states.count(EMPTY),
        outside=len(outside),
        failed=tuple(failed),
        tiles=sum(int(statuses[j.id].get("tiles", 0)) for j in jobs if not statuses[j.id].get("resumed")),
        dashboard=dashboard,
        probability_cog=cogs[0],
        mask_cog=cogs[1],
        geoparquet=parquet,
    )
    log(
        f"{count} thaw slumps mapped over {len(mapped)} unit(s) ({result.done} this run, {resumed} earlier); "
        f"{len(failed)} failed, {result.empty} empty, {result.outside} outside the area of interest."
    )
    return result


def result_summary(result: RegionResult) -> dict:
    """The result as plain data (for the console command's JSON)."""
    return {k: (list(map(list, v)) if k == "failed" else v) for k, v in asdict(result).items()}


__all__ = [
    "RegionOptions",
    "RegionResult",
    "UnitJob",
    "map_region",
    "merge_polygons",
    "plan_region",
    "polygonize_unit",
    "run_unit",
    "unit_windows",
]
