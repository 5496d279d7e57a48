import json

import numpy as np
import pytest
import rasterio
from rts_fusion.core.errors import AlignmentError, FeatureError, OperationCanceled, RtsFusionError
from rts_fusion.core.features import EXTENDED, PAPER, resolve_features
from rts_fusion.core.stack import (
    STACK_NODATA,
    FusionInputs,
    GridOptions,
    OpticalBands,
    build_fused_stack,
    read_stack_info,
)
from rts_fusion.core.thermal import ThermalSpec

S2 = OpticalBands(1, 2, 3, 4, 5, 6, sensor="sentinel2")


def inputs(scene, **kw):
    base = dict(
        optical=scene.optical,
        thermal=scene.thermal,
        dem=scene.dem,
        bands=S2,
        temperature_series=scene.temperature_series,
    )
    base.update(kw)
    return FusionInputs(**base)


@pytest.fixture(scope="module")
def paper_stack(sample_scene, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("stack") / "paper.tif")
    return build_fused_stack(inputs(sample_scene), PAPER, out)


def test_paper_stack_bands_grid_and_metadata(paper_stack, sample_scene):
    assert paper_stack.band_names == PAPER
    with rasterio.open(paper_stack.path) as ds, rasterio.open(sample_scene.optical) as opt:
        assert ds.crs == opt.crs and ds.transform == opt.transform and ds.shape == opt.shape
        assert ds.nodata == STACK_NODATA and ds.descriptions == PAPER
        assert ds.profile["tiled"] and ds.profile["compress"] == "deflate"
        groups = json.loads(ds.tags()["RTSFUSION_GROUPS"])
        assert dict(zip(PAPER, groups))["LST"] == "auxiliary" and dict(zip(PAPER, groups))["NDVI"] == "optical"
        assert ds.tags(PAPER.index("LST") + 1)["UNITS"] == "K"
        stack = ds.read()
        dn = opt.read().astype(np.float64) * 1e-4
    # Optical bands are on their own lattice: not resampled, exactly DN × scale.
    np.testing.assert_allclose(stack[PAPER.index("RED")], dn[2], rtol=1e-6)
    np.testing.assert_allclose(stack[PAPER.index("BLUE")], dn[0], rtol=1e-6)
    ndvi = (dn[3] - dn[2]) / (dn[3] + dn[2])
    np.testing.assert_allclose(stack[PAPER.index("NDVI")], ndvi, atol=1e-5)
    assert 4300 < stack[PAPER.index("DEM")].min() and stack[PAPER.index("DEM")].max() < 5300
    lst = stack[PAPER.index("LST")]
    assert 270 < lst.min() and lst.max() < 320
    fti = stack[PAPER.index("FTI")]
    assert 0 <= fti.min() and fti.max() <= 1 and fti.std() > 0
    assert paper_stack.valid_fraction == 1.0


def test_window_size_does_not_change_the_result(sample_scene, tmp_path):
    # Terrain features read a DEM halo; small windows must give the same numbers as one big window.
    feats = ("DEM", "SLOPE", "TPI", "TRI", "PLAN_CURV", "LST", "LST_ANOMALY", "FTI")
    a = build_fused_stack(inputs(sample_scene), feats, str(tmp_path / "a.tif"), window_size=40, terrain_radius_m=50)
    b = build_fused_stack(inputs(sample_scene), feats, str(tmp_path / "b.tif"), window_size=512, terrain_radius_m=50)
    with rasterio.open(a.path) as da, rasterio.open(b.path) as db:
        np.testing.assert_allclose(da.read(), db.read(), rtol=1e-5, atol=1e-5)


def test_extended_stack_terrain_and_anomaly(sample_scene, tmp_path):
    info = build_fused_stack(inputs(sample_scene), EXTENDED, str(tmp_path / "ext.tif"))
    with rasterio.open(info.path) as ds:
        data = {n: ds.read(i + 1) for i, n in enumerate(EXTENDED)}
    anomaly = data["LST_ANOMALY"]
    assert abs(anomaly.mean()) < 0.05 and abs(anomaly.std() - 1) < 0.05
    assert 0 <= data["SLOPE"].min() and data["SLOPE"].max() < 90
    norm = data["ASPECT_SIN"] ** 2 + data["ASPECT_COS"] ** 2
    sloped = data["SLOPE"] > 0  # lakes are flat: aspect 0, 0 there
    np.testing.assert_allclose(norm[sloped], 1.0, atol=1e-3)
    assert (norm[~sloped] < 1e-3).all()
    assert (data["TRI"] >= 0).all()
    assert np.corrcoef(data["TPI"].ravel(), data["DEM"].ravel())[0, 1] > 0


