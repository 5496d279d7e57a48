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
from dataclasses import dataclass, field

import numpy as np
import rasterio
from rasterio.windows import Window

from . import spectral, terrain, thermal
from .errors import AlignmentError, FeatureError, OperationCanceled, RtsFusionError
from .features import FEATURES, TERRAIN, required_inputs
from .grid import (
    RESAMPLING,
    TargetGrid,
    bounded_gdal_cache,
    build_target_grid,
    inspect_source,
    iter_windows,
    read_window,
    warped_vrt,
)

STACK_NODATA = -9999.0
STACK_FORMAT = "rtsfusion-stack/1"
OPTICAL_KEYS = ("blue", "green", "red", "nir", "swir1", "swir2")

ProgressFn = Callable[[float], None]
CancelFn = Callable[[], bool]


@dataclass(frozen=True)
class OpticalBands:
    """Which band (1-based) of the optical raster holds which wavelength, and how DN become reflectance.

    scale/offset of None mean "the file's own scale/offset metadata, else 1 and 0". A band of None is
    absent; features needing it are then refused by name.
    """

    blue: int
    green: int
    red: int
    nir: int | None = None
    swir1: int | None = None
    swir2: int | None = None
    sensor: str = "other"
    scale: float | None = None
    offset: float | None = None

    def band_of(self, key: str) -> int | None:
        """The 1-based band index for a key of OPTICAL_KEYS."""
        return getattr(self, key)


@dataclass(frozen=True)
class FusionInputs:
    """The source rasters of a fused stack and how to read them.

    Attributes:
        optical: optical image path (sets the default grid).
        thermal: LST or thermal-band raster path (first band is used); None when no feature needs it.
        dem: elevation raster path in metres (first band is used); None when no feature needs it.
        bands: the optical band mapping.
        thermal_spec: the thermal encoding.
        fti: optional freeze–thaw-index raster path.
        temperature_series: optional multi-band temperature raster (one band per date) to compute FTI.
        series_dates: dates of the series bands (YYYY-MM-DD); None reads the band descriptions.
        series_unit: "C" or "K" for the series values.
        valid_mask: optional raster where 0 marks pixels to exclude (cloud, shadow); resampled nearest.

    """

    optical: str
    thermal: str | None
    dem: str | None
    bands: OpticalBands
    thermal_spec: thermal.ThermalSpec = field(default_factory=thermal.ThermalSpec)
    fti: str | None = None
    temperature_series: str | None = None
    series_dates: tuple[str, ...] | None = None
    series_unit: str = "C"
    valid_mask: str | None = None


@dataclass(frozen=True)
class GridOptions:
    """Optional overrides of the target grid (see grid.build_target_grid)."""

    crs: str | None = None
    pixel_size: float | None = None
    extent: tuple[float, float, float, float] | None = None


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

    def band_index(self, name: str) -> int:
        """1-based band index of a feature name."""
        return self.band_names.index(name) + 1


# ---------------------------------------------------------------------------------------------------
# Validation of what the features need


def _check_requirements(features: Sequence[str], inputs: FusionInputs, optical_count: int) -> set[str]:
    """Refuse, by name, features the inputs cannot supply; return the set of inputs needed."""
    needs = required_inputs(features)
    for key, path, label in (("lst", inputs.thermal, "a thermal layer"), ("dem", inputs.dem, "a DEM")):
        if key in needs and not path:
            users = [f for f in features if key in FEATURES[f].needs]
            raise FeatureError(f"Feature(s) {', '.join(users)} need {label}; give one or remove those features.")
    for key in OPTICAL_KEYS:
        if key not in needs:
            continue
        idx = inputs.bands.band_of(key)
        users = [f for f in features if key in FEATURES[f].needs]
        if idx is None:
            raise FeatureError(
                f"Feature(s) {', '.join(users)} need the {key.upper()} band, but no optical band is mapped to "
                f"{key.upper()}. Set the {key.upper()} band or remove those features."
            )
        if not 1 <= idx <= optical_count:
            raise FeatureError(
                f"The {key.upper()} band is set to band {idx}, but the optical layer has {optical_count} band(s)."
            )
    if any(f in ("TCB", "TCG", "TCW") for f in features):
        spectral.require_tasseled_cap(inputs.bands.sensor)
    if "fti_source" in needs and not (inputs.fti or inputs.temperature_series):
        raise FeatureError(
            "FTI (freeze-thaw index) needs either an FTI raster or a temperature series raster "
            "(one band per date, from which thawing and freezing degree-days are computed). Give one, "
            "or remove FTI from the feature list (e.g. a custom list)."
        )
    return needs


