"""How slumps evolve: yearly means inside slumps and in a ring around them, with trends and significance.

Yearly means of rasters (e.g. NDVI, LST) inside the slumps and in a ring of undisturbed ground around them,
with linear trends, Sen's slope and the Mann-Kendall test.

Each raster is one variable in one year. The year comes from a given list or from the file name (a 4-digit
year 1950–2099); the variable name is the file name without the year (``ndvi_2019.tif`` → ``ndvi``) unless given.
The ring around each slump is the ground within `ring_width` metres of it that is no slump; a ring pixel
belongs to its nearest slump.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
from scipy import ndimage

from . import report
from .errors import OperationCanceled, RtsFusionError
from .grid import TargetGrid
from .inventory import label_polygons

YEAR = re.compile(r"(?<!\d)(19[5-9]\d|20\d\d)(?!\d)")


@dataclass(frozen=True)
class YearRaster:
    """One raster of a variable in a year."""

    path: str
    variable: str
    year: int
    band: int = 1


def parse_year_rasters(
    paths: Sequence[str], years: Sequence[int] | None = None, variables: Sequence[str] | None = None
) -> list[YearRaster]:
    """Years and variable names of the rasters, from the given lists or the file names.

    Raises:
        RtsFusionError: a year that cannot be found, lists of the wrong length, a variable with fewer than 3
            years, or two rasters of the same variable and year.

    """
    if years is not None and len(years) != len(paths):
        raise RtsFusionError(f"{len(years)} years given for {len(paths)} rasters; give one year per raster.")
    if variables is not None and len(variables) != len(paths):
        raise RtsFusionError(f"{len(variables)} variable names given for {len(paths)} rasters.")
    out = []
    for i, path in enumerate(paths):
        stem = os.path.splitext(os.path.basename(path))[0]
        if years is not None:
            year = int(years[i])
        else:
            found = YEAR.findall(stem)
            if len(found) != 1:
                raise RtsFusionError(
                    f"Cannot tell the year of '{os.path.basename(path)}' from its name; give the years as a list."
                )
            year = int(found[0])
        if variables is not None:
            variable = variables[i].strip()
        else:
            variable = re.sub(r"[_\-. ]+", "_", YEAR.sub("", stem)).strip("_").lower() or "value"
        out.append(YearRaster(path, variable, year))
    seen: dict[tuple[str, int], str] = {}
    for r in out:
        if (r.variable, r.year) in seen:
            raise RtsFusionError(
                f"Two rasters for {r.variable} in {r.year}: {seen[(r.variable, r.year)]} and {r.path}."
            )
        seen[(r.variable, r.year)] = r.path
    for v in {r.variable for r in out}:
        n = sum(r.variable == v for r in out)
        if n < 3:
            raise RtsFusionError(f"{v} has {n} year(s); a trend needs at least 3.")
    return sorted(out, key=lambda r: (r.variable, r.year))


# ----- trend statistics -----------------------------------------------------------------------------------------
def sens_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Theil–Sen slope: the median of the slopes between all pairs of points (NaN values ignored)."""
    pts = [(a, b) for a, b in zip(x, y) if np.isfinite(b)]
    slopes = [(b2 - b1) / (a2 - a1) for i, (a1, b1) in enumerate(pts) for a2, b2 in pts[i + 1 :] if a2 != a1]
    return float(np.median(slopes)) if slopes else float("nan")


def mann_kendall(y: Sequence[float]) -> tuple[float, float, float]:
    """Mann-Kendall trend test of a series in time order: (S, Z, two-sided p), ties corrected, NaN ignored."""
    v = np.asarray([b for b in y if np.isfinite(b)], float)
    n = len(v)
    if n < 3:
        return float("nan"), float("nan"), float("nan")
    s = float(sum(np.sign(v[j] - v[i]) for i in range(n - 1) for j in range(i + 1, n)))
    _, counts = np.unique(v, return_counts=True)
    var = (n * (n - 1) * (2 * n + 5) - float(np.sum(counts * (counts - 1) * (2 * counts + 5)))) / 18.0
    if var <= 0:
        return s, 0.0, 1.0
    z = (s - 1) / math.sqrt(var) if s > 0 else (s + 1) / math.sqrt(var) if s < 0 else 0.0
    p = math.erfc(abs(z) / math.sqrt(2))
    return s, z, p


