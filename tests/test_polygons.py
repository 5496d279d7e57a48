import numpy as np
import pytest
from affine import Affine
from conftest import write_raster
from osgeo import ogr
from rts_fusion.core.errors import RtsFusionError
from rts_fusion.core.polygons import PolygonizeOptions, polygonize

TRANSFORM = Affine(10, 0, 500000, 0, -10, 3870000)


def write(path, data, dtype, nodata=None, names=None, tags=None):
    return write_raster(path, data, names=names, nodata=nodata, dtype=dtype, transform=TRANSFORM, tags=tags)


def features(path):
    ds = ogr.Open(path)
    layer = ds.GetLayer(0)
    out = []
    for f in layer:
        g = f.GetGeometryRef()
        out.append({**f.items(), "geom_area": g.GetArea(), "valid": g.IsValid(), "rings": g.GetGeometryCount()})
    return sorted(out, key=lambda r: r["id"])


@pytest.fixture
def hand_made(tmp_path):
    """A 40×40 mask: a 5×4 block, a 10×10 square with a 2×2 hole, a single pixel, and one touching nodata."""
    m = np.zeros((40, 40), np.uint8)
    m[2:6, 2:7] = 1  # 20 px = 2000 m²
    m[10:20, 10:20] = 1
    m[14:16, 14:16] = 0  # hole of 4 px = 400 m²
    m[30, 30] = 1  # 1 px = 100 m²
    m[35:38, 0:3] = 1  # touches the nodata column below
    m[:, 0] = 255  # nodata column (mask nodata)
    m[35:38, 1:3] = 1
    return write(tmp_path / "mask.tif", m, "uint8", nodata=255)


def test_polygon_attributes_on_a_hand_made_mask(hand_made, tmp_path):
    out = str(tmp_path / "p.gpkg")
    n = polygonize(hand_made, out, PolygonizeOptions(drop_touching_nodata=True))
    rows = features(out)
    assert n == 3 == len(rows)
    block, square, single = rows
    assert block["area_m2"] == 2000 and block["perimeter_m"] == 2 * (50 + 40) and block["pixels"] == 20
    assert square["area_m2"] == 9600 and square["rings"] == 2  # the hole is kept
    assert square["perimeter_m"] == 400 + 80
    assert single["area_m2"] == 100
    assert all(r["valid"] for r in rows)


def test_cleaning_options(hand_made, tmp_path):
    out = str(tmp_path / "c.gpkg")
    polygonize(hand_made, out, PolygonizeOptions(min_area_m2=150, fill_holes_m2=500, drop_touching_nodata=False))
    rows = features(out)
    areas = sorted(r["area_m2"] for r in rows)
    assert areas == [600, 2000, 10000]  # single pixel dropped, hole filled, nodata-touching fragment kept
    assert all(r["rings"] == 1 for r in rows)


def test_probability_input_with_zonal_statistics(tmp_path):
    prob = np.zeros((30, 30), np.float32)
    prob[5:15, 5:15] = 0.8
    prob[8, 8] = 0.95
    prob[20:25, 20:25] = 0.3  # below threshold
    p = write(tmp_path / "prob.tif", prob, "float32", nodata=-1.0)
    stack = np.stack([np.full((30, 30), 4750.0), np.full((30, 30), 290.0), np.full((30, 30), 0.2)])
    stack[2, 5:10] = 0.4
    s = write(tmp_path / "stack.tif", stack, "float32", nodata=-9999.0, names=["DEM", "LST", "NDVI"])
    out = str(tmp_path / "z.gpkg")
    polygonize(p, out, PolygonizeOptions(threshold=0.5), stack_path=s)
    (row,) = features(out)
    assert row["prob_max"] == pytest.approx(0.95) and row["prob_mean"] == pytest.approx((99 * 0.8 + 0.95) / 100)
    assert row["elev_mean"] == pytest.approx(4750) and row["lst_mean"] == pytest.approx(290)
    assert row["ndvi_mean"] == pytest.approx(0.3)  # half the rows 0.4, half 0.2
    assert row["slope_mean"] == pytest.approx(0.0, abs=1e-6)  # flat DEM, slope derived from it


