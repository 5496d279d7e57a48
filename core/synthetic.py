"""A realistic, deterministic synthetic RTS scene: plateau DEM, surface classes, thaw slumps, sensors.

Used by the demo, the tests and the benchmarks. The scene follows what the study reports of thaw
slumps on the Qinghai-Tibet Plateau: they sit on gentle (3–10°) slopes near water at 4,400–5,200 m,
have lower NDVI, brighter bare soil (notably in the blue band) and warmer land-surface temperature than
the meadow around them. Confounders keep any single band from separating them: bare patches that are
not slumps, south-facing slopes that are warm, terrain illumination, sensor noise.

The optical image (Sentinel-2-like, UTM 46N, 10 m, six bands), thermal layer (Landsat-ST-like DN, UTM
45N, 30 m), DEM (geographic, 1 arc-second), monthly temperature series (100 m) and slump outlines
(GeoPackage) are written as separate files, each with its own CRS and resolution, like real inputs.
"""

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
from rasterio.features import rasterize
from rasterio.warp import calculate_default_transform, reproject
from scipy import ndimage

from . import terrain
from .sources import FusionInputs, OpticalBands
from .stack import build_fused_stack
from .vector import PolygonRecord, write_polygons

OPTICAL_CRS = "EPSG:32646"
THERMAL_CRS = "EPSG:32645"
DEM_CRS = "EPSG:4326"
PIXEL = 10.0
ORIGIN = (460_000.0, 3_870_000.0)  # UTM 46N, about 34.97° N 92.56° E (Beiluhe region)
ST_SCALE, ST_OFFSET = 0.00341802, 149.0  # Landsat Collection 2 surface-temperature encoding

# Reflectance spectra: blue, green, red, NIR, SWIR1, SWIR2.
SPECTRA = {
    "meadow": np.array([0.035, 0.065, 0.050, 0.32, 0.19, 0.10]),
    "bare": np.array([0.090, 0.130, 0.170, 0.23, 0.31, 0.26]),
    "slump": np.array([0.125, 0.150, 0.170, 0.21, 0.24, 0.19]),
    "water": np.array([0.060, 0.060, 0.040, 0.015, 0.008, 0.005]),
}
S2_BANDS = ("B2 (blue)", "B3 (green)", "B4 (red)", "B8 (NIR)", "B11 (SWIR1)", "B12 (SWIR2)")


@dataclass(frozen=True)
class SampleScene:
    """Paths of a written sample scene and what it contains."""

    optical: str
    thermal: str
    dem: str
    temperature_series: str
    slumps: str
    n_slumps: int
    slump_fraction: float
    size: int


def _fractal(rng: np.random.Generator, n: int, beta: float) -> np.ndarray:
    """Gaussian random field with a 1/f^beta power spectrum, scaled to zero mean and unit std."""
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    f = np.hypot(fx, fy)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2.0)
    amp[0, 0] = 0.0
    phase = rng.normal(size=amp.shape) + 1j * rng.normal(size=amp.shape)
    field = np.fft.irfft2(amp * phase, s=(n, n))
    return (field - field.mean()) / field.std()


def _slump_outline(
    rng: np.random.Generator, cx: float, cy: float, length: float, width: float, aspect_rad: float
) -> list[tuple[float, float]]:
    """A horseshoe/tongue outline: wide arc at the headwall (upslope), narrowing tongue downslope."""
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    u = np.cos(t)  # −1 headwall (upslope) … +1 toe (downslope)
    jitter = 1.0 + 0.07 * np.convolve(rng.normal(size=t.size + 4), np.ones(5) / 5, mode="valid")
    along = u * length / 2 * jitter
    across = np.sin(t) * width / 2 * (1.0 - 0.3 * (u + 1) / 2) * jitter
    de, dn = math.sin(aspect_rad), math.cos(aspect_rad)  # downslope unit vector (east, north)
    xs = cx + along * de + across * dn
    ys = cy + along * dn - across * de
    return list(zip(xs.tolist(), ys.tolist()))


