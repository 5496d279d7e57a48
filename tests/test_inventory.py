"""Inventory statistics on hand-made layouts with known answers."""

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rts_fusion.core.errors import RtsFusionError
from rts_fusion.core.inventory import InventoryOptions, inventory_statistics, write_report
from rts_fusion.core.vector import PolygonRecord, write_polygons

X0, Y0, PX = 400000.0, 3900000.0, 10.0
CRS = rasterio.crs.CRS.from_epsg(32646)


def square(col, row, size, ident):
    x0, y0 = X0 + col * PX, Y0 - row * PX
    x1, y1 = x0 + size * PX, y0 - size * PX
    return PolygonRecord([(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)], {"id": ident})


@pytest.fixture
def ramp(tmp_path):
    """A 300 × 300 px plane rising 1 m per pixel eastwards (4600–4900 m, 5.7°, facing west), a lake strip at
    the west edge, and four 10 px slumps in the 4700–4800 m band."""
    dem = (4600 + np.arange(300, dtype=np.float32))[None, :].repeat(300, axis=0)
    dem_path = str(tmp_path / "dem.tif")
    with rasterio.open(
        dem_path, "w", driver="GTiff", width=300, height=300, count=1, dtype="float32", crs=CRS,
        transform=from_origin(X0, Y0, PX, PX), nodata=-9999,
    ) as dst:  # fmt: skip
        dst.write(dem, 1)
    slumps = str(tmp_path / "slumps.gpkg")
    write_polygons(slumps, "slumps", CRS.to_wkt(), [square(120 + 15 * i, 50 + 40 * i, 10, i) for i in range(4)])
    water = str(tmp_path / "water.gpkg")
    write_polygons(water, "water", CRS.to_wkt(), [PolygonRecord([(X0, Y0), (X0 + 100, Y0), (X0 + 100, Y0 - 3000),
                                                                 (X0, Y0 - 3000), (X0, Y0)], {"id": 1})])  # fmt: skip
    return dem_path, slumps, water


def rows_of(result, factor):
    return {r["class"]: r for r in result.rows if r["factor"] == factor}


def test_frequency_ratios_of_a_hand_made_layout(ramp, tmp_path):
    dem, slumps, water = ramp
    res = inventory_statistics(slumps, dem, water_path=water)
    elev = rows_of(res, "elevation")
    assert list(elev) == ["4600–4700 m", "4700–4800 m", "4800–4900 m"]
    band = elev["4700–4800 m"]
    assert band["slumps"] == 4 and band["slump_area_m2"] == pytest.approx(4 * 100 * PX * PX)
    assert band["slump_share"] == 1.0
    assert band["area_share"] == pytest.approx(100 / 290, abs=1e-4)  # the lake strip (10 columns) is not land
    assert band["frequency_ratio"] == pytest.approx(2.9, abs=0.01)
    assert elev["4600–4700 m"]["frequency_ratio"] == 0 and elev["4800–4900 m"]["slumps"] == 0
    slope = rows_of(res, "slope")
    # The study's slope classes by default: the ramp's 5° slope falls in its 3–7° class.
    assert list(slope)[:2] == ["0–3 °", "3–7 °"] and slope["3–7 °"]["slumps"] == 4
    assert slope["3–7 °"]["frequency_ratio"] == pytest.approx(1.0)
    aspect = rows_of(res, "aspect")
    assert aspect["W"]["slumps"] == 4 and aspect["W"]["frequency_ratio"] == pytest.approx(1.0)
    assert rows_of(res, "slope position")["middle slope"]["slumps"] == 4  # a plane: TPI 0, not flat
    dist = rows_of(res, "distance to water")
    assert dist["1000–2000 m"]["slumps"] == 4 and dist["≥ 2000 m"]["area_share"] > 0
    assert res.n_slumps == 4 and res.water_source == "water layer"
    assert any("4700–4800 m" in line and "highest frequency ratio 2.90" in line for line in res.summary)
    html = write_report(str(tmp_path / "report.html"), res)
    text = open(html).read()
    assert "Frequency ratio" in text and text.count("<img") == 5
    pngs = list((tmp_path / "report_files").glob("*.png"))
    assert len(pngs) == 5 and all(p.stat().st_size > 1000 for p in pngs)


def test_options_change_the_classes(ramp):
    dem, slumps, _ = ramp
    res = inventory_statistics(slumps, dem, options=InventoryOptions(elevation_bin=50, slope_edges=()))
    assert rows_of(res, "slope")["4–6 °"]["slumps"] == 4  # equal-width classes when no edges are given
    elev = rows_of(res, "elevation")
    assert len(elev) == 6 and elev["4700–4750 m"]["slumps"] + elev["4750–4800 m"]["slumps"] == 4
    assert not rows_of(res, "distance to water")  # no water layer and no optical: left out


def test_no_slump_in_the_study_area_is_an_error(ramp, tmp_path):
    dem, _, _ = ramp
    far = str(tmp_path / "far.gpkg")
    write_polygons(far, "s", CRS.to_wkt(), [PolygonRecord([(0, 0), (10, 0), (10, 10), (0, 10), (0, 0)], {"id": 1})])
    with pytest.raises(RtsFusionError, match="No slump polygon"):
        inventory_statistics(far, dem)


def test_geographic_dem_is_analysed_in_metres(sample_scene):
    # The sample scene's DEM is in EPSG:4326 (1"); slopes must come out as if measured in metres.
    import math

    from rts_fusion.core import terrain

    res = inventory_statistics(
        sample_scene.slumps,
        sample_scene.dem,
        optical_path=sample_scene.optical,
        options=InventoryOptions(slope_edges=()),
    )
    assert 20 <= res.pixel_size_m <= 35
    with rasterio.open(sample_scene.dem) as ds:
        z = ds.read(1, masked=True).astype(float).filled(np.nan)
        lat = ds.xy(ds.height // 2, 0)[1]
        dx = abs(ds.transform.a) * 111_320 * math.cos(math.radians(lat))
        dy = abs(ds.transform.e) * 110_950
    independent = float(np.nanmean(terrain.slope_degrees(z, dx, dy)))
    slope = rows_of(res, "slope")
    mean = sum(r["area_share"] * (r["lower"] + r["upper"]) / 2 for r in slope.values())
    assert mean == pytest.approx(independent, abs=1.5)
    assert res.water_source.startswith("NDWI")
    assert sum(r["slumps"] for r in rows_of(res, "elevation").values()) == res.n_slumps > 0


def test_slope_edges_are_a_parameter_of_the_algorithm(provider, ramp):
    import processing
    from qgis.core import QgsProcessingException, QgsProject

    dem, slumps, _ = ramp
    out = processing.run(
        "rtsfusion:inventorystats", {"SLUMPS": slumps, "DEM": dem, "SLOPE_EDGES": "0, 4.5, 6", "OUTPUT": "memory:"}
    )["OUTPUT"]
    layer = QgsProject.instance().mapLayer(out) if isinstance(out, str) else out
    rows = {f["class"]: f["slumps"] for f in layer.getFeatures() if f["factor"] == "slope"}
    assert rows == {"0–4.5 °": 0, "4.5–6 °": 4, "≥ 6 °": 0}
    with pytest.raises(QgsProcessingException, match="Slope classes"):
        processing.run(
            "rtsfusion:inventorystats", {"SLUMPS": slumps, "DEM": dem, "SLOPE_EDGES": "0, steep", "OUTPUT": "memory:"}
        )
