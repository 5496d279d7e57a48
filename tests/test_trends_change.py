"""Temporal trends and inventory comparison on constructed cases with known answers."""

import numpy as np
import pytest
import rasterio
from osgeo import ogr
from rasterio.transform import from_origin
from rts_fusion.core.change import compare_inventories, write_changes
from rts_fusion.core.errors import RtsFusionError
from rts_fusion.core.trends import mann_kendall, parse_year_rasters, sens_slope, temporal_trends, write_report
from rts_fusion.core.vector import PolygonRecord, write_polygons

X0, Y0, PX = 400000.0, 3900000.0, 10.0
CRS = rasterio.crs.CRS.from_epsg(32646)


def rect(x, y, w, h, ident):
    x0, y0 = X0 + x, Y0 - y
    return PolygonRecord([(x0, y0), (x0 + w, y0), (x0 + w, y0 - h), (x0, y0 - h), (x0, y0)], {"id": ident})


def test_sens_slope_and_mann_kendall():
    x = list(range(2015, 2025))
    y = [2.0 * v + 1 for v in x]
    y[3] += 100  # an outlier: least squares is pulled, Theil–Sen is not
    assert sens_slope(x, y) == pytest.approx(2.0)
    s, z, p = mann_kendall([1, 2, 3, 4, 5])
    assert s == 10 and z == pytest.approx(9 / np.sqrt(50 / 3)) and p == pytest.approx(0.0275, abs=1e-3)
    assert mann_kendall([3, 3, 3, 3]) == (0.0, 0.0, 1.0)
    assert mann_kendall([5, 4, 3, 2, 1, 0])[1] < 0


def test_years_and_variables_from_file_names(tmp_path):
    names = [f"/d/NDVI_{y}.tif" for y in (2021, 2019, 2020)] + [f"/d/lst-{y}-summer.tif" for y in (2019, 2020, 2021)]
    parsed = parse_year_rasters(names)
    assert [(r.variable, r.year) for r in parsed] == [
        ("lst_summer", 2019), ("lst_summer", 2020), ("lst_summer", 2021), ("ndvi", 2019), ("ndvi", 2020), ("ndvi", 2021)
    ]  # fmt: skip
    with pytest.raises(RtsFusionError, match="Cannot tell the year"):
        parse_year_rasters(["/d/ndvi.tif", "/d/a_2019.tif", "/d/a_2020.tif"])
    with pytest.raises(RtsFusionError, match="at least 3"):
        parse_year_rasters(["/d/a_2019.tif", "/d/a_2020.tif"])
    assert [r.year for r in parse_year_rasters(["a", "b", "c"], years=[2001, 2002, 2003], variables=["x"] * 3)] == [
        2001, 2002, 2003
    ]  # fmt: skip


def test_known_trend_inside_slumps_against_the_ring(tmp_path):
    slumps = str(tmp_path / "slumps.gpkg")
    write_polygons(slumps, "s", CRS.to_wkt(), [rect(200, 200, 200, 200, 1), rect(1000, 1000, 150, 150, 2)])
    rng = np.random.default_rng(0)
    inside = np.zeros((150, 150), bool)
    inside[20:40, 20:40] = True
    inside[100:115, 100:115] = True
    paths = []
    for k, year in enumerate(range(2019, 2025)):
        for var, base, slope in (("ndvi", 0.45, -0.03), ("lst", 285.0, 0.4)):
            data = np.full((150, 150), base) + 0.002 * rng.standard_normal((150, 150))
            data[inside] += slope * k
            path = str(tmp_path / f"{var}_{year}.tif")
            with rasterio.open(
                path, "w", driver="GTiff", width=150, height=150, count=1, dtype="float32", crs=CRS,
                transform=from_origin(X0, Y0, PX, PX), nodata=-9999,
            ) as dst:  # fmt: skip
                dst.write(data.astype(np.float32), 1)
            paths.append(path)
    res = temporal_trends(slumps, parse_year_rasters(paths), ring_width=50)
    rows = {(r["scope"], r["variable"], r["zone"]): r for r in res.rows}
    assert rows[("all", "ndvi", "slump")]["sen_slope"] == pytest.approx(-0.03, abs=2e-3)
    assert rows[("all", "ndvi", "slump")]["trend"] == "decreasing" and rows[("all", "ndvi", "slump")]["mk_p"] < 0.05
    assert abs(rows[("all", "ndvi", "ring")]["sen_slope"]) < 2e-3
    assert rows[("all", "ndvi", "difference")]["sen_slope"] == pytest.approx(-0.03, abs=2e-3)
    assert rows[("all", "lst", "slump")]["sen_slope"] == pytest.approx(0.4, abs=0.01)
    assert rows[("all", "lst", "slump")]["trend"] == "increasing"
    assert rows[("2", "lst", "slump")]["y2024"] == pytest.approx(285 + 2.0, abs=0.01)  # per slump, by position
    assert res.n_slumps == 2 and res.years["ndvi"] == list(range(2019, 2025))
    html = write_report(str(tmp_path / "trends.html"), res)
    assert open(html).read().count("<img") == 2
    assert all(p.stat().st_size > 1000 for p in (tmp_path / "trends_files").glob("*.png"))