def _write(path: str, data: np.ndarray, crs: str, transform: Affine, nodata: float, **extra: object) -> None:
    profile = {
        "driver": "GTiff",
        "dtype": data.dtype.name,
        "count": data.shape[0],
        "width": data.shape[2],
        "height": data.shape[1],
        "crs": CRS.from_user_input(crs),
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, desc in enumerate(extra.get("descriptions", ()), start=1):
            dst.set_band_description(i, desc)
        if "scales" in extra:
            dst.scales = extra["scales"]
            dst.offsets = extra["offsets"]
        if "units" in extra:
            for i in range(1, data.shape[0] + 1):
                dst.set_band_unit(i, extra["units"])


def _resample_to(
    data: np.ndarray, src_transform: Affine, dst_crs: str, res: float, resampling: Resampling
) -> tuple[np.ndarray, Affine]:
    """Reproject (bands, h, w) float data from the UTM 46N scene grid to another CRS and resolution."""
    src_crs = CRS.from_user_input(OPTICAL_CRS)
    h, w = data.shape[1:]
    left, top = src_transform.c, src_transform.f
    bounds = (left, top - h * PIXEL, left + w * PIXEL, top)
    dst_transform, dw, dh = calculate_default_transform(
        src_crs, CRS.from_user_input(dst_crs), w, h, *bounds, resolution=res
    )
    out = np.full((data.shape[0], dh, dw), np.nan, dtype=np.float32)
    reproject(
        data.astype(np.float32),
        out,
        src_transform=src_transform,
        src_crs=src_crs,
        src_nodata=np.nan,
        dst_transform=dst_transform,
        dst_crs=CRS.from_user_input(dst_crs),
        dst_nodata=np.nan,
        resampling=resampling,
    )
    return out, dst_transform


REGION_NAMES = ("west", "centre", "east", "far east", "region 5", "region 6")
REGION_RELIEF = (0.6, 1.0, 1.6, 0.8, 1.3, 1.1)
REGION_BARE = (96.0, 93.0, 86.0, 90.0, 94.0, 89.0)


def _region_fields(regions: int, n: int, margin: int) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Relief amplitude factor and bare-patch percentile per column (west–east strips of the optical image)."""
    if not regions:
        return 1.0, 93.0
    if not 2 <= regions <= len(REGION_NAMES):
        raise ValueError(f"The sample scene has 2 to {len(REGION_NAMES)} regions, not {regions}.")
    inner = n - 2 * margin
    centres = margin + (np.arange(regions) + 0.5) * inner / regions
    cols = np.arange(n)
    relief = np.interp(cols, centres, REGION_RELIEF[:regions])[None, :]  # smooth from strip to strip
    strip = np.clip(((cols - margin) * regions) // max(inner, 1), 0, regions - 1)
    return relief, np.array(REGION_BARE[:regions])[strip][None, :]  # each strip's own percentile


def _year_fraction(year: int) -> float:
    """A slump's area in a year as a fraction of its 2024 area."""
    return float(np.clip(1.0 - 0.08 * (2024 - year), 0.5, 1.0))


def _year_slumps(records: list, year: int, n: int, transform: Affine) -> np.ndarray:
    """The slump mask of a year: every outline scaled about its centre to that year's area."""
    shapes = [
        (
            {
                "type": "Polygon",
                "coordinates": [_scaled(rec.exterior + [rec.exterior[0]], math.sqrt(_year_fraction(year)))],
            },
            1,
        )
        for rec in records
    ]
    if not shapes:
        return np.zeros((n, n), bool)
    return rasterize(shapes, out_shape=(n, n), transform=transform).astype(bool)


def generate_sample_scene(
    folder: str,
    size: int = 512,
    seed: int = 42,
    regions: int = 0,
    year: int | None = None,
    slump_density: float = 1.0,
) -> SampleScene:
    """Write a synthetic RTS scene of size × size optical pixels (10 m) into folder.

    Args:
        folder: output folder (created if missing); files are overwritten.
        size: optical image side in pixels (≥ 64).
        seed: random seed; the same seed gives the same files.
        regions: 0, or split the scene into this many west–east strips whose relief and surface differ (relief
            amplitude and share of bare confounder patches change from strip to strip); their outlines go to
            regions.gpkg (field "region"), for spatial-transfer experiments.
        year: None, or a year (2019–2024) of the same place: the same terrain and slump sites, the slumps smaller
            the earlier the year (8 % of area per year before 2024), and that year's own illumination and noise;
            for temporal-transfer experiments.
        slump_density: slumps aimed at per area, relative to the default (14 per 512 × 512 px, about 0.53 per
            km²). Slumps sit near water; above 1 the scene also gets small lakes in local hollows all over it, so
            the extra slumps spread over more of the scene instead of crowding the shores of the few large lakes
            (at 1536 px, 2 puts slumps in 174 of the 576 tiles of 64 px, where 1 puts them in 50). 1 leaves the
            scene as it always was. Fewer are drawn when the suitable sites run out (n_slumps says how many).

    Returns:
        The written paths and the number of slumps drawn.

    """
    if size < 64:
        raise ValueError("The sample scene needs at least 64 × 64 pixels.")
    if not slump_density > 0:
        raise ValueError(f"The slump density must be above 0 (got {slump_density}).")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    margin = max(16, size // 8)  # DEM and thermal cover more than the optical image, as in real data
    n = size + 2 * margin
    full_transform = Affine(PIXEL, 0, ORIGIN[0] - margin * PIXEL, 0, -PIXEL, ORIGIN[1] + margin * PIXEL)

    # --- Terrain: fractal plateau, a regional tilt, lakes in the lowest basins.
    relief = _fractal(rng, n, beta=4.0)
    yy, xx = np.mgrid[0:n, 0:n] / n
    relief_scale, bare_percentile = _region_fields(regions, n, margin)
    dem = 4780 + 80 * relief * relief_scale + 60 * (xx - 0.5) - 40 * (yy - 0.5)
    smooth = ndimage.gaussian_filter(dem, 3)
    water = smooth < np.percentile(smooth, 6)
    water = ndimage.binary_opening(water, iterations=2)
    lake_level = np.where(water, np.percentile(smooth, 6), dem)
    if slump_density > 1:  # more, smaller lakes in local hollows all over the scene, each level with its rim
        hollow = smooth - ndimage.gaussian_filter(smooth, n / 24)
        ponds = ndimage.binary_opening(hollow < np.percentile(hollow, 4), iterations=2) & ~water
        labels, count = ndimage.label(ponds)
        if count:
            rims = np.asarray(ndimage.maximum(smooth, labels, np.arange(1, count + 1)))
            lake_level = np.where(ponds, np.concatenate([[0.0], rims])[labels], lake_level)
            water |= ponds
    dem = np.where(water, lake_level, dem)
    slope = terrain.slope_degrees(dem, PIXEL, PIXEL)
    slope = np.where(np.isnan(slope), 0, slope)
    asp_sin, asp_cos = terrain.aspect_sin_cos(dem, PIXEL, PIXEL)
    asp_sin, asp_cos = np.nan_to_num(asp_sin), np.nan_to_num(asp_cos)
    dist_water = ndimage.distance_transform_edt(~water) * PIXEL

    # --- Thaw slumps: gentle slopes, near water, not overlapping.
    n_target = max(4, round(14 * slump_density * (size / 512) ** 2))
    ok = (slope >= 3) & (slope <= 10) & (dist_water > 20) & (dist_water < 400)
    edge = margin + 20
    ok[:edge], ok[-edge:], ok[:, :edge], ok[:, -edge:] = False, False, False, False
    cand = np.argwhere(ok)
    slump_mask = np.zeros((n, n), dtype=bool)
    records = []
    tries = 0
    while len(records) < n_target and tries < 30 * n_target and len(cand):
        tries += 1
        r, c = cand[rng.integers(len(cand))]
        length = rng.uniform(90, 260)
        width = length * rng.uniform(0.6, 1.0)
        aspect = math.atan2(asp_sin[r, c], asp_cos[r, c])
        cx, cy = full_transform * (c + 0.5, r + 0.5)
        ring = _slump_outline(rng, cx, cy, length, width, aspect)
        # Rasterise in a window around the outline only: the scene can be thousands of pixels wide.
        half = int(length / PIXEL) + 6
        r0, c0 = max(0, r - half), max(0, c - half)
        r1, c1 = min(n, r + half + 1), min(n, c + half + 1)
        win_transform = full_transform * Affine.translation(c0, r0)
        local = rasterize(
            [({"type": "Polygon", "coordinates": [ring + [ring[0]]]}, 1)], (r1 - r0, c1 - c0), transform=win_transform
        ).astype(bool)
        near = ndimage.binary_dilation(slump_mask[r0:r1, c0:c1], iterations=4)
        if not local.any() or (near & local).any() or (local & water[r0:r1, c0:c1]).any():
            continue
        slump_mask[r0:r1, c0:c1] |= local
        area = float(local.sum()) * PIXEL * PIXEL
        records.append(PolygonRecord(ring, {"id": len(records) + 1, "area_m2": round(area, 1), "source": "synthetic"}))

    # --- Surface: meadow with varying cover, bare patches (confounders), slumps, water.
    cover = np.clip(0.78 + 0.12 * _fractal(rng, n, 2.2) - 0.01 * np.clip(slope - 12, 0, None), 0.2, 0.95)
    bare_field = ndimage.gaussian_filter(_fractal(rng, n, 2.0), 2)
    if year is not None:  # the same place in another year: own illumination and noise, slumps of that year
        rng = np.random.default_rng([seed, year])
        slump_mask = _year_slumps(records, year, n, full_transform)
    bare_threshold = np.percentile(bare_field, bare_percentile) if regions else np.percentile(bare_field, 93)
    bare = (bare_field > bare_threshold) & ~ndimage.binary_dilation(slump_mask, iterations=6) & ~water
    slump_soft = ndimage.gaussian_filter(slump_mask.astype(float), 1.0)
    bare_soft = ndimage.gaussian_filter(bare.astype(float), 1.5)
    veg = cover * (1 - 0.85 * bare_soft) * (1 - 0.8 * slump_soft)
    soil_slump = slump_soft / np.maximum(slump_soft + bare_soft, 1e-6)
    soil = SPECTRA["bare"][:, None, None] * (1 - soil_slump) + SPECTRA["slump"][:, None, None] * soil_slump
    refl = veg * SPECTRA["meadow"][:, None, None] + (1 - veg) * soil
    # Illumination from the south-east at 50° elevation: shaded slopes darker, sunlit ones brighter.
    sun_az, sun_el = math.radians(135), math.radians(50 if year is None else 44 + 3 * (year % 5))
    s_rad = np.radians(slope)
    cos_i = np.cos(s_rad) * math.sin(sun_el) + np.sin(s_rad) * math.cos(sun_el) * (
        asp_sin * math.sin(sun_az) + asp_cos * math.cos(sun_az)
    )
    illum = np.clip(cos_i / math.sin(sun_el), 0.55, 1.35)
    refl = refl * illum
    refl = np.where(water, SPECTRA["water"][:, None, None], refl)
    refl = refl * (1 + 0.04 * rng.normal(size=refl.shape)) + 0.003 * rng.normal(size=refl.shape)
    refl = np.clip(refl, 0.0005, 1.0)

    # --- Land-surface temperature (K): lapse rate, warm south-facing slopes, bare and slump soil warmer.
    lst = (
        291.0
        - 0.0065 * (dem - 4780)
        + 2.5 * (-asp_cos) * np.clip(slope / 15, 0, 1)
        + 4.0 * (1 - veg)
        + 2.0 * slump_soft
        + 1.2 * _fractal(rng, n, 2.5)
        + 0.6 * rng.normal(size=(n, n))
    )
    lst = np.where(water, 282.0 + 0.3 * rng.normal(size=(n, n)), lst)

    # --- Write the optical image: the central size × size pixels, Sentinel-2 L2A-like DN.
    inner = np.s_[margin : margin + size, margin : margin + size]
    opt_transform = Affine(PIXEL, 0, ORIGIN[0], 0, -PIXEL, ORIGIN[1])
    dn = np.clip(np.round(refl[:, inner[0], inner[1]] * 10000), 1, 65535).astype(np.uint16)
    paths = {k: os.path.join(folder, f"{k}.tif") for k in ("optical", "thermal", "dem", "temperature_series")}
    _write(
        paths["optical"], dn, OPTICAL_CRS, opt_transform, 0, descriptions=S2_BANDS, scales=[1e-4] * 6, offsets=[0.0] * 6
    )

    # --- Thermal: 30 m in the neighbouring UTM zone, Landsat ST encoding (DN × 0.00341802 + 149 = K).
    th, th_transform = _resample_to(lst[None], full_transform, THERMAL_CRS, 30.0, Resampling.average)
    th_dn = np.where(np.isfinite(th), np.round((th - ST_OFFSET) / ST_SCALE), 0).astype(np.uint16)
    _write(
        paths["thermal"],
        th_dn,
        THERMAL_CRS,
        th_transform,
        0,
        descriptions=["ST_B10 (surface temperature)"],
        scales=[ST_SCALE],
        offsets=[ST_OFFSET],
        units="K",
    )

    # --- DEM: geographic, 1 arc-second.
    dm, dm_transform = _resample_to(dem[None], full_transform, DEM_CRS, 1 / 3600, Resampling.bilinear)
    _write(
        paths["dem"],
        np.where(np.isfinite(dm), dm, -32768).astype(np.float32),
        DEM_CRS,
        dm_transform,
        -32768,
        descriptions=["elevation"],
        units="m",
    )

    # --- Monthly mean temperature series (°C) at 100 m: annual cycle around a mean tied to LST.
    months = [f"2023-{m:02d}-15" for m in range(1, 13)]
    mean_annual = (lst - 273.15) - 13.0 + 0.8 * slump_soft
    doy = np.array([31 * (m - 1) + 15 for m in range(1, 13)])
    cycle = 11.0 * np.cos(2 * np.pi * (doy - 200) / 365.0)
    series = mean_annual[None] + cycle[:, None, None]
    ts, ts_transform = _resample_to(series, full_transform, OPTICAL_CRS, 100.0, Resampling.average)
    _write(
        paths["temperature_series"],
        np.where(np.isfinite(ts), ts, -9999).astype(np.float32),
        OPTICAL_CRS,
        ts_transform,
        -9999,
        descriptions=months,
        units="degC",
    )

    # --- Slump outlines (only those wholly inside the optical image).
    slumps_path = os.path.join(folder, "slumps.gpkg")
    x0, y0 = ORIGIN
    x1, y1 = x0 + size * PIXEL, y0 - size * PIXEL
    inside = [rec for rec in records if all(x0 <= x <= x1 and y1 <= y <= y0 for x, y in rec.exterior)]
    if year is not None:
        inside = [
            PolygonRecord(_scaled(rec.exterior, math.sqrt(_year_fraction(year))), {**rec.attributes, "year": year})
            for rec in inside
        ]
    write_polygons(slumps_path, "slumps", CRS.from_user_input(OPTICAL_CRS).to_wkt(), inside)
    if regions:
        strips = []
        for k in range(regions):
            a, b = x0 + k * (x1 - x0) / regions, x0 + (k + 1) * (x1 - x0) / regions
            strips.append(PolygonRecord([(a, y0), (b, y0), (b, y1), (a, y1), (a, y0)], {"region": REGION_NAMES[k]}))
        write_polygons(os.path.join(folder, "regions.gpkg"), "regions", CRS.from_user_input(OPTICAL_CRS).to_wkt(),
                       strips)  # fmt: skip
    fraction = float(slump_mask[inner].mean())
    return SampleScene(
        paths["optical"],
        paths["thermal"],
        paths["dem"],
        paths["temperature_series"],
        slumps_path,
        len(inside),
        fraction,
        size,
    )


def sample_inputs(scene: SampleScene) -> FusionInputs:
    """A sample scene's layers as fusion inputs: its six Sentinel-2-like bands in order, thermal, DEM and series."""
    return FusionInputs(
        scene.optical,
        scene.thermal,
        scene.dem,
        OpticalBands(1, 2, 3, 4, 5, 6, sensor="sentinel2"),
        temperature_series=scene.temperature_series,
    )


def fuse_sample_scene(scene: SampleScene, features: Sequence[str], path: str) -> str:
    """Fuse a sample scene into a stack of the given features (core.stack.build_fused_stack); returns its path."""
    return build_fused_stack(sample_inputs(scene), features, path).path


# ----- a multi-year series -----------------------------------------------------------------------------------------
REGIONAL_LST_TREND = 0.05  # K per year everywhere (background warming)
SLUMP_NDVI_DROP = 0.20  # NDVI lost when ground is disturbed
SLUMP_NDVI_TREND = -0.015  # further NDVI change per year since disturbance
SLUMP_LST_JUMP = 1.5  # K warmer when disturbed
SLUMP_LST_TREND = 0.30  # further K per year since disturbance


@dataclass(frozen=True)
class MultiYearScene:
    """A sample scene with yearly slump inventories and NDVI / LST rasters (files named by year)."""

    base: SampleScene
    years: tuple[int, ...]
    inventories: tuple[str, ...]
    ndvi: tuple[str, ...]
    lst: tuple[str, ...]
    appeared: tuple[int, ...]  # the year each slump of the last inventory first appears
    growth: tuple[float, ...]  # each slump's area in its first year as a fraction of its last-year area


def _scaled(ring: list[tuple[float, float]], factor: float) -> list[tuple[float, float]]:
    xs, ys = np.array([p[0] for p in ring]), np.array([p[1] for p in ring])
    cx, cy = xs.mean(), ys.mean()
    return [(float(cx + factor * (x - cx)), float(cy + factor * (y - cy))) for x, y in zip(xs, ys)]


def generate_multiyear_scene(
    folder: str,
    size: int = 256,
    years: tuple[int, ...] = (2019, 2020, 2021, 2022, 2023, 2024),
    seed: int = 42,
    base: SampleScene | None = None,
) -> MultiYearScene:
    """A sample scene plus, for each year, a slump inventory and NDVI and LST rasters on the optical grid.

    Slumps grow every year (each appears at a fraction of its final area and reaches it in the last year) and
    a quarter of them appear only after the first year. Inside disturbed ground NDVI drops by
    SLUMP_NDVI_DROP and keeps falling by SLUMP_NDVI_TREND per year; LST jumps by SLUMP_LST_JUMP and rises by
    SLUMP_LST_TREND per year; everywhere LST rises by REGIONAL_LST_TREND per year. Undisturbed ground keeps
    its NDVI (with yearly noise), so rings around slumps show no NDVI trend. An already written scene can be
    given as base (its slumps are the last year's); otherwise one is generated in folder/base.
    """
    if len(years) < 3:
        raise ValueError("A multi-year scene needs at least three years.")
    os.makedirs(folder, exist_ok=True)
    base = base or generate_sample_scene(os.path.join(folder, "base"), size=size, seed=seed)
    rng = np.random.default_rng(seed + 1)
    from .vector import read_polygons

    finals = [p[0] for p in read_polygons(base.slumps)]
    y0, y1 = years[0], years[-1]
    # Every fourth slump (the 2nd, 6th, …) appears after the first year, in a random later year.
    appeared = [int(rng.choice(years[1:-1])) if i % 4 == 1 else y0 for i in range(len(finals))]
    growth = [float(rng.uniform(0.45, 0.7)) for _ in finals]
    transform = Affine(PIXEL, 0, ORIGIN[0], 0, -PIXEL, ORIGIN[1])
    crs_wkt = CRS.from_user_input(OPTICAL_CRS).to_wkt()
    with rasterio.open(base.optical) as ds:
        red, nir = ds.read(3).astype(np.float64) * 1e-4, ds.read(4).astype(np.float64) * 1e-4
    ndvi0 = (nir - red) / np.maximum(nir + red, 1e-6)
    lst0 = 287.0 + 6.0 * (0.5 - ndvi0) + 0.4 * rng.normal(size=ndvi0.shape)
    since = np.full(ndvi0.shape, -1, np.int32)  # year the pixel was first disturbed (−1: never)
    inventories, ndvi_paths, lst_paths = [], [], []
    for year in years:
        records, shapes = [], []
        for i, (ring, start, g0) in enumerate(zip(finals, appeared, growth)):
            if year < start:
                continue
            frac = g0 + (1 - g0) * (year - start) / max(y1 - start, 1)
            poly = _scaled(ring, math.sqrt(frac))
            records.append(PolygonRecord(poly, {"id": i + 1, "year": year, "appeared": start}))
            shapes.append(({"type": "Polygon", "coordinates": [poly]}, 1))
        path = os.path.join(folder, f"slumps_{year}.gpkg")
        write_polygons(path, "slumps", crs_wkt, records)
        inventories.append(path)
        disturbed = (
            rasterize(shapes, out_shape=ndvi0.shape, transform=transform).astype(bool)
            if shapes
            else np.zeros(ndvi0.shape, bool)
        )
        since = np.where(disturbed & (since < 0), year, since)
        age = np.where(since >= 0, year - since, 0)
        hit = since >= 0
        ndvi = ndvi0 + 0.01 * rng.normal() + 0.015 * rng.normal(size=ndvi0.shape)
        ndvi = np.where(hit, ndvi - SLUMP_NDVI_DROP + SLUMP_NDVI_TREND * age, ndvi)
        lst = lst0 + REGIONAL_LST_TREND * (year - y0) + 0.3 * rng.normal() + 0.3 * rng.normal(size=ndvi0.shape)
        lst = np.where(hit, lst + SLUMP_LST_JUMP + SLUMP_LST_TREND * age, lst)
        for name, data, unit, paths in (("ndvi", ndvi, "", ndvi_paths), ("lst", lst, "K", lst_paths)):
            p = os.path.join(folder, f"{name}_{year}.tif")
            _write(p, data[None].astype(np.float32), OPTICAL_CRS, transform, -9999, descriptions=[f"{name} {year}"],
                   units=unit)  # fmt: skip
            paths.append(p)
    return MultiYearScene(
        base, tuple(years), tuple(inventories), tuple(ndvi_paths), tuple(lst_paths), tuple(appeared), tuple(growth)
    )
