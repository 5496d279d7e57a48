"""The fused stack: derive the requested features window by window and write one tiled GeoTIFF.

The stack is the contract between alignment and everything after it: band descriptions name the
features, dataset tags record each band's group (optical / auxiliary), units and the source layers,
and one nodata value marks every pixel where any input or feature is undefined.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import rasterio

from . import terrain, thermal
from .bands import OPTICAL_KEYS
from .errors import AlignmentError, EmptyExtentError, FeatureError, OperationCanceled
from .features import FEATURES, TERRAIN, derive
from .grid import TargetGrid, bounded_gdal_cache, build_target_grid, check_grid_size, inspect_source, iter_windows
from .outputs import AtomicOutput, check_not_input
from .sources import FusionInputs, GridOptions, LogFn, OpticalBands, Sources

__all__ = [
    "OPTICAL_KEYS",
    "STACK_FORMAT",
    "STACK_NODATA",
    "FusionInputs",
    "GridOptions",
    "OpticalBands",
    "StackInfo",
    "build_fused_stack",
    "read_stack_info",
]

STACK_NODATA = -9999.0
STACK_FORMAT = "rtsfusion-stack/1"

ProgressFn = Callable[[float], None]
CancelFn = Callable[[], bool]
# All optical bands at or above this reflectance almost everywhere suggests a missing −0.1 offset.
BRIGHT_FLOOR = 0.1


@dataclass(frozen=True)
class StackInfo:
    """What a fused stack file holds."""

    path: str
    band_names: tuple[str, ...]
    groups: tuple[str, ...]
    units: tuple[str, ...]
    grid: TargetGrid
    nodata: float
    sources: dict[str, str]
    valid_fraction: float | None = None
    warnings: tuple[str, ...] = ()

    def band_index(self, name: str) -> int:
        """1-based band index of a feature name."""
        return self.band_names.index(name) + 1


def _check_reflectance(refl: dict[str, np.ndarray], valid: np.ndarray) -> None:
    """Refuse optical values that are clearly not reflectance (a missing scale would go unnoticed)."""
    vis = [refl[k][valid] for k in ("blue", "green", "red") if k in refl]
    if not vis or not vis[0].size:
        return
    med = float(np.median(np.concatenate(vis)))
    if not -0.5 <= med <= 2.0:
        raise FeatureError(
            f"The optical bands give a median reflectance of {med:.4g} after scaling, so they are not "
            "surface reflectance (0–1). Set the reflectance scale and offset (e.g. Sentinel-2 L2A: "
            "scale 0.0001; Landsat Collection 2 L2: scale 0.0000275, offset -0.2)."
        )


class _Quality:
    """Checks and counts gathered window by window: plausibility, dark-pixel floor, values out of range."""

    def __init__(self, features: Sequence[str], optical_keys: Sequence[str]) -> None:
        self.features = features
        self.checked = False
        self.floor = {k: np.inf for k in optical_keys}
        self.outside = {n: 0 for n in features if FEATURES[n].valid_range is not None}
        self.n_valid = 0

    def add(self, data, block: np.ndarray, valid: np.ndarray) -> None:
        if not valid.any():
            return
        if not self.checked:
            _check_reflectance(data.refl, valid)
            if data.lst is not None:
                thermal.check_plausible_lst(data.lst[valid])
            self.checked = True
        for k in self.floor:
            self.floor[k] = min(self.floor[k], float(np.percentile(data.refl[k][valid], 1)))
        for i, n in enumerate(self.features):
            if n in self.outside:
                lo, hi = FEATURES[n].valid_range
                v = block[i][valid]
                self.outside[n] += int(np.count_nonzero((v < lo) | (v > hi)))

    def warnings(self) -> list[str]:
        out = []
        if self.floor and all(np.isfinite(v) and v >= BRIGHT_FLOOR for v in self.floor.values()):
            out.append(
                f"Every optical band sits at or above {BRIGHT_FLOOR} reflectance almost everywhere (1st percentiles "
                + ", ".join(f"{k.upper()} {v:.3f}" for k, v in self.floor.items())
                + "): the offset may be missing (Sentinel-2 L2A from processing baseline 04.00 on needs "
                "−1000 DN, i.e. a reflectance offset of −0.1). Check the reflectance scale and offset."
            )
        return out

    def range_report(self) -> str | None:
        parts = []
        for n, count in self.outside.items():
            if count:
                lo, hi = FEATURES[n].valid_range
                share = 100.0 * count / max(self.n_valid, 1)
                parts.append(f"{n} {count:,} ({share:.2f} %) outside [{lo:g}, {hi:g}]")
        return ("Values outside their physical range: " + "; ".join(parts) + ".") if parts else None


def _no_valid_pixel(src: Sources, pixels: int) -> EmptyExtentError:
    """The error for a stack without a valid pixel, naming each input that is empty over the common area."""
    empty = [label for label, n in src.valid_counts.items() if n == 0]
    paths = dict(src.labelled())
    if empty:
        named = "; ".join(f"the {label} layer '{paths.get(label, '')}'" for label in empty)
        return EmptyExtentError(
            f"The fused stack would hold no valid pixel: over the layers' common area every pixel of {named} "
            "is nodata or NaN. Check that layer's nodata value, its coverage and its band choice."
        )
    shares = ", ".join(f"{label} {100.0 * n / pixels:.1f} %" for label, n in src.valid_counts.items())
    return EmptyExtentError(
        "The fused stack would hold no valid pixel: each input has valid pixels over the common area "
        f"({shares} valid), but never at the same place, or the features are undefined where they meet "
        "(e.g. a zero denominator in an index). Check the layers' nodata values and coverage."
    )


def _input_paths(inputs: FusionInputs) -> dict[str, str | None]:
    """Label → path of every source raster (for the check that the stack never overwrites one)."""
    return {
        "optical layer": inputs.optical,
        "thermal layer": inputs.thermal,
        "DEM": inputs.dem,
        "freeze-thaw index raster": inputs.fti,
        "temperature series": inputs.temperature_series,
        "valid-pixel mask": inputs.valid_mask,
    }


def _grid_of(src: Sources, grid_options: GridOptions) -> tuple[TargetGrid, list]:
    """The target grid of the sources the stack reads (optical first), and their descriptions."""
    infos = [inspect_source(p, label) for label, p in src.labelled()]
    return build_target_grid(infos, grid_options.crs, grid_options.pixel_size, grid_options.extent), infos


def fused_grid(inputs: FusionInputs, features: Sequence[str], grid_options: GridOptions = GridOptions()) -> TargetGrid:
    """The grid build_fused_stack would write for these inputs, features and grid options (nothing is written).

    Raises:
        AlignmentError, FeatureError: inputs that cannot produce the stack, explained.

    """
    inspect_source(inputs.optical, "optical")
    with contextlib.ExitStack() as stack:
        return _grid_of(Sources(inputs, tuple(features), stack, lambda _m: None), grid_options)[0]


def build_fused_stack(
    inputs: FusionInputs,
    features: Sequence[str],
    output: str,
    grid_options: GridOptions = GridOptions(),
    terrain_radius_m: float = 100.0,
    window_size: int = 512,
    progress: ProgressFn | None = None,
    is_canceled: CancelFn | None = None,
    log: LogFn | None = None,
) -> StackInfo:
    """Align the inputs onto one grid, derive `features` and write the fused stack GeoTIFF.

    Memory is bounded by the window size, not the raster size: inputs are warped, features derived and
    the output written one window at a time. The log receives the band mapping and reflectance rule used,
    warnings (also written into the stack's metadata), values outside their physical range and how many
    pixels had terrain computed from a reduced neighbourhood at the DEM's edge.

    Args:
        inputs: the source rasters.
        features: ordered feature names (see features.resolve_features).
        output: path of the GeoTIFF to write (overwritten).
        grid_options: overrides of the target grid.
        terrain_radius_m: neighbourhood radius of TPI and TRI, in metres.
        window_size: side of the processing windows in pixels (a multiple of 256 keeps writes aligned).
        progress: called with 0–100.
        is_canceled: polled between windows; when it returns True the partial output is removed and
            OperationCanceled raised.
        log: called with one line per message for the user.

    Raises:
        AlignmentError, FeatureError: inputs that cannot produce the stack, explained.
        OperationCanceled: cancelled by the user.

    """
    features = tuple(features)
    progress = progress or (lambda _p: None)
    is_canceled = is_canceled or (lambda: False)
    log = log or (lambda _m: None)
    check_not_input(output, _input_paths(inputs), "fused stack")
    if terrain_radius_m <= 0:
        raise FeatureError(f"The terrain radius must be positive, not {terrain_radius_m} m.")
    inspect_source(inputs.optical, "optical")  # a clear error for an unreadable optical layer comes first
    with contextlib.ExitStack() as stack:
        stack.enter_context(bounded_gdal_cache())
        src = Sources(inputs, features, stack, log)
        needs = src.needs
        grid, infos = _grid_of(src, grid_options)
        check_grid_size(grid, infos, len(features), os.path.dirname(os.path.abspath(output)))
        windows = iter_windows(grid, window_size)
        lst_needed = "lst" in needs
        wants_terrain = any(f in TERRAIN for f in features)
        halo = terrain.terrain_halo(terrain_radius_m, *grid.metres_per_pixel()) + 1 if wants_terrain else 0
        src.attach(grid, halo, stack)
        lst_stats = (0.0, 1.0)
        steps = len(windows) * (2 if "LST_ANOMALY" in features else 1)
        done = 0
        if "LST_ANOMALY" in features:
            # First pass: scene mean and std of LST, so the anomaly is the same wherever a window falls.
            n, s1, s2 = 0, 0.0, 0.0
            for win in windows:
                if is_canceled():
                    raise OperationCanceled("Cancelled while computing LST statistics.")
                v = src.lst(win)
                v = v[np.isfinite(v)].astype(np.float64)
                n, s1, s2 = n + v.size, s1 + v.sum(), s2 + (v * v).sum()
                done += 1
                progress(100.0 * done / steps)
            if n:
                mean = s1 / n
                lst_stats = (mean, float(np.sqrt(max(s2 / n - mean * mean, 0.0))))
        profile = {
            "driver": "GTiff",
            "dtype": "float32",
            "count": len(features),
            "width": grid.width,
            "height": grid.height,
            "crs": grid.crs,
            "transform": grid.affine,
            "nodata": STACK_NODATA,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
            "predictor": 3,
            "BIGTIFF": "IF_SAFER",
        }
        out = AtomicOutput(output, "fused stack")  # the target is replaced only when the stack is complete
        quality = _Quality(features, src.optical_keys)
        try:
            with rasterio.open(out.path, "w", **profile) as dst:
                for win in windows:
                    if is_canceled():
                        raise OperationCanceled("Cancelled while writing the fused stack.")
                    data, valid = src.read(win, lst_needed, lst_stats, terrain_radius_m)
                    block = derive(features, data)
                    valid &= np.all(np.isfinite(block), axis=0)
                    quality.add(data, block, valid)
                    block[:, ~valid] = STACK_NODATA
                    quality.n_valid += int(valid.sum())
                    dst.write(block, window=win)
                    done += 1
                    progress(100.0 * done / steps)
                warnings = quality.warnings()
                _write_metadata(
                    dst, features, src.labelled(), terrain_radius_m, src.sensor.replace("auto", "unknown"), warnings
                )
        except BaseException:
            out.discard()
            raise
        n_valid = quality.n_valid
        if n_valid == 0:
            out.discard()
            raise _no_valid_pixel(src, grid.width * grid.height)
        for w in warnings:
            log(f"Warning: {w}")
        report = quality.range_report()
        if report:
            log(report)
        pixels = grid.width * grid.height
        partial = {label: n / pixels for label, n in src.valid_counts.items() if n < pixels}
        if partial:
            log(
                "Valid share of the grid per input: "
                + ", ".join(f"{label} {100 * share:.1f} %" for label, share in partial.items())
                + " (the rest is nodata in the stack)."
            )
        if src.reduced_terrain:
            log(
                f"Terrain features of {src.reduced_terrain:,} pixel(s) near the DEM's edge (or its nodata holes) "
                "were computed from a reduced neighbourhood (the DEM's edge replicated)."
            )
    out.commit()
    valid_fraction = n_valid / float(grid.width * grid.height)
    info = read_stack_info(output)
    return StackInfo(**{**info.__dict__, "valid_fraction": valid_fraction})


def _write_metadata(
    dst: rasterio.io.DatasetWriter,
    features: Sequence[str],
    sources: list[tuple[str, str]],
    radius: float,
    sensor: str,
    warnings: Sequence[str],
) -> None:
    for i, name in enumerate(features, start=1):
        f = FEATURES[name]
        dst.set_band_description(i, name)
        dst.set_band_unit(i, f.units)
        dst.update_tags(i, FEATURE=name, GROUP=f.group, UNITS=f.units, DESCRIPTION=f.description)
    dst.update_tags(
        RTSFUSION_FORMAT=STACK_FORMAT,
        RTSFUSION_BANDS=json.dumps(list(features)),
        RTSFUSION_GROUPS=json.dumps([FEATURES[n].group for n in features]),
        RTSFUSION_UNITS=json.dumps([FEATURES[n].units for n in features]),
        RTSFUSION_SOURCES=json.dumps(dict(sources)),
        RTSFUSION_TERRAIN_RADIUS_M=str(radius),
        RTSFUSION_SENSOR=sensor,
    )
    if warnings:
        dst.update_tags(RTSFUSION_WARNINGS=json.dumps(list(warnings)))


def read_stack_info(path: str) -> StackInfo:
    """Read a fused stack's band names, groups, units, grid and nodata.

    Stacks written by another tool are accepted when their band descriptions are all known feature
    names; groups and units then come from the catalogue.

    Raises:
        AlignmentError: unreadable, or not a stack (unnamed or unknown bands).

    """
    try:
        with rasterio.open(path) as ds:
            tags = ds.tags()
            descriptions = tuple(d or "" for d in ds.descriptions)
            grid = TargetGrid(ds.crs.to_wkt() if ds.crs else "", tuple(ds.transform)[:6], ds.width, ds.height)
            nodata = ds.nodata
    except rasterio.errors.RasterioIOError as exc:
        raise AlignmentError(f"Cannot read the fused stack '{path}': {exc}") from exc
    if "RTSFUSION_BANDS" in tags:
        names = tuple(json.loads(tags["RTSFUSION_BANDS"]))
        groups = tuple(json.loads(tags["RTSFUSION_GROUPS"]))
        units = tuple(json.loads(tags["RTSFUSION_UNITS"]))
        sources = json.loads(tags.get("RTSFUSION_SOURCES", "{}"))
        warnings = tuple(json.loads(tags.get("RTSFUSION_WARNINGS", "[]")))
    else:
        unknown = [d for d in descriptions if d.upper() not in FEATURES]
        if unknown:
            raise AlignmentError(
                f"'{path}' is not a fused stack: band descriptions {unknown} are not feature names. "
                "Create the stack with 'Align and fuse layers'."
            )
        names = tuple(d.upper() for d in descriptions)
        groups = tuple(FEATURES[n].group for n in names)
        units = tuple(FEATURES[n].units for n in names)
        sources, warnings = {}, ()
    nodata = STACK_NODATA if nodata is None else nodata
    return StackInfo(path, names, groups, units, grid, nodata, sources, warnings=warnings)