def _series_dates(inputs: FusionInputs, ds: rasterio.io.DatasetReader) -> list:
    texts = inputs.series_dates or tuple(d or "" for d in ds.descriptions)
    return thermal.parse_dates(texts)


# ---------------------------------------------------------------------------------------------------
# Per-window derivation


@dataclass
class _Window:
    """Aligned inputs of one window (reflectance, LST in K, DEM with halo, FTI) and terrain geometry."""

    refl: dict[str, np.ndarray]
    lst: np.ndarray | None
    dem: np.ndarray | None
    halo: int
    fti: np.ndarray | None
    dx: np.ndarray | float
    dy: float
    dx_scalar: float


def _terrain_features(names: Sequence[str], w: _Window, radius_m: float) -> dict[str, np.ndarray]:
    """Terrain features on the window (halo cropped)."""
    dem = w.dem
    out: dict[str, np.ndarray] = {}
    if any(n in names for n in ("SLOPE",)):
        out["SLOPE"] = terrain.slope_degrees(dem, w.dx, w.dy)
    if "ASPECT_SIN" in names or "ASPECT_COS" in names:
        out["ASPECT_SIN"], out["ASPECT_COS"] = terrain.aspect_sin_cos(dem, w.dx, w.dy)
    if "PLAN_CURV" in names or "PROFILE_CURV" in names:
        out["PLAN_CURV"], out["PROFILE_CURV"] = terrain.curvatures(dem, w.dx, w.dy)
    if "TPI" in names:
        out["TPI"] = terrain.tpi(dem, radius_m, w.dx_scalar, w.dy)
    if "TRI" in names:
        out["TRI"] = terrain.tri(dem, radius_m, w.dx_scalar, w.dy)
    h = w.halo
    return {k: v[h : v.shape[0] - h, h : v.shape[1] - h] for k, v in out.items()}


def _derive(
    names: Sequence[str], w: _Window, sensor: str, lst_stats: tuple[float, float], radius_m: float
) -> np.ndarray:
    """All requested features of a window, stacked (N, h, w) float32 in the order of `names`."""
    r = w.refl
    h = w.halo
    dem_core = w.dem[h : w.dem.shape[0] - h, h : w.dem.shape[1] - h] if w.dem is not None else None
    terr = _terrain_features([n for n in names if n in TERRAIN], w, radius_m) if w.dem is not None else {}
    calc: dict[str, Callable[[], np.ndarray]] = {
        "RED": lambda: r["red"],
        "GREEN": lambda: r["green"],
        "BLUE": lambda: r["blue"],
        "NIR": lambda: r["nir"],
        "SWIR1": lambda: r["swir1"],
        "SWIR2": lambda: r["swir2"],
        "DEM": lambda: dem_core,
        "EVI": lambda: spectral.evi(r["nir"], r["red"], r["blue"]),
        "FTI": lambda: w.fti,
        "LST": lambda: w.lst,
        "NBR": lambda: spectral.nbr(r["nir"], r["swir2"]),
        "NDMI": lambda: spectral.ndmi(r["nir"], r["swir1"]),
        "NDVI": lambda: spectral.ndvi(r["nir"], r["red"]),
        "NDWI": lambda: spectral.ndwi(r["green"], r["nir"]),
        "TCB": lambda: spectral.tasseled_cap(r, sensor, "TCB"),
        "TCG": lambda: spectral.tasseled_cap(r, sensor, "TCG"),
        "TCW": lambda: spectral.tasseled_cap(r, sensor, "TCW"),
        "LST_ANOMALY": lambda: thermal.standardized_anomaly(w.lst, *lst_stats),
    }
    calc.update({k: (lambda v=v: v) for k, v in terr.items()})
    return np.stack([np.asarray(calc[n](), dtype=np.float32) for n in names])


