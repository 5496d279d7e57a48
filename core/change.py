"""Compare two slump inventories of different dates: new, grown, shrunk, stable and vanished slumps.

Polygons of the two dates that overlap form a group (connected through overlaps, so a slump that split or
merged stays one group). A group is 'grown' when its area rose by more than the tolerance, 'shrunk' when it fell
by more, else 'stable'; a later polygon overlapping nothing is 'new', an earlier one 'vanished'. Retreat is
the farthest the later outline reaches beyond the earlier one (headwall retreat for a growing slump), in metres.
Areas and distances are computed in metres (geographic layers in the UTM zone of their centre).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

from osgeo import ogr, osr

from .errors import OperationCanceled, RtsFusionError
from .grid import utm_epsg
from .vector import PolygonRecord, layer_crs_wkt, read_geometries, write_polygons

CLASSES = ("new", "grown", "shrunk", "stable", "vanished")


@dataclass
class ChangeResult:
    """Per-group records (geometry: the later outline, or the earlier one for vanished) and totals."""

    records: list[dict]
    totals: dict[str, float]
    crs_wkt: str


def _metric_crs(wkt: str, geoms: list[ogr.Geometry]) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    if not srs.IsGeographic():
        return wkt
    env = [g.GetEnvelope() for g in geoms]  # (minx, maxx, miny, maxy) in lon/lat (traditional order)
    lon = (min(e[0] for e in env) + max(e[1] for e in env)) / 2
    lat = (min(e[2] for e in env) + max(e[3] for e in env)) / 2
    utm = osr.SpatialReference()
    utm.ImportFromEPSG(utm_epsg(lon, lat))
    return utm.ExportToWkt()


def _retreat(before: ogr.Geometry, after: ogr.Geometry, step: float) -> float:
    """Farthest distance from the earlier outline of any point of the later outline outside it."""
    line = after.GetBoundary()  # a new (multi)linestring
    line.Segmentize(step)
    best = 0.0
    for part in [line.GetGeometryRef(i) for i in range(line.GetGeometryCount())] or [line]:
        for j in range(part.GetPointCount()):
            pt = ogr.Geometry(ogr.wkbPoint)
            pt.AddPoint_2D(*part.GetPoint_2D(j))
            if not before.Contains(pt):
                best = max(best, pt.Distance(before))
    return best


def _union(geoms: list[ogr.Geometry]) -> ogr.Geometry:
    out = geoms[0].Clone()
    for g in geoms[1:]:
        out = out.Union(g)
    return out


def _extent(geoms: list[ogr.Geometry]) -> tuple[float, float, float, float] | None:
    envs = [g.GetEnvelope() for g in geoms if g is not None and not g.IsEmpty()]
    if not envs:
        return None
    return min(e[0] for e in envs), max(e[1] for e in envs), min(e[2] for e in envs), max(e[3] for e in envs)


def _require_common_area(
    before_path: str, before: list[ogr.Geometry], after_path: str, after: list[ogr.Geometry]
) -> None:
    """Two non-empty inventories whose extents are disjoint cannot show the same slumps: refuse, naming them."""
    eb, ea = _extent(before), _extent(after)
    if eb is None or ea is None:
        return
    if ea[0] > eb[1] or ea[1] < eb[0] or ea[2] > eb[3] or ea[3] < eb[2]:
        names = [os.path.basename(p.split("|")[0]) for p in (before_path, after_path)]
        raise RtsFusionError(
            f"The inventories '{names[0]}' and '{names[1]}' do not overlap: every slump would count as disappeared "
            "or new. Check that both cover the same area and that their CRS are set right."
        )


def compare_inventories(
    before_path: str,
    after_path: str,
    tolerance: float = 0.1,
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
) -> ChangeResult:
    """Classify every slump group between two inventories.

    Args:
        before_path: the earlier inventory (polygons).
        after_path: the later inventory (any CRS; reprojected to the earlier one's, in metres).
        tolerance: relative area change below which a group is 'stable' (0.1 = ±10 %).
        progress: called with 0–100.
        is_canceled: polled; True stops the comparison.

    Raises:
        RtsFusionError: unreadable layers, a layer without CRS, both layers empty, inventories that do not
            overlap (named).
        OperationCanceled: cancelled.

    """
    progress, is_canceled = progress or (lambda _p: None), is_canceled or (lambda: False)
    if tolerance < 0:
        raise RtsFusionError("The stability tolerance must not be negative.")
    try:
        wkt = layer_crs_wkt(before_path) or layer_crs_wkt(after_path)
        if not wkt:
            raise RtsFusionError("The inventories have no coordinate reference system.")
        probe = [g for _, g in read_geometries(before_path, wkt)] + [g for _, g in read_geometries(after_path, wkt)]
        if not probe:
            raise RtsFusionError("Both inventories are empty.")
        metric = _metric_crs(wkt, probe)
        before = [(f, g.MakeValid() if not g.IsValid() else g) for f, g in read_geometries(before_path, metric)]
        after = [(f, g.MakeValid() if not g.IsValid() else g) for f, g in read_geometries(after_path, metric)]
    except (ValueError, RuntimeError) as exc:
        raise RtsFusionError(f"Cannot read the inventories: {exc}") from exc
    _require_common_area(before_path, [g for _, g in before], after_path, [g for _, g in after])
    nb = len(before)
    # Union-find over the bipartite overlap graph: nodes 0..nb-1 earlier, nb.. later.
    parent = list(range(nb + len(after)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (_, gb) in enumerate(before):
        if is_canceled():
            raise OperationCanceled("Comparing inventories cancelled.")
        env_b = gb.GetEnvelope()
        for j, (_, ga) in enumerate(after):
            env_a = ga.GetEnvelope()
            if env_a[0] > env_b[1] or env_a[1] < env_b[0] or env_a[2] > env_b[3] or env_a[3] < env_b[2]:
                continue
            if gb.Intersects(ga) and gb.Intersection(ga).GetArea() > 0:
                parent[find(i)] = find(nb + j)
        progress(60 * (i + 1) / max(nb, 1))
    groups: dict[int, tuple[list[int], list[int]]] = {}
    for i in range(nb + len(after)):
        b, a = groups.setdefault(find(i), ([], []))
        (b if i < nb else a).append(i if i < nb else i - nb)
    records = []
    for b_idx, a_idx in groups.values():
        area_b = sum(before[i][1].GetArea() for i in b_idx)
        area_a = sum(after[j][1].GetArea() for j in a_idx)
        union_b = _union([before[i][1] for i in b_idx]) if b_idx else None
        union_a = _union([after[j][1] for j in a_idx]) if a_idx else None
        if not b_idx:
            cls, retreat = "new", None
        elif not a_idx:
            cls, retreat = "vanished", None
        else:
            change = (area_a - area_b) / area_b if area_b > 0 else math.inf
            cls = "grown" if change > tolerance else "shrunk" if change < -tolerance else "stable"
            step = max(1.0, math.sqrt(max(area_a, 1.0)) / 50)
            retreat = round(_retreat(union_b, union_a, step), 2)
        records.append(
            {
                "geometry": union_a if a_idx else union_b,
                "change": cls,
                "before_ids": ",".join(str(before[i][0]) for i in b_idx),
                "after_ids": ",".join(str(after[j][0]) for j in a_idx),
                "area_before_m2": round(area_b, 1),
                "area_after_m2": round(area_a, 1),
                "area_change_m2": round(area_a - area_b, 1),
                "change_pct": round(100 * (area_a - area_b) / area_b, 2) if area_b > 0 else None,
                "retreat_m": retreat,
            }
        )
    records.sort(key=lambda r: (CLASSES.index(r["change"]), r["before_ids"], r["after_ids"]))
    totals: dict[str, float] = {f"n_{c}": sum(r["change"] == c for r in records) for c in CLASSES}
    totals["area_before_m2"] = round(sum(g.GetArea() for _, g in before), 1)
    totals["area_after_m2"] = round(sum(g.GetArea() for _, g in after), 1)
    totals["area_change_m2"] = round(totals["area_after_m2"] - totals["area_before_m2"], 1)
    retreats = [r["retreat_m"] for r in records if r["change"] == "grown" and r["retreat_m"] is not None]
    totals["mean_retreat_grown_m"] = round(sum(retreats) / len(retreats), 2) if retreats else 0.0
    progress(100)
    return ChangeResult(records, totals, metric)


def write_changes(path: str, result: ChangeResult, layer_name: str = "changes") -> None:
    """The classified groups as a GeoPackage layer (multi-part outlines become one record per part)."""
    out = []
    for r in result.records:
        attrs = {k: ("" if v is None and k.endswith("ids") else v) for k, v in r.items() if k != "geometry"}
        geom = r["geometry"]
        flat = ogr.GT_Flatten(geom.GetGeometryType())
        parts = [geom] if flat == ogr.wkbPolygon else [geom.GetGeometryRef(i) for i in range(geom.GetGeometryCount())]
        for part in parts:
            if ogr.GT_Flatten(part.GetGeometryType()) != ogr.wkbPolygon:
                continue
            rings = [
                [part.GetGeometryRef(k).GetPoint_2D(m) for m in range(part.GetGeometryRef(k).GetPointCount())]
                for k in range(part.GetGeometryCount())
            ]
            out.append(PolygonRecord(rings[0], attrs, tuple(rings[1:])))
    example = [
        ("change", ""), ("before_ids", ""), ("after_ids", ""), ("area_before_m2", 0.0), ("area_after_m2", 0.0),
        ("area_change_m2", 0.0), ("change_pct", 0.0), ("retreat_m", 0.0),
    ]  # fmt: skip
    write_polygons(path, layer_name, result.crs_wkt, out, fields=example)