def ols_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope (NaN values ignored)."""
    pts = np.array([(a, b) for a, b in zip(x, y) if np.isfinite(b)], float)
    if len(pts) < 2:
        return float("nan")
    return float(np.polyfit(pts[:, 0], pts[:, 1], 1)[0])


# ----- zones ------------------------------------------------------------------------------------------------------
def zones(slumps_path: str, grid: TargetGrid, ring_width: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(slump labels, ring labels: each ring pixel the label of its nearest slump, number of slumps)."""
    labels, n = label_polygons(slumps_path, grid)
    ring = np.zeros_like(labels)
    if n and (labels > 0).any():
        px = abs(grid.transform[0])
        dist, (ri, ci) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
        near = (labels == 0) & (dist * px <= ring_width)
        ring[near] = labels[ri[near], ci[near]]
    return labels, ring, n


@dataclass
class TrendResult:
    """Yearly means and trends; rows are one per (scope, variable, zone)."""

    rows: list[dict]
    years: dict[str, list[int]]
    n_slumps: int


def temporal_trends(
    slumps_path: str,
    rasters: Sequence[YearRaster],
    ring_width: float = 60.0,
    alpha: float = 0.05,
    per_slump: bool = True,
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
) -> TrendResult:
    """Yearly means inside the slumps and in the ring around them, and their trends, per variable.

    Rows: scope "all" (every slump pixel pooled) and, with per_slump, one scope per slump (its 1-based
    position in the layer); zone "slump", "ring" and "difference" (slump − ring); fields y<year> with the
    means, n_years, ols_slope, sen_slope, mk_z, mk_p and trend (increasing / decreasing / no trend at alpha).

    Raises:
        RtsFusionError: unreadable rasters, a raster no slump polygon lies on (named), or no slump on valid
            pixels of any raster.
        OperationCanceled: cancelled.

    """
    progress, is_canceled = progress or (lambda _p: None), is_canceled or (lambda: False)
    if ring_width <= 0:
        raise RtsFusionError("The ring width must be positive.")
    series: dict[tuple[str, str, str], dict[int, float]] = {}
    n_slumps = 0
    cache: dict[tuple, tuple[np.ndarray, np.ndarray, int]] = {}
    for k, r in enumerate(rasters):
        if is_canceled():
            raise OperationCanceled("Temporal trends cancelled.")
        try:
            with rasterio.open(r.path) as ds:
                if ds.crs is None:
                    raise RtsFusionError(f"'{r.path}' has no coordinate reference system.")
                grid = TargetGrid(ds.crs.to_wkt(), tuple(ds.transform)[:6], ds.width, ds.height)
                data = ds.read(r.band, masked=True).astype(np.float64).filled(np.nan)
        except rasterio.errors.RasterioIOError as exc:
            raise RtsFusionError(f"Cannot read '{r.path}': {exc}") from exc
        key = (grid.crs_wkt, grid.transform, grid.width, grid.height)
        if key not in cache:
            cache[key] = zones(slumps_path, grid, ring_width)
        labels, ring, n = cache[key]
        if n and not (labels > 0).any():
            raise RtsFusionError(
                f"No slump polygon of '{os.path.basename(slumps_path.split('|')[0])}' lies on the {r.variable} "
                f"raster of {r.year} ('{os.path.basename(r.path)}'): the layers do not overlap (check their CRS "
                "and extent)."
            )
        n_slumps = max(n_slumps, n)
        finite = np.isfinite(data)
        for zone, lab in (("slump", labels), ("ring", ring)):
            ok = finite & (lab > 0)
            series.setdefault(("all", r.variable, zone), {})[r.year] = float(data[ok].mean()) if ok.any() else np.nan
            if per_slump and n:
                sums = np.bincount(lab[ok], weights=data[ok], minlength=n + 1)
                counts = np.bincount(lab[ok], minlength=n + 1)
                for i in np.flatnonzero(counts[1:]) + 1:
                    series.setdefault((str(i), r.variable, zone), {})[r.year] = float(sums[i] / counts[i])
        progress(90 * (k + 1) / len(rasters))
    if not any(np.isfinite(v) for (s, _, z), d in series.items() if s == "all" and z == "slump" for v in d.values()):
        raise RtsFusionError("No slump polygon lies on valid pixels of the rasters.")
    years = {v: sorted({r.year for r in rasters if r.variable == v}) for v in {r.variable for r in rasters}}
    for (scope, var, zone), d in list(series.items()):
        if zone == "slump" and (scope, var, "ring") in series:
            ring_d = series[(scope, var, "ring")]
            series[(scope, var, "difference")] = {y: d.get(y, np.nan) - ring_d.get(y, np.nan) for y in years[var]}
    rows = []
    zone_order = {"slump": 0, "ring": 1, "difference": 2}
    for (scope, var, zone), d in sorted(
        series.items(), key=lambda kv: (kv[0][0] != "all", int(kv[0][0]) if kv[0][0].isdigit() else 0, kv[0][1],
                                        zone_order[kv[0][2]])
    ):  # fmt: skip
        ys = years[var]
        values = [d.get(y, np.nan) for y in ys]
        s, z, p = mann_kendall(values)
        row = {"scope": scope, "variable": var, "zone": zone}
        row.update({f"y{y}": (round(v, 6) if np.isfinite(v) else None) for y, v in zip(ys, values)})
        finite_n = int(np.isfinite(values).sum())
        sen = sens_slope(ys, values)
        row.update(
            {
                "n_years": finite_n,
                "ols_slope": _r(ols_slope(ys, values)),
                "sen_slope": _r(sen),
                "mk_s": _r(s),
                "mk_z": _r(z),
                "mk_p": _r(p),
                "trend": ("increasing" if sen > 0 else "decreasing")
                if np.isfinite(p) and p < alpha and np.isfinite(sen) and sen != 0
                else "no trend",
            }
        )
        rows.append(row)
    progress(100)
    return TrendResult(rows, years, n_slumps)