# ---------------------------------------------------------------------------------------------------
# The builder


class _Sources:
    """The open input datasets and the per-window reads from them."""

    def __init__(self, inputs: FusionInputs, needs: set[str], stack: contextlib.ExitStack) -> None:
        self.inputs = inputs
        self.optical = stack.enter_context(rasterio.open(inputs.optical))
        self.thermal = stack.enter_context(rasterio.open(inputs.thermal)) if "lst" in needs else None
        self.dem = stack.enter_context(rasterio.open(inputs.dem)) if "dem" in needs else None
        use_fti = "fti_source" in needs
        self.fti = stack.enter_context(rasterio.open(inputs.fti)) if use_fti and inputs.fti else None
        self.series = (
            stack.enter_context(rasterio.open(inputs.temperature_series))
            if use_fti and not inputs.fti and inputs.temperature_series
            else None
        )
        self.mask = stack.enter_context(rasterio.open(inputs.valid_mask)) if inputs.valid_mask else None
        self.dates = _series_dates(inputs, self.series) if self.series is not None else None
        if self.dates is not None and len(self.dates) != self.series.count:
            raise FeatureError(
                f"The temperature series has {self.series.count} bands but {len(self.dates)} dates were given."
            )
        b = inputs.bands
        self.optical_keys = [k for k in OPTICAL_KEYS if k in needs]
        idx = [b.band_of(k) for k in self.optical_keys]
        self.optical_idx = idx
        scales = [self.optical.scales[i - 1] for i in idx]
        offsets = [self.optical.offsets[i - 1] for i in idx]
        self.opt_scale = np.array([b.scale if b.scale is not None else s for s in scales], np.float32)
        self.opt_offset = np.array([b.offset if b.offset is not None else o for o in offsets], np.float32)
        if self.thermal is not None:
            self.th_scale, self.th_offset = self.thermal.scales[0], self.thermal.offsets[0]

    def labelled(self) -> list[tuple[str, str]]:
        """(label, path) of every source the stack reads, optical first."""
        out = [("optical", self.inputs.optical)]
        for label, ds in (
            ("thermal", self.thermal),
            ("DEM", self.dem),
            ("FTI", self.fti),
            ("temperature series", self.series),
            ("valid mask", self.mask),
        ):
            if ds is not None:
                out.append((label, ds.name))
        return out

    def attach(self, grid: TargetGrid, halo: int, stack: contextlib.ExitStack) -> None:
        """Open the virtual warps of every source onto the grid (the DEM's grown by the terrain halo)."""
        self.grid, self.halo = grid, halo

        def vrt(ds, kind: str, h: int = 0):
            return stack.enter_context(warped_vrt(ds, grid, RESAMPLING[kind], h)) if ds is not None else None

        self.v_optical = vrt(self.optical, "reflectance")
        self.v_thermal = vrt(self.thermal, "thermal")
        self.v_dem = vrt(self.dem, "elevation", halo)
        self.v_fti = vrt(self.fti, "thermal")
        self.v_series = vrt(self.series, "thermal")
        self.v_mask = vrt(self.mask, "mask")

    def lst(self, win: Window) -> np.ndarray:
        """LST (K) of a window."""
        raw = read_window(self.v_thermal, [1], win)[0]
        return thermal.lst_kelvin(raw, self.inputs.thermal_spec, self.th_scale, self.th_offset)

    def read(self, win: Window, lst_needed: bool) -> tuple[_Window, np.ndarray]:
        """Aligned inputs of a window and its validity mask (True = all inputs present)."""
        grid, halo = self.grid, self.halo
        h, w = int(win.height), int(win.width)
        valid = np.ones((h, w), dtype=bool)
        refl = {}
        if self.optical_keys:
            raw = read_window(self.v_optical, self.optical_idx, win)
            raw = raw * self.opt_scale[:, None, None] + self.opt_offset[:, None, None]
            for k, arr in zip(self.optical_keys, raw):
                refl[k] = arr
                valid &= np.isfinite(arr)
        lst = self.lst(win) if lst_needed else None
        if lst is not None:
            valid &= np.isfinite(lst)
        dem = read_window(self.v_dem, [1], win, halo)[0] if self.v_dem is not None else None
        fti = None
        if self.v_fti is not None:
            fti = read_window(self.v_fti, [1], win)[0]
        elif self.v_series is not None:
            series = read_window(self.v_series, range(1, self.series.count + 1), win)  # (T, h, w)
            if self.inputs.series_unit == "K":
                series = series - thermal.KELVIN_OFFSET
            fti = thermal.freeze_thaw_index(*thermal.degree_days(series, self.dates))
        if self.v_mask is not None:
            m = read_window(self.v_mask, [1], win)[0]
            valid &= np.isfinite(m) & (m != 0)
        row_mid = int(win.row_off) + h / 2
        dx_scalar, dy = grid.metres_per_pixel(row_mid)
        dx = grid.row_metres(int(win.row_off) - halo, h + 2 * halo) if grid.crs.is_geographic else dx_scalar
        return _Window(refl, lst, dem, halo, fti, dx, dy, dx_scalar), valid


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