def test_zonal_layers_on_the_stacks_own_lattice_read_it_directly_as_warping_would(tmp_path, monkeypatch):
    import rts_fusion.core.polygons as polygons
    from rts_fusion.core.grid import TargetGrid

    rng = np.random.default_rng(4)
    stack = np.stack([rng.normal(4700, 30, (40, 50)), rng.normal(290, 2, (40, 50)), rng.random((40, 50))])
    stack[0, 3, 4] = -9999.0  # a nodata pixel
    s = write(tmp_path / "stack.tif", stack, "float32", nodata=-9999.0, names=["DEM", "LST", "NDVI"])
    wkt = polygons.read_stack_info(s).grid.crs_wkt
    grids = [
        TargetGrid(wkt, tuple(TRANSFORM)[:6], 50, 40),  # the stack's grid (mapslumps)
        TargetGrid(wkt, tuple(TRANSFORM * Affine.translation(20, 10))[:6], 30, 30),  # a window, its halo past the edge
    ]
    for grid in grids:
        assert polygons._offset_on(polygons.read_stack_info(s).grid, grid) is not None
        direct = polygons._zonal_layers(s, grid)
        with monkeypatch.context() as m:
            m.setattr(polygons, "_offset_on", lambda *_: None)
            warped = polygons._zonal_layers(s, grid)
        assert direct.keys() == warped.keys() == {"DEM", "LST", "NDVI", "SLOPE"}
        for band in direct:
            np.testing.assert_allclose(direct[band], warped[band], rtol=1e-6, atol=1e-4, equal_nan=True)
    # Another pixel size or a half-pixel shift is not the same lattice: warped, as before.
    half = TargetGrid(wkt, tuple(TRANSFORM * Affine.translation(0.5, 0))[:6], 10, 10)
    assert polygons._offset_on(polygons.read_stack_info(s).grid, half) is None


def test_simplify_keeps_valid_polygons(tmp_path):
    yy, xx = np.mgrid[0:80, 0:80]
    disc = ((yy - 40) ** 2 + (xx - 40) ** 2 < 30**2).astype(np.uint8)
    m = write(tmp_path / "disc.tif", disc, "uint8")
    raw, simple = str(tmp_path / "raw.gpkg"), str(tmp_path / "simple.gpkg")
    polygonize(m, raw)
    polygonize(m, simple, PolygonizeOptions(simplify_m=15))
    # Keep data sources and features referenced: OGR geometries die with their feature.
    ds_raw, ds_simple = ogr.Open(raw), ogr.Open(simple)
    f_raw, f_simple = ds_raw.GetLayer(0).GetNextFeature(), ds_simple.GetLayer(0).GetNextFeature()
    g_raw, g_simple = f_raw.GetGeometryRef(), f_simple.GetGeometryRef()
    assert g_simple.GetGeometryRef(0).GetPointCount() < g_raw.GetGeometryRef(0).GetPointCount() / 3
    assert g_simple.IsValid() and abs(g_simple.GetArea() - g_raw.GetArea()) / g_raw.GetArea() < 0.05


def test_empty_detections_give_an_empty_layer_with_fields(tmp_path):
    m = write(tmp_path / "zero.tif", np.zeros((10, 10)), "uint8")
    out = str(tmp_path / "e.gpkg")
    assert polygonize(m, out) == 0
    ds = ogr.Open(out)
    layer = ds.GetLayer(0)
    names = [layer.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(layer.GetLayerDefn().GetFieldCount())]
    assert {"id", "area_m2", "perimeter_m"} <= set(names)


def test_nodata_only_raster_is_refused(tmp_path):
    m = write(tmp_path / "nd.tif", np.full((10, 10), 255), "uint8", nodata=255)
    with pytest.raises(RtsFusionError, match="only nodata"):
        polygonize(m, str(tmp_path / "x.gpkg"))