def test_custom_grid_crs_and_pixel_size(sample_scene, tmp_path):
    info = build_fused_stack(
        inputs(sample_scene),
        ("RED", "NDVI", "DEM"),
        str(tmp_path / "g.tif"),
        grid_options=GridOptions(crs="EPSG:32645", pixel_size=20.0),
    )
    with rasterio.open(info.path) as ds:
        assert ds.crs.to_epsg() == 32645 and ds.res == (20.0, 20.0)
        assert 0.5 < info.valid_fraction < 1.0  # the rotated footprint leaves nodata corners
        red = ds.read(1, masked=True)
    assert 0.0 < red.mean() < 0.3


def test_extent_clips_the_grid(sample_scene, tmp_path):
    with rasterio.open(sample_scene.optical) as opt:
        left, bottom, right, top = opt.bounds
    ext = (left + 100, bottom + 200, left + 600, top - 100)
    info = build_fused_stack(
        inputs(sample_scene), ("RED",), str(tmp_path / "e.tif"), grid_options=GridOptions(extent=ext)
    )
    assert info.grid.width == 50 and info.grid.bounds[0] == left + 100


@pytest.mark.parametrize(
    ("kw", "features", "message"),
    [
        ({"bands": OpticalBands(1, 2, 3, 4, 9, 6, sensor="sentinel2")}, ("NDMI",), "SWIR1 band is set to band 9"),
        ({"bands": OpticalBands(1, 2, 3, 9)}, ("NDVI",), "has 6 band"),
        ({"bands": OpticalBands(1, 2, 3, 4, 5, 6, sensor="other")}, ("TCB",), "Tasseled Cap"),
        ({"temperature_series": None}, ("FTI",), "FTI"),
        ({"thermal": None}, ("LST",), "thermal layer"),
        ({"dem": None}, ("SLOPE",), "DEM"),
        ({"bands": OpticalBands(1, 2, 3, 4, scale=1.0)}, ("NDVI",), "not surface reflectance"),
        ({"thermal_spec": ThermalSpec(scale=1.0, offset=0.0)}, ("LST",), "not plausible"),
    ],
)
def test_clear_errors(sample_scene, tmp_path, kw, features, message):
    out = tmp_path / "x.tif"
    with pytest.raises(FeatureError, match=message):
        build_fused_stack(inputs(sample_scene, **kw), features, str(out))
    assert not out.exists()


def test_nodata_only_input_is_refused(sample_scene, tmp_path):
    with rasterio.open(sample_scene.optical) as src:
        profile = src.profile
    empty = tmp_path / "empty.tif"
    with rasterio.open(empty, "w", **profile) as dst:
        dst.write(np.zeros((profile["count"], profile["height"], profile["width"]), np.uint16))
    with pytest.raises(RtsFusionError, match="no valid pixel"):
        build_fused_stack(inputs(sample_scene, optical=str(empty)), ("RED",), str(tmp_path / "o.tif"))
    assert not (tmp_path / "o.tif").exists()


def test_nodata_in_one_input_is_nodata_in_every_band(sample_scene, tmp_path):
    with rasterio.open(sample_scene.optical) as src:
        profile, data = src.profile, src.read()
    data[:, 10:20, 30:40] = 0  # the optical nodata value
    holed = tmp_path / "holed.tif"
    with rasterio.open(holed, "w", **profile) as dst:
        dst.write(data)
    opt = OpticalBands(1, 2, 3, 4, scale=1e-4)  # a plain copy loses the file's scale metadata
    info = build_fused_stack(
        inputs(sample_scene, optical=str(holed), bands=opt), ("NDVI", "LST"), str(tmp_path / "h.tif")
    )
    with rasterio.open(info.path) as ds:
        masks = ds.read(masked=True).mask
    assert masks[:, 10:20, 30:40].all() and not masks[:, 50:, 50:].any()


def test_cancel_removes_partial_output(sample_scene, tmp_path):
    out = tmp_path / "c.tif"
    calls = iter(range(100))
    with pytest.raises(OperationCanceled):
        build_fused_stack(
            inputs(sample_scene), ("RED",), str(out), window_size=32, is_canceled=lambda: next(calls) >= 3
        )
    assert not out.exists()