def build_fused_stack(
    inputs: FusionInputs,
    features: Sequence[str],
    output: str,
    grid_options: GridOptions = GridOptions(),
    terrain_radius_m: float = 100.0,
    window_size: int = 512,
    progress: ProgressFn | None = None,
    is_canceled: CancelFn | None = None,
) -> StackInfo:
    """Align the inputs onto one grid, derive `features` and write the fused stack GeoTIFF.

    Memory is bounded by the window size, not the raster size: inputs are warped, features derived and
    the output written one window at a time.

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

    Raises:
        AlignmentError, FeatureError: inputs that cannot produce the stack, explained.
        OperationCanceled: cancelled by the user.

    """
    features = tuple(features)
    progress = progress or (lambda _p: None)
    is_canceled = is_canceled or (lambda: False)
    if terrain_radius_m <= 0:
        raise FeatureError(f"The terrain radius must be positive, not {terrain_radius_m} m.")
    optical_info = inspect_source(inputs.optical, "optical")
    needs = _check_requirements(features, inputs, optical_info.count)
    with contextlib.ExitStack() as stack:
        stack.enter_context(bounded_gdal_cache())
        src = _Sources(inputs, needs, stack)
        infos = [optical_info] + [inspect_source(p, label) for label, p in src.labelled()[1:]]
        grid = build_target_grid(infos, grid_options.crs, grid_options.pixel_size, grid_options.extent)
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
        if os.path.exists(output):
            os.remove(output)
        n_valid = 0
        checked = False
        try:
            with rasterio.open(output, "w", **profile) as dst:
                for win in windows:
                    if is_canceled():
                        raise OperationCanceled("Cancelled while writing the fused stack.")
                    data, valid = src.read(win, lst_needed)
                    if not checked and valid.any():
                        _check_reflectance(data.refl, valid)
                        if data.lst is not None:
                            thermal.check_plausible_lst(data.lst[valid])
                        checked = True
                    block = _derive(features, data, inputs.bands.sensor, lst_stats, terrain_radius_m)
                    valid &= np.all(np.isfinite(block), axis=0)
                    block[:, ~valid] = STACK_NODATA
                    n_valid += int(valid.sum())
                    dst.write(block, window=win)
                    done += 1
                    progress(100.0 * done / steps)
                _write_metadata(dst, features, src.labelled(), terrain_radius_m, inputs)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(output)
            raise
    valid_fraction = n_valid / float(grid.width * grid.height)
    if n_valid == 0:
        os.remove(output)
        raise RtsFusionError(
            "The fused stack would hold no valid pixel: over the layers' common area every pixel is nodata "
            "in at least one input (or the inputs are empty). Check the layers' nodata values and coverage."
        )
    info = read_stack_info(output)
    return StackInfo(**{**info.__dict__, "valid_fraction": valid_fraction})


def _write_metadata(
    dst: rasterio.io.DatasetWriter,
    features: Sequence[str],
    sources: list[tuple[str, str]],
    radius: float,
    inputs: FusionInputs,
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
        RTSFUSION_SENSOR=inputs.bands.sensor,
    )


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
        sources = {}
    return StackInfo(path, names, groups, units, grid, STACK_NODATA if nodata is None else nodata, sources)