def test_chaikin_smoothing_rounds_the_staircase_and_stays_valid(tmp_path):
    from rts_fusion.core.polygons import chaikin

    square = np.array([[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]], float)
    once = chaikin(square, 1)
    assert len(once) == 9 and np.allclose(once[0], once[-1])
    np.testing.assert_allclose(once[:2], [[1, 0], [3, 0]])  # ¾P+¼Q, ¼P+¾Q along the first edge
    yy, xx = np.mgrid[0:80, 0:80]
    blob = (((yy - 40) ** 2 + (xx - 40) ** 2 < 30**2) & ~((yy > 35) & (yy < 45) & (xx > 20) & (xx < 60))).astype(
        np.uint8
    )  # a disc with a slot: concave corners and a thin neck
    m = write(tmp_path / "blob.tif", blob, "uint8")
    raw, smooth = str(tmp_path / "raw.gpkg"), str(tmp_path / "smooth.gpkg")
    polygonize(m, raw, PolygonizeOptions(drop_touching_nodata=False))
    polygonize(m, smooth, PolygonizeOptions(smooth_iterations=3, drop_touching_nodata=False))
    ds_raw, ds_smooth = ogr.Open(raw), ogr.Open(smooth)
    feats_raw, feats_smooth = list(ds_raw.GetLayer(0)), list(ds_smooth.GetLayer(0))
    assert len(feats_raw) == len(feats_smooth) >= 1
    for fr, fs in zip(feats_raw, feats_smooth):
        gr, gs = fr.GetGeometryRef(), fs.GetGeometryRef()
        assert gs.IsValid()
        assert abs(gs.GetArea() - gr.GetArea()) / gr.GetArea() < 0.03
        assert gs.Boundary().Length() < 0.95 * gr.Boundary().Length()  # the staircase is gone


@pytest.mark.parametrize(
    ("data", "dtype", "tags", "match"),
    [
        (np.zeros((2, 10, 10)), "float32", None, "has 2 bands"),
        (np.linspace(0, 3, 100).reshape(10, 10), "float32", None, "values from 0 to 3"),
        (np.full((10, 10), -0.5), "float32", None, "not a probability"),
        (np.arange(100).reshape(10, 10), "uint8", None, "values from 0 to 99"),
        (np.full((10, 10), 254), "uint8", {"RTSFUSION_PROBABILITY": "uint8 = round(p * 250), 255 = nodata"}, "0–250"),
    ],
)
def test_a_raster_that_is_not_a_probability_or_mask_is_refused(tmp_path, data, dtype, tags, match):
    r = write(tmp_path / "r.tif", data, dtype, tags=tags)
    out = tmp_path / "x.gpkg"
    with pytest.raises(RtsFusionError, match=match):
        polygonize(r, str(out))
    assert not out.exists()


def test_uint8_probability_and_nodata_values_are_accepted(tmp_path):
    p = np.zeros((20, 20), np.uint8)
    p[5:10, 5:10] = 200  # p = 0.8
    p[0] = 255  # nodata
    r = write(tmp_path / "u.tif", p, "uint8", nodata=255, tags={"RTSFUSION_PROBABILITY": "uint8 = round(p * 250)"})
    out = str(tmp_path / "u.gpkg")
    assert polygonize(r, out, PolygonizeOptions(threshold=0.5)) == 1
    (row,) = features(out)
    assert row["pixels"] == 25 and row["prob_mean"] == pytest.approx(0.8)


def test_exact_area_and_perimeter_agree_with_the_measured_polygons(tmp_path):
    """The pixel-count attributes (projected grid, no simplification) equal OGR's measures of the same polygons."""
    rng = np.random.default_rng(2)
    m = (rng.random((60, 70)) > 0.6).astype(np.uint8)
    m[20:30, 20:30] = 1
    m[24:26, 24:26] = 0  # a hole
    r = write(tmp_path / "m.tif", m, "uint8")
    out = str(tmp_path / "m.gpkg")
    n = polygonize(r, out)
    ds = ogr.Open(out)
    rows = 0
    for f in ds.GetLayer(0):
        g = f.GetGeometryRef()
        assert f["area_m2"] == pytest.approx(g.GetArea()) and f["area_m2"] == f["pixels"] * 100
        assert f["perimeter_m"] == pytest.approx(g.Boundary().Length())
        rows += 1
    assert rows == n > 50