def test_progress_reaches_100(sample_scene, tmp_path):
    seen = []
    build_fused_stack(inputs(sample_scene), ("RED",), str(tmp_path / "p.tif"), window_size=64, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(100.0)


def test_read_stack_info_refuses_other_rasters(sample_scene):
    with pytest.raises(AlignmentError, match="not a fused stack"):
        read_stack_info(sample_scene.optical)


def test_presets_and_custom_lists():
    assert len(resolve_features("paper")) == 13
    assert resolve_features(custom="ndvi, lst") == ("NDVI", "LST")
    with pytest.raises(FeatureError, match="Unknown feature"):
        resolve_features(custom="NDVI,FOO")
    with pytest.raises(FeatureError, match="Unknown feature preset"):
        resolve_features("nope")


# --- Real data (skipped when ../shared/data is absent) ----------------------------------------------


def test_real_landsat5_thermal_and_srtm(shared_data, tmp_path):
    from osgeo import gdal

    base = shared_data / "landsat5_thermal_srtm"
    bands = [str(base / "landsat5" / f"LT52240631988227CUB02_B{i}.TIF") for i in (1, 2, 3, 4, 5, 7)]
    vrt = str(tmp_path / "l5.vrt")
    gdal.BuildVRT(vrt, bands, separate=True).FlushCache()
    spec = ThermalSpec(scale=0.055, offset=1.18243, k1=607.76, k2=1260.56)  # MTL radiance rescaling, TM K1/K2
    # TM DN are not reflectance: DN/255 stands in for top-of-atmosphere reflectance in this alignment test.
    opt = OpticalBands(1, 2, 3, 4, 5, 6, sensor="landsat5", scale=1 / 255)
    inp = FusionInputs(
        vrt,
        str(base / "landsat5" / "LT52240631988227CUB02_B6.TIF"),
        str(base / "converted_from_rds" / "srtm_lsat_LT52240631988227_grid.tif"),
        opt,
        spec,
    )
    feats = ("RED", "DEM", "LST", "NDVI", "TCB", "TCG", "TCW", "SLOPE")
    info = build_fused_stack(inp, feats, str(tmp_path / "l5.tif"))
    with rasterio.open(info.path) as ds:
        lst = ds.read(3, masked=True)
        slope = ds.read(8, masked=True)
        assert ds.crs.to_epsg() == 32622 and ds.res == (30.0, 30.0)
    assert 285 < float(lst.mean()) < 310  # tropical afternoon surface, in kelvin
    assert 0 <= float(slope.min()) and float(slope.max()) < 60
    assert info.valid_fraction > 0.9


def test_real_sentinel2_geographic_to_utm(shared_data, tmp_path):
    base = shared_data / "landsat5_thermal_srtm" / "converted_from_rds"
    opt = OpticalBands(2, 3, 4, 8, 11, 12, sensor="sentinel2", scale=1.0, offset=0.0)  # B2,B3,B4,B8,B11,B12
    inp = FusionInputs(str(base / "sen2_L2A_12band.tif"), None, str(base / "srtm_sen2_grid.tif"), opt)
    feats = ("RED", "NDVI", "NDMI", "TCG", "DEM", "SLOPE", "TPI")
    info = build_fused_stack(
        inp,
        feats,
        str(tmp_path / "s2.tif"),
        grid_options=GridOptions(crs="EPSG:32721", pixel_size=10.0),
        terrain_radius_m=50,
    )
    assert info.grid.crs.to_epsg() == 32721 and info.valid_fraction > 0.5
    with rasterio.open(info.path) as ds:
        ndvi = ds.read(2, masked=True)
    assert 0.2 < float(ndvi.mean()) < 0.95  # vegetated Amazon scene


def test_real_layers_that_do_not_overlap(shared_data, tmp_path):
    base = shared_data / "landsat5_thermal_srtm"
    inp = FusionInputs(
        str(base / "converted_from_rds" / "sen2_L2A_12band.tif"),
        str(base / "landsat5" / "LT52240631988227CUB02_B6.TIF"),
        None,
        OpticalBands(2, 3, 4, 8, scale=1.0),
    )
    with pytest.raises(AlignmentError, match="do not overlap"):
        build_fused_stack(inp, ("NDVI", "LST"), str(tmp_path / "n.tif"))