def _r(v: float) -> float | None:
    return round(float(v), 6) if np.isfinite(v) else None


def write_report(path: str, result: TrendResult) -> str:
    """An HTML report: per variable, a chart of the yearly means in slumps and rings, and the overall table."""
    folder = report.assets_folder(path)
    sections = [
        (
            "Summary",
            f"<p>{result.n_slumps} slumps. Trends per year: least squares (ols_slope) and Theil–Sen (sen_slope), "
            "with the Mann-Kendall test (mk_z, two-sided mk_p). The ring is undisturbed ground around each "
            "slump; 'difference' is slump minus ring.</p>",
        )
    ]
    for var, ys in sorted(result.years.items()):
        overall = [r for r in result.rows if r["scope"] == "all" and r["variable"] == var]
        png = os.path.join(folder, f"{re.sub(r'[^A-Za-z0-9_]+', '_', var)}.png")
        report.line_chart(
            png,
            ys,
            {r["zone"]: [r.get(f"y{y}") if r.get(f"y{y}") is not None else float("nan") for y in ys]
             for r in overall if r["zone"] != "difference"},
            f"{var}: yearly mean in slumps and rings",
            "year",
        )  # fmt: skip
        cols = ("zone", "n_years", "ols_slope", "sen_slope", "mk_z", "mk_p", "trend")
        sections.append((var, report.image(png, path) + report.table([{c: r[c] for c in cols} for r in overall])))
    return report.write_html(path, "RTS temporal trends", sections)