def test_change_classes_for_hand_made_pairs(tmp_path):
    before, after = str(tmp_path / "before.gpkg"), str(tmp_path / "after.gpkg")
    write_polygons(
        before,
        "b",
        CRS.to_wkt(),
        [
            rect(0, 0, 100, 100, 1),  # grows 30 m eastwards
            rect(500, 0, 100, 100, 2),  # stable
            rect(1000, 0, 100, 100, 3),  # shrinks to 70 %
            rect(1500, 0, 100, 100, 4),  # vanishes
            rect(0, 500, 100, 100, 5),  # splits into two halves
        ],
    )
    write_polygons(
        after,
        "a",
        CRS.to_wkt(),
        [
            rect(0, 0, 130, 100, 1),
            rect(500, 0, 102, 100, 2),
            rect(1000, 0, 70, 100, 3),
            rect(2000, 0, 80, 80, 4),  # new
            rect(0, 500, 50, 100, 5),
            rect(50, 500, 50, 100, 6),
        ],
    )
    res = compare_inventories(before, after, tolerance=0.1)
    by_before = {r["before_ids"]: r for r in res.records}
    grown = by_before["1"]
    assert grown["change"] == "grown" and grown["area_change_m2"] == pytest.approx(3000)
    assert grown["retreat_m"] == pytest.approx(30, abs=0.5) and grown["change_pct"] == pytest.approx(30)
    assert by_before["2"]["change"] == "stable"
    assert by_before["3"]["change"] == "shrunk" and by_before["3"]["retreat_m"] == 0
    assert by_before["4"]["change"] == "vanished" and by_before["4"]["area_after_m2"] == 0
    assert by_before[""]["change"] == "new" and by_before[""]["area_after_m2"] == pytest.approx(6400)
    split = by_before["5"]
    assert split["change"] == "stable" and len(split["after_ids"].split(",")) == 2
    assert res.totals["n_grown"] == 1 and res.totals["n_new"] == 1 and res.totals["n_vanished"] == 1
    assert res.totals["n_stable"] == 2 and res.totals["n_shrunk"] == 1
    assert res.totals["area_change_m2"] == pytest.approx(3000 + 200 - 3000 - 10000 + 6400)
    out = str(tmp_path / "changes.gpkg")
    write_changes(out, res)
    ds = ogr.Open(out)
    layer = ds.GetLayer(0)
    assert layer.GetFeatureCount() == 6  # the merged split group is one record
    assert sorted({f.GetField("change") for f in layer}) == ["grown", "new", "shrunk", "stable", "vanished"]


def test_change_reprojects_the_later_inventory(tmp_path):
    before, after = str(tmp_path / "b.gpkg"), str(tmp_path / "a.gpkg")
    write_polygons(before, "b", CRS.to_wkt(), [rect(0, 0, 100, 100, 1)])
    from rasterio.warp import transform as warp

    xs, ys = warp(CRS, "EPSG:4326", [X0, X0 + 150, X0 + 150, X0, X0], [Y0, Y0, Y0 - 100, Y0 - 100, Y0])
    wgs = rasterio.crs.CRS.from_epsg(4326).to_wkt()
    write_polygons(after, "a", wgs, [PolygonRecord(list(zip(xs, ys)), {"id": 1})])
    res = compare_inventories(before, after)
    assert res.records[0]["change"] == "grown" and res.records[0]["area_after_m2"] == pytest.approx(15000, rel=1e-3)


def _raster(path, origin_x=X0):
    with rasterio.open(
        path, "w", driver="GTiff", width=50, height=50, count=1, dtype="float32", crs=CRS,
        transform=from_origin(origin_x, Y0, PX, PX), nodata=-9999,
    ) as dst:  # fmt: skip
        dst.write(np.full((1, 50, 50), 0.5, np.float32))
    return str(path)


def test_trends_refuse_a_raster_the_slumps_miss(tmp_path):
    slumps = str(tmp_path / "slumps.gpkg")
    write_polygons(slumps, "s", CRS.to_wkt(), [rect(100, 100, 100, 100, 1)])
    paths = [_raster(tmp_path / f"ndvi_{y}.tif") for y in (2019, 2020)]
    paths.append(_raster(tmp_path / "ndvi_2021.tif", origin_x=X0 + 50_000))  # 50 km east: misses the slumps
    with pytest.raises(RtsFusionError, match="ndvi raster of 2021 \\('ndvi_2021.tif'\\).*do not overlap"):
        temporal_trends(slumps, parse_year_rasters(paths))


def test_inventories_that_do_not_overlap_are_refused(tmp_path):
    before, after = str(tmp_path / "before.gpkg"), str(tmp_path / "after.gpkg")
    write_polygons(before, "b", CRS.to_wkt(), [rect(0, 0, 100, 100, 1)])
    write_polygons(after, "a", CRS.to_wkt(), [rect(50_000, 0, 100, 100, 1)])
    with pytest.raises(RtsFusionError, match="'before.gpkg' and 'after.gpkg' do not overlap"):
        compare_inventories(before, after)
