"""The source layers of a fused stack: what the user gave, how each is read, and window-by-window reading.

Opens the inputs, resolves the optical band mapping (never silently: the mapping used is logged), works out
how optical values become reflectance (scale, offset, the Sentinel-2 L2A BOA_ADD_OFFSET), checks that the
inputs supply every requested feature, and reads aligned windows of all of them with per-input validity
counts, so a stack with no valid pixel can name the layer that is empty over the common area.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import rasterio
from rasterio.windows import Window
from scipy import ndimage

from . import thermal
from .bands import OPTICAL_KEYS, BandMapping, describe_mapping, map_optical_bands
from .errors import FeatureError
from .features import Available, MissingInputsError, WindowInputs, check_requirements, required_inputs
from .grid import RESAMPLING, TargetGrid, read_window, warped_vrt

LogFn = Callable[[str], None]

# Plausible median near-surface temperatures of a temperature series, in °C (−90 °C … 60 °C).
SERIES_RANGE_C = (-90.0, 60.0)


@dataclass(frozen=True)
class OpticalBands:
    """Which band (1-based) of the optical raster holds which wavelength, and how DN become reflectance.

    A band of None is read from the file (band names, wavelengths, the sensor's band layout); a band that
    cannot be told is refused by name only if a requested feature needs it. scale/offset of None mean "the
    file's own scale/offset metadata (and a Sentinel-2 BOA_ADD_OFFSET), else 1 and 0". A sensor of "auto"
    is recognised from the band names and metadata.
    """

    blue: int | None = None
    green: int | None = None
    red: int | None = None
    nir: int | None = None
    swir1: int | None = None
    swir2: int | None = None
    sensor: str = "auto"
    scale: float | None = None
    offset: float | None = None

    def band_of(self, key: str) -> int | None:
        """The 1-based band index for a key of OPTICAL_KEYS."""
        return getattr(self, key)

    def given(self) -> dict[str, int]:
        """The bands set explicitly."""
        return {k: self.band_of(k) for k in OPTICAL_KEYS if self.band_of(k)}


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
    bands: OpticalBands = field(default_factory=OpticalBands)
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


def resolve_band_mapping(ds: rasterio.io.DatasetReader, bands: OpticalBands) -> BandMapping:
    """The optical mapping for an open optical raster: the bands given, the rest read from the file."""
    sensor = None if bands.sensor in ("auto", "other") else bands.sensor
    return map_optical_bands(
        [d or "" for d in ds.descriptions],
        sensor,
        [ds.tags(i) for i in range(1, ds.count + 1)],
        ds.tags(),
        bands.given(),
    )


def read_band_mapping(path: str, given: dict[str, int] | None = None, sensor: str | None = None) -> BandMapping:
    """The optical mapping of a raster file: the bands given, the rest read from its names and metadata."""
    with rasterio.open(path) as ds:
        return resolve_band_mapping(ds, OpticalBands(**(given or {}), sensor=sensor or "auto"))


def _boa_offsets(ds: rasterio.io.DatasetReader, band_idx: Sequence[int]) -> tuple[list[float | None], float, str]:
    """Sentinel-2 L2A BOA_ADD_OFFSET (DN) per band where the metadata has one, quantification and baseline.

    The baseline is "" when the metadata does not state it.
    """
    tags = {k.upper(): v for k, v in ds.tags().items()}
    baseline = str(tags.get("PROCESSING_BASELINE", ""))
    quant = 10000.0
    for key in ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE"):
        with contextlib.suppress(KeyError, ValueError):
            quant = float(tags[key])
            break
    out: list[float | None] = []
    for i in band_idx:
        btags = {k.upper(): v for k, v in ds.tags(i).items()}
        value = btags.get("BOA_ADD_OFFSET")
        if value is None:
            number = re.search(r"B0?(\d{1,2}A?)\b", (ds.descriptions[i - 1] or "").upper())
            code = number.group(1) if number else None
            names = [f"BOA_ADD_OFFSET_B{code}", f"BOA_ADD_OFFSET_B{code.zfill(2)}"] if code else []
            value = next((tags[n] for n in names if n in tags), tags.get("BOA_ADD_OFFSET"))
        try:
            out.append(float(value) if value is not None else None)
        except ValueError:
            out.append(None)
    return out, quant, baseline


def _check_inputs(
    inputs: FusionInputs,
    features: Sequence[str],
    ds: rasterio.io.DatasetReader,
    subject: str = "The requested features (bands)",
) -> tuple[BandMapping, str]:
    """The optical mapping and sensor, after checking the inputs supply every feature (all gaps named at once)."""
    needs = required_inputs(features)
    mapping = resolve_band_mapping(ds, inputs.bands)
    # "auto" stays "auto" when the file does not tell: Tasseled Cap is then refused asking for the sensor.
    sensor = inputs.bands.sensor if inputs.bands.sensor != "auto" else (mapping.sensor or "auto")
    count = ds.count
    bad = {k: b for k, b in mapping.bands.items() if k in needs and not 1 <= b <= count}
    if bad:
        k, b = next(iter(bad.items()))
        raise FeatureError(f"The {k.upper()} band is set to band {b}, but the optical layer has {count} band(s).")
    available = Available(
        optical_bands=frozenset(mapping.bands),
        thermal=bool(inputs.thermal),
        dem=bool(inputs.dem),
        fti_source=bool(inputs.fti or inputs.temperature_series),
        sensor=sensor,
    )
    missing_optical = [k for k in OPTICAL_KEYS if k in needs and k not in mapping.bands]
    try:
        check_requirements(features, available, subject)
    except MissingInputsError as exc:
        if missing_optical:
            names = ", ".join(k.upper() for k in missing_optical)
            raise MissingInputsError(
                f"{exc} The optical layer's band names and metadata do not tell which band is "
                f"{names}: set the {names} band parameter(s) (band numbers of the optical layer).",
                exc.unmet,
            ) from exc
        raise
    return mapping, sensor


def check_inputs(
    inputs: FusionInputs, features: Sequence[str], subject: str = "The requested features (bands)"
) -> None:
    """Check, before any work, that the inputs supply every feature; e.g. subject="This model's bands".

    Raises:
        MissingInputsError: every missing input named at once, with the preset that fits what was given.
        FeatureError: a band set beyond the optical layer's band count.

    """
    with rasterio.open(inputs.optical) as ds:
        _check_inputs(inputs, features, ds, subject)


class Sources:
    """The open input datasets, their reading rules and the per-window reads from them."""

    def __init__(self, inputs: FusionInputs, features: Sequence[str], stack: contextlib.ExitStack, log: LogFn) -> None:
        self.inputs = inputs
        self.log = log
        self.optical = stack.enter_context(rasterio.open(inputs.optical))
        needs = required_inputs(features)
        self.needs = needs
        mapping, sensor = _check_inputs(inputs, features, self.optical)
        self.sensor = sensor
        self.mapping = mapping
        self.optical_keys = [k for k in OPTICAL_KEYS if k in needs]
        if self.optical_keys:
            log(f"Optical band mapping: {describe_mapping(mapping, self.optical_keys)}.")
        if any(f in ("TCB", "TCG", "TCW") for f in features):
            how = (
                " (recognised from the optical layer's band names and metadata)"
                if inputs.bands.sensor == "auto"
                else ""
            )
            log(f"Tasseled Cap coefficients of sensor: {sensor}{how}.")
        use_fti = "fti_source" in needs
        self.thermal = stack.enter_context(rasterio.open(inputs.thermal)) if "lst" in needs else None
        self.dem = stack.enter_context(rasterio.open(inputs.dem)) if "dem" in needs else None
        self.fti = stack.enter_context(rasterio.open(inputs.fti)) if use_fti and inputs.fti else None
        self.series = (
            stack.enter_context(rasterio.open(inputs.temperature_series))
            if use_fti and not inputs.fti and inputs.temperature_series
            else None
        )
        self.mask = stack.enter_context(rasterio.open(inputs.valid_mask)) if inputs.valid_mask else None
        self.dates = None
        if self.series is not None:
            texts = inputs.series_dates or tuple(d or "" for d in self.series.descriptions)
            self.dates = thermal.parse_dates(texts)
            if len(self.dates) != self.series.count:
                raise FeatureError(
                    f"The temperature series has {self.series.count} bands but {len(self.dates)} dates were given."
                )
        self.optical_idx = [mapping.bands[k] for k in self.optical_keys]
        self._reflectance_rule()
        if self.thermal is not None:
            self.th_scale, self.th_offset = self.thermal.scales[0], self.thermal.offsets[0]
        # Valid pixels of each input over the grid (for naming an input that is empty over the common area).
        self.valid_counts: dict[str, int] = {}
        self.reduced_terrain = 0
        self.series_checked = False

    def _reflectance_rule(self) -> None:
        """Scale and offset per mapped band: given, else the file's, with a Sentinel-2 BOA_ADD_OFFSET applied."""
        b, ds, idx = self.inputs.bands, self.optical, self.optical_idx
        scales = [ds.scales[i - 1] for i in idx]
        offsets = [ds.offsets[i - 1] for i in idx]
        if b.scale is not None or b.offset is not None:
            scales = [b.scale if b.scale is not None else s for s in scales]
            offsets = [b.offset if b.offset is not None else o for o in offsets]
            self.log(f"Reflectance = value × {scales[0]:g} + {offsets[0]:g} (as given).")
        elif idx:
            boa, quant, baseline = _boa_offsets(ds, idx)
            if any(v is not None for v in boa):
                new_scales, new_offsets = [], []
                for s, o, add in zip(scales, offsets, boa):
                    if add is None or o != 0:  # no offset given, or the file's offset already holds it
                        new_scales.append(s), new_offsets.append(o)
                        continue
                    s = s if s != 1 else 1.0 / quant
                    new_scales.append(s)
                    new_offsets.append(add * s)
                scales, offsets = new_scales, new_offsets
                self.log(
                    f"Sentinel-2 L2A offset read from the metadata (BOA_ADD_OFFSET {boa}, baseline "
                    f"{baseline or 'unknown'}): reflectance = (DN + offset) / {quant:g}."
                )
            elif baseline and _baseline_at_least_4(baseline) and all(o == 0 for o in offsets):
                self.log(
                    f"Warning: processing baseline {baseline} products carry a −1000 DN offset, but this file "
                    "states none; if its values are raw L2A DN, set the reflectance offset to −0.1."
                )
            self.log(
                "Reflectance = value × scale + offset from the file: "
                + ", ".join(f"{k.upper()} × {s:g} + {o:g}" for k, s, o in zip(self.optical_keys, scales, offsets))
                + "."
            )
        self.opt_scale = np.array(scales, np.float32)
        self.opt_offset = np.array(offsets, np.float32)

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
        self.valid_counts = {}

    def lst(self, win: Window) -> np.ndarray:
        """LST (K) of a window."""
        raw = read_window(self.v_thermal, [1], win)[0]
        return thermal.lst_kelvin(raw, self.inputs.thermal_spec, self.th_scale, self.th_offset)

    def _count(self, label: str, ok: np.ndarray) -> np.ndarray:
        self.valid_counts[label] = self.valid_counts.get(label, 0) + int(ok.sum())
        return ok

    def _dem_with_edges(self, dem: np.ndarray, core_valid: np.ndarray) -> np.ndarray:
        """Fill DEM pixels missing around valid ones with the nearest valid elevation (edge replication).

        At the edge of a DEM that covers no more than the grid, the halo terrain features need lies outside
        it; replicating the edge computes them from the neighbourhood that exists instead of losing them.
        The number of grid pixels whose neighbourhood was filled is counted in `reduced_terrain`.
        """
        missing = np.isnan(dem)
        if not missing.any() or missing.all():
            return dem
        idx = ndimage.distance_transform_edt(missing, return_distances=False, return_indices=True)
        filled = dem[tuple(idx)]
        h = self.halo
        size = 2 * h + 1
        touched = ndimage.maximum_filter(missing.astype(np.uint8), size=size, mode="constant", cval=0) > 0
        core = touched[h : touched.shape[0] - h, h : touched.shape[1] - h] & core_valid
        self.reduced_terrain += int(core.sum())
        return filled

    def read(
        self, win: Window, lst_needed: bool, lst_stats: tuple[float, float], radius_m: float
    ) -> tuple[WindowInputs, np.ndarray]:
        """Aligned inputs of a window and its validity mask (True = all inputs present)."""
        grid, halo = self.grid, self.halo
        h, w = int(win.height), int(win.width)
        valid = np.ones((h, w), dtype=bool)
        refl = {}
        if self.optical_keys:
            raw = read_window(self.v_optical, self.optical_idx, win)
            raw = raw * self.opt_scale[:, None, None] + self.opt_offset[:, None, None]
            ok = np.ones((h, w), dtype=bool)
            for k, arr in zip(self.optical_keys, raw):
                refl[k] = arr
                ok &= np.isfinite(arr)
            valid &= self._count("optical", ok)
        lst = self.lst(win) if lst_needed else None
        if lst is not None:
            valid &= self._count("thermal", np.isfinite(lst))
        dem = None
        if self.v_dem is not None:
            dem = read_window(self.v_dem, [1], win, halo)[0]
            core_valid = self._count("DEM", np.isfinite(dem[halo : halo + h, halo : halo + w]))
            valid &= core_valid
            if halo:
                dem = self._dem_with_edges(dem, core_valid)
        fti = None
        if self.v_fti is not None:
            fti = read_window(self.v_fti, [1], win)[0]
            valid &= self._count("FTI", np.isfinite(fti))
        elif self.v_series is not None:
            series = read_window(self.v_series, range(1, self.series.count + 1), win)  # (T, h, w)
            if self.inputs.series_unit == "K":
                series = series - thermal.KELVIN_OFFSET
            ok = self._count("temperature series", np.all(np.isfinite(series), axis=0))
            if not self.series_checked and ok.any():
                check_plausible_series(series[:, ok], self.inputs.series_unit)
                self.series_checked = True
            valid &= ok
            fti = thermal.freeze_thaw_index(*thermal.degree_days(series, self.dates))
        if self.v_mask is not None:
            m = read_window(self.v_mask, [1], win)[0]
            valid &= self._count("valid mask", np.isfinite(m) & (m != 0))
        row_mid = int(win.row_off) + h / 2
        dx_scalar, dy = grid.metres_per_pixel(row_mid)
        dx = grid.row_metres(int(win.row_off) - halo, h + 2 * halo) if grid.crs.is_geographic else dx_scalar
        data = WindowInputs(refl, lst, dem, halo, fti, dx, dy, dx_scalar, self.sensor, lst_stats, radius_m)
        return data, valid


def _baseline_at_least_4(baseline: str) -> bool:
    try:
        return float(baseline.strip().lstrip("N")) >= 4.0
    except ValueError:
        return False


def check_plausible_series(series_c: np.ndarray, unit: str) -> None:
    """Refuse a temperature series whose median is not a plausible air or surface temperature in °C.

    A Kelvin series declared Celsius would otherwise never freeze and give a constant FTI of 1.

    Raises:
        FeatureError: naming the median and the unit to set.

    """
    finite = series_c[np.isfinite(series_c)]
    if finite.size == 0:
        return
    med = float(np.median(finite))
    lo, hi = SERIES_RANGE_C
    if lo <= med <= hi:
        return
    declared = "Celsius" if unit == "C" else "Kelvin"
    hint = (
        "It looks like Kelvin: set the temperature series unit to Kelvin."
        if unit == "C" and 180 <= med <= 340
        else "Check the temperature series unit and scale (values must be °C or K)."
    )
    raise FeatureError(
        f"The temperature series, read as {declared}, has a median of {med:.1f} °C, which is not a plausible "
        f"temperature. {hint}"
    )
