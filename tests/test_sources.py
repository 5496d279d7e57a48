"""Band mapping, the feature catalogue's requirement check, grid sanity, culprits, units and terrain edges."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rts_fusion.core.bands import describe_mapping, guess_sensor, map_optical_bands
from rts_fusion.core.errors import AlignmentError, FeatureError, RtsFusionError
from rts_fusion.core.features import (
    FEATURES,
    OPTICAL_DEM,
    OPTICAL_ONLY,
    PAPER,
    PRESETS,
    Available,
    MissingInputsError,
    WindowInputs,
    derive,
    fitting_preset,
    needed_inputs,
    unmet_needs,
)
from rts_fusion.core.stack import FusionInputs, GridOptions, OpticalBands, build_fused_stack, read_stack_info


def _copy(src: str, dst, data=None, descriptions=None, tags=None, band_tags=None, **profile_kw) -> str:
    with rasterio.open(src) as ds:
        profile = ds.profile
        arr = ds.read() if data is None else data
        descs = ds.descriptions
    profile.update(count=arr.shape[0], dtype=arr.dtype.name, **profile_kw)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(arr)
        for i in range(arr.shape[0]):
            d = (descriptions or descs)[i] if (descriptions or descs) else None
            if descriptions is not None:
                d = descriptions[i]
            if d:
                out.set_band_description(i + 1, d)
            if band_tags:
                out.update_tags(i + 1, **band_tags[i])
        if tags:
            out.update_tags(**tags)
    return str(dst)


def _inputs(scene, **kw) -> FusionInputs:
    base = dict(
        optical=scene.optical, thermal=scene.thermal, dem=scene.dem, temperature_series=scene.temperature_series
    )
    base.update(kw)
    return FusionInputs(**base)


# --- Band mapping -----------------------------------------------------------------------------------


def test_mapping_from_names_codes_and_wavelengths():
    s2 = ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]
    m = map_optical_bands(s2)
    assert m.sensor == "sentinel2"
    assert dict(m.bands) == {"blue": 1, "green": 2, "red": 3, "nir": 7, "swir1": 9, "swir2": 10}
    l8 = ["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7"]
    assert dict(map_optical_bands(l8).bands) == {"blue": 2, "green": 3, "red": 4, "nir": 5, "swir1": 6, "swir2": 7}
    named = map_optical_bands(["Red", "Green", "Blue", "NIR"])
    assert dict(named.bands) == {"red": 1, "green": 2, "blue": 3, "nir": 4} and named.how["red"] == "band name"
    waves = [{"WAVELENGTH": "665"}, {"WAVELENGTH": "560"}, {"WAVELENGTH": "490"}, {"WAVELENGTH": "842"}]
    m = map_optical_bands(["", "", "", ""], band_tags=waves)
    assert dict(m.bands) == {"red": 1, "green": 2, "blue": 3, "nir": 4} and m.how["nir"] == "wavelength"
    assert guess_sensor(["B02", "B03"]) == "sentinel2"


def test_unnamed_bands_are_not_guessed_unless_the_sensor_layout_says_so():
    assert dict(map_optical_bands(["", "", ""]).bands) == {}  # no silent 1, 2, 3
    l8 = map_optical_bands([""] * 7, "landsat8")
    assert dict(l8.bands) == {"blue": 2, "green": 3, "red": 4, "nir": 5, "swir1": 6, "swir2": 7}
    assert "usual band order of a 7-band landsat8 file" in describe_mapping(l8)
    assert dict(map_optical_bands([""] * 5, "landsat8").bands) == {}  # no layout with 5 bands
    given = map_optical_bands(["", "", "", ""], given={"blue": 3, "red": 1})
    assert dict(given.bands) == {"blue": 3, "red": 1} and given.how["blue"] == "given"


def test_unnamed_optical_bands_are_refused_naming_the_band_parameters(sample_scene, tmp_path):
    bare = _copy(sample_scene.optical, tmp_path / "bare.tif", descriptions=[""] * 6)
    out = tmp_path / "o.tif"
    with pytest.raises(FeatureError, match=r"set the .*NIR.* band parameter"):
        build_fused_stack(_inputs(sample_scene, optical=bare), ("NDVI",), str(out))
    assert not out.exists()


def test_the_log_prints_the_mapping_used(sample_scene, tmp_path):
    lines: list[str] = []
    build_fused_stack(_inputs(sample_scene), ("NDVI",), str(tmp_path / "m.tif"), log=lines.append)
    assert any("RED = band 3 (band name)" in line and "NIR = band 4" in line for line in lines), lines


# --- The catalogue's requirement check and presets --------------------------------------------------


def test_every_feature_is_computed_from_the_catalogue():
    rng = np.random.default_rng(0)
    refl = {
        k: rng.uniform(0.02, 0.4, (12, 12)).astype(np.float32)
        for k in ("blue", "green", "red", "nir", "swir1", "swir2")
    }
    dem = rng.uniform(100, 120, (16, 16)).astype(np.float32)
    w = WindowInputs(
        refl,
        lst=np.full((12, 12), 280, np.float32),
        dem=dem,
        halo=2,
        fti=np.full((12, 12), 0.4, np.float32),
        dx=10.0,
        dy=10.0,
        dx_scalar=10.0,
        sensor="sentinel2",
        radius_m=20.0,
    )
    out = derive(tuple(FEATURES), w)
    assert out.shape == (len(FEATURES), 12, 12)
    ndvi = out[list(FEATURES).index("NDVI")]
    np.testing.assert_allclose(ndvi, (refl["nir"] - refl["red"]) / (refl["nir"] + refl["red"]), rtol=1e-5)
    np.testing.assert_allclose(out[list(FEATURES).index("DEM")], dem[2:-2, 2:-2])


def test_all_missing_inputs_are_listed_at_once_with_the_fitting_preset(sample_scene, tmp_path):
    inp = _inputs(sample_scene, thermal=None, temperature_series=None)
    with pytest.raises(MissingInputsError) as err:
        build_fused_stack(inp, PAPER, str(tmp_path / "p.tif"))
    msg = str(err.value)
    assert "LST needs a thermal layer" in msg
    assert "FTI needs a temperature series or an FTI raster" in msg
    assert "'optical_dem' preset fits" in msg
    assert {u.need for u in err.value.unmet} == {"lst", "fti_source"}
    none = Available(optical_bands=frozenset({"red", "green", "blue"}))
    unmet = unmet_needs(PAPER, none)
    assert [u.need for u in unmet][:3] == ["lst", "dem", "fti_source"]
    assert unmet[1].message == "DEM needs a DEM"
    assert fitting_preset(none) == "rgb"


def test_presets_for_the_inputs_people_have(sample_scene, tmp_path):
    assert list(PRESETS)[:2] == ["paper", "extended"] and {"optical_dem", "optical", "rgb"} <= set(PRESETS)
    assert fitting_preset(Available(dem=True)) == "optical_dem"
    assert fitting_preset(Available()) == "optical"
    info = build_fused_stack(
        _inputs(sample_scene, thermal=None, temperature_series=None), OPTICAL_DEM, str(tmp_path / "od.tif")
    )
    assert info.band_names == OPTICAL_DEM and info.valid_fraction == 1.0
    info = build_fused_stack(
        _inputs(sample_scene, thermal=None, dem=None, temperature_series=None), OPTICAL_ONLY, str(tmp_path / "o.tif")
    )
    assert info.band_names == OPTICAL_ONLY
    assert needed_inputs(PAPER) == [
        "optical bands BLUE, GREEN, RED, NIR, SWIR1, SWIR2",
        "a thermal layer",
        "a DEM",
        "a temperature series or an FTI raster",
        "a sensor with Tasseled-Cap coefficients",
    ]
    assert needed_inputs(OPTICAL_DEM)[-1] == "a DEM"


# --- Grid sanity (issue 10 §2) -------------------------------------------------------------------------


def test_a_pixel_size_far_below_the_inputs_resolution_is_refused(sample_scene, tmp_path):
    with pytest.raises(AlignmentError, match=r"pixel size 0\.01 metre .* finer than"):
        build_fused_stack(
            _inputs(sample_scene), ("RED",), str(tmp_path / "g.tif"), grid_options=GridOptions(pixel_size=0.01)
        )
    assert not (tmp_path / "g.tif").exists()


def test_metres_in_a_geographic_crs_get_their_own_message(sample_scene, tmp_path):
    with pytest.raises(AlignmentError, match=r"geographic .* looks like metres"):
        build_fused_stack(
            _inputs(sample_scene),
            ("RED",),
            str(tmp_path / "g.tif"),
            grid_options=GridOptions(crs="EPSG:4326", pixel_size=10),
        )


def test_a_grid_beyond_the_free_disk_space_is_refused(sample_scene, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(AlignmentError, match=r"only 0\.00 GB are free"):
        build_fused_stack(_inputs(sample_scene), ("RED",), str(tmp_path / "g.tif"))


# --- Culprits (issue 10 §3) ----------------------------------------------------------------------------


def test_an_all_nodata_input_is_named(sample_scene, tmp_path):
    with rasterio.open(sample_scene.dem) as ds:
        nodata = np.full((1, ds.height, ds.width), -9999, np.float32)
    dem = _copy(sample_scene.dem, tmp_path / "dem_empty.tif", data=nodata, nodata=-9999)
    with pytest.raises(RtsFusionError, match=r"no valid pixel.*the DEM layer '.*dem_empty\.tif'"):
        build_fused_stack(_inputs(sample_scene, dem=dem), ("NDVI", "DEM"), str(tmp_path / "o.tif"))
    assert not (tmp_path / "o.tif").exists()


# --- Units, scales and ranges (issue 10 §4) ------------------------------------------------------------


def test_a_kelvin_series_declared_celsius_is_refused(sample_scene, tmp_path):
    with rasterio.open(sample_scene.temperature_series) as ds:
        kelvin = ds.read().astype(np.float32) + 273.15
        descs = list(ds.descriptions)
    series = _copy(sample_scene.temperature_series, tmp_path / "k.tif", data=kelvin, descriptions=descs)
    with pytest.raises(FeatureError, match="looks like Kelvin"):
        build_fused_stack(_inputs(sample_scene, temperature_series=series), ("FTI",), str(tmp_path / "f.tif"))
    info = build_fused_stack(
        _inputs(sample_scene, temperature_series=series, series_unit="K"), ("FTI",), str(tmp_path / "f.tif")
    )
    with rasterio.open(info.path) as ds:
        assert ds.read(1).std() > 0  # not a constant FTI of 1


def test_sentinel2_boa_add_offset_is_read_from_the_metadata(sample_scene, tmp_path):
    with rasterio.open(sample_scene.optical) as ds:
        dn = ds.read()
    shifted = _copy(
        sample_scene.optical,
        tmp_path / "l2a.tif",
        data=(dn + 1000).astype(np.uint16),
        tags={"PROCESSING_BASELINE": "05.09", "BOA_QUANTIFICATION_VALUE": "10000"},
        band_tags=[{"BOA_ADD_OFFSET": "-1000"}] * dn.shape[0],
        nodata=None,
    )
    lines: list[str] = []
    info = build_fused_stack(
        _inputs(sample_scene, optical=shifted), ("RED",), str(tmp_path / "r.tif"), log=lines.append
    )
    with rasterio.open(info.path) as ds:
        np.testing.assert_allclose(ds.read(1), dn[2] * 1e-4, atol=1e-6)
    assert any("BOA_ADD_OFFSET" in line for line in lines)
    assert not info.warnings


def test_bright_optical_bands_warn_of_a_missing_offset(sample_scene, tmp_path):
    with rasterio.open(sample_scene.optical) as ds:
        dn = ds.read()
    bright = _copy(sample_scene.optical, tmp_path / "bright.tif", data=(dn + 1000).astype(np.uint16), nodata=None)
    lines: list[str] = []
    bands = OpticalBands(scale=1e-4)
    info = build_fused_stack(
        _inputs(sample_scene, optical=bright, bands=bands), ("RED", "NDVI"), str(tmp_path / "b.tif"), log=lines.append
    )
    assert info.warnings and "offset may be missing" in info.warnings[0]
    assert read_stack_info(info.path).warnings == info.warnings  # carried into the output
    assert any(line.startswith("Warning:") for line in lines)


def test_index_values_outside_their_range_are_counted(sample_scene, tmp_path):
    with rasterio.open(sample_scene.optical) as ds:
        dn = ds.read().astype(np.int32)
    dn[2, :4, :] = -300  # negative red reflectance: NDVI above 1 there
    odd = _copy(sample_scene.optical, tmp_path / "odd.tif", data=dn.astype(np.int16), nodata=None)
    lines: list[str] = []
    build_fused_stack(
        _inputs(sample_scene, optical=odd, bands=OpticalBands(scale=1e-4)),
        ("RED", "NDVI"),
        str(tmp_path / "n.tif"),
        log=lines.append,
    )
    report = [line for line in lines if line.startswith("Values outside")]
    assert report and "RED 512 " in report[0] and "NDVI" in report[0]


# --- Terrain at the DEM's edge ----------------------------------------------------------------------


def test_terrain_at_the_edge_of_a_dem_that_covers_only_the_grid(sample_scene, tmp_path):
    with rasterio.open(sample_scene.optical) as opt:
        transform, width, height, crs = opt.transform, opt.width, opt.height, opt.crs
    with (
        rasterio.open(sample_scene.dem) as ds,
        rasterio.vrt.WarpedVRT(ds, crs=crs, transform=transform, width=width, height=height) as v,
    ):
        dem = v.read(1).astype(np.float32)
    tight = tmp_path / "dem_tight.tif"
    with rasterio.open(
        tight,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=1,
        dtype="float32",
        crs=crs,
        transform=transform,
        nodata=-9999,
    ) as dst:
        dst.write(dem, 1)
    lines: list[str] = []
    info = build_fused_stack(
        _inputs(sample_scene, dem=str(tight)),
        ("DEM", "SLOPE", "TPI"),
        str(tmp_path / "t.tif"),
        terrain_radius_m=30,
        log=lines.append,
    )
    assert info.valid_fraction == 1.0  # not nodata along the border
    reduced = [line for line in lines if "reduced neighbourhood" in line]
    assert reduced
    count = int(reduced[0].split()[3].replace(",", ""))
    assert 0 < count < width * height / 2
    with rasterio.open(info.path) as ds:
        slope = ds.read(2)
        whole = ds.read()
    assert np.isfinite(slope).all() and slope[0].max() < 90
    small = build_fused_stack(
        _inputs(sample_scene, dem=str(tight)),
        ("DEM", "SLOPE", "TPI"),
        str(tmp_path / "t40.tif"),
        terrain_radius_m=30,
        window_size=40,
    )
    with rasterio.open(small.path) as ds:
        np.testing.assert_allclose(ds.read(), whole, rtol=1e-5, atol=1e-5)  # the same whatever the windows


# --- Through Processing ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alg_scene(provider, tmp_path_factory):
    import processing

    folder = str(tmp_path_factory.mktemp("src_scene"))
    return processing.run("rtsfusion:samplescene", {"SIZE": 64, "SEED": 3, "FOLDER": folder})


@pytest.mark.parametrize(
    ("preset", "layers", "expected"),
    [(3, ("DEM",), OPTICAL_DEM), (4, (), OPTICAL_ONLY), (5, (), ("RED", "GREEN", "BLUE"))],
)
def test_alignfuse_presets_for_the_inputs_people_have(alg_scene, tmp_path, preset, layers, expected):
    import processing

    params = {"OPTICAL": alg_scene["OPTICAL"], "PRESET": preset, "OUTPUT": str(tmp_path / "s.tif")}
    params.update({k: alg_scene[k] for k in layers})
    result = processing.run("rtsfusion:alignfuse", params)
    assert read_stack_info(result["OUTPUT"]).band_names == expected


def test_alignfuse_lists_every_missing_input_and_asks_for_unnamed_bands(alg_scene, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    params = {"OPTICAL": alg_scene["OPTICAL"], "PRESET": 0, "OUTPUT": str(tmp_path / "p.tif")}
    with pytest.raises(QgsProcessingException, match=r"LST needs a thermal layer.*needs? a DEM.*'optical' preset"):
        processing.run("rtsfusion:alignfuse", params)
    bare = _copy(alg_scene["OPTICAL"], tmp_path / "bare.tif", descriptions=[""] * 6)
    params = {"OPTICAL": bare, "PRESET": 5, "OUTPUT": str(tmp_path / "b.tif")}
    with pytest.raises(QgsProcessingException, match=r"set the BLUE, GREEN, RED band parameter"):
        processing.run("rtsfusion:alignfuse", params)
    params.update(BAND_BLUE=1, BAND_GREEN=2, BAND_RED=3, REFLECTANCE_SCALE=1e-4)  # the copy lost the scale
    assert read_stack_info(processing.run("rtsfusion:alignfuse", params)["OUTPUT"]).band_names == (
        "RED",
        "GREEN",
        "BLUE",
    )
    assert not (tmp_path / "p.tif").exists()


# --- Real data (skipped when ../shared/data is absent) ----------------------------------------------


def test_real_sentinel2_bands_are_mapped_from_their_names(shared_data, tmp_path):
    base = shared_data / "landsat5_thermal_srtm" / "converted_from_rds"
    lines: list[str] = []
    inp = FusionInputs(
        str(base / "sen2_L2A_12band.tif"), None, str(base / "srtm_sen2_grid.tif"), OpticalBands(scale=1.0)
    )
    info = build_fused_stack(
        inp,
        ("RED", "NIR", "NDVI", "TCG", "SLOPE"),
        str(tmp_path / "s2.tif"),
        grid_options=GridOptions(crs="EPSG:32721", pixel_size=10.0),
        terrain_radius_m=30,
        log=lines.append,
    )
    mapping = next(line for line in lines if line.startswith("Optical band mapping"))
    assert "RED = band 4 (band name)" in mapping and "NIR = band 8 (band name)" in mapping
    assert "SWIR1 = band 11" in mapping  # B11 is the 11th band: B10 is missing from L2A
    assert any("sensor: sentinel2 (recognised" in line for line in lines)
    assert info.valid_fraction > 0.5
    # This real L2A clip has every band's 1st percentile near 0.11 (blue over rain forest): the −1000 DN offset of
    # baseline 04.00 was evidently never removed, and the stack says so.
    assert info.warnings and "offset may be missing" in info.warnings[0]
    assert any("reduced neighbourhood" in line for line in lines)  # SRTM on the S2 grid: no DEM beyond it


def test_real_unnamed_peel_bands_are_refused_until_mapped(shared_data, tmp_path):
    s2 = str(shared_data / "peel_labelling_experiment" / "S2_20210821T210019_20210821T210020_T08WMA.tif")
    with pytest.raises(FeatureError, match=r"do not tell which band is BLUE, RED, NIR: set the BLUE, RED, NIR band"):
        build_fused_stack(FusionInputs(s2, None, None), ("NDVI", "BLUE"), str(tmp_path / "p.tif"))
    assert not (tmp_path / "p.tif").exists()
    lines: list[str] = []
    bands = OpticalBands(blue=1, green=2, red=3, nir=4, scale=1e-4)
    info = build_fused_stack(FusionInputs(s2, None, None, bands), ("NDVI",), str(tmp_path / "p.tif"), log=lines.append)
    assert "NIR = band 4 (given)" in next(line for line in lines if line.startswith("Optical band mapping"))
    assert info.valid_fraction > 0.9


def test_real_landsat_l2_st_as_celsius_is_refused(shared_data, tmp_path):
    from rts_fusion.core.thermal import ThermalSpec

    base = shared_data / "landsat8_l2_surface_temperature" / "georeferenced_from_MTL"
    sr = sorted(str(p) for p in base.glob("*_SR_B4.TIF"))[0]
    st = sorted(str(p) for p in base.glob("*_ST_B10.TIF"))[0]
    wrong = ThermalSpec(unit="C", scale=0.00341802, offset=149.0)  # kelvin values declared Celsius
    inp = FusionInputs(sr, st, None, OpticalBands(red=1, scale=2.75e-5, offset=-0.2), wrong)
    with pytest.raises(FeatureError, match="not plausible"):
        build_fused_stack(inp, ("RED", "LST"), str(tmp_path / "l8.tif"))


def test_grid_size_estimate_for_a_folder_still_to_be_created(sample_scene, tmp_path):
    from rts_fusion.core.grid import build_target_grid, check_grid_size, inspect_source

    src = inspect_source(sample_scene.optical, "optical")
    grid = build_target_grid([src])
    assert check_grid_size(grid, [src], 13, str(tmp_path / "not" / "yet")) == 128 * 128 * 13 * 4


def test_inventory_stats_reads_water_bands_from_names_or_asks(alg_scene, tmp_path):
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    class Log(QgsProcessingFeedback):
        lines: list[str] = []

        def pushInfo(self, info):  # noqa: N802 - QGIS API name
            self.lines.append(info)

    params = {
        "SLUMPS": alg_scene["SLUMPS"],
        "DEM": alg_scene["DEM"],
        "OPTICAL": alg_scene["OPTICAL"],
        "OUTPUT": str(tmp_path / "stats.gpkg"),
    }
    log = Log()
    processing.run("rtsfusion:inventorystats", params, feedback=log)
    assert any("GREEN = band 2 (band name), NIR = band 4 (band name)" in line for line in log.lines)
    bare = _copy(alg_scene["OPTICAL"], tmp_path / "bare.tif", descriptions=[""] * 6)
    with pytest.raises(QgsProcessingException, match=r"set the Green band and NIR band parameter"):
        processing.run("rtsfusion:inventorystats", {**params, "OPTICAL": bare, "OUTPUT": str(tmp_path / "s2.gpkg")})
    processing.run(
        "rtsfusion:inventorystats",
        {**params, "OPTICAL": bare, "GREEN_BAND": 2, "NIR_BAND": 4, "OUTPUT": str(tmp_path / "s3.gpkg")},
    )


def test_partial_inputs_are_reported_with_their_valid_share(sample_scene, tmp_path):
    lines: list[str] = []
    build_fused_stack(
        _inputs(sample_scene),
        ("RED", "DEM"),
        str(tmp_path / "r.tif"),
        grid_options=GridOptions(crs="EPSG:32645", pixel_size=20.0),
        log=lines.append,
    )
    share = next(line for line in lines if line.startswith("Valid share of the grid per input"))
    assert "optical" in share and "%" in share  # the rotated footprint leaves nodata corners


def test_tasseled_cap_asks_for_the_sensor_when_the_file_does_not_tell(sample_scene, tmp_path):
    named = _copy(
        sample_scene.optical, tmp_path / "n.tif", descriptions=["Blue", "Green", "Red", "NIR", "SWIR1", "SWIR2"]
    )
    with pytest.raises(FeatureError, match="do not tell which: choose it in the sensor parameter"):
        build_fused_stack(_inputs(sample_scene, optical=named), ("TCB",), str(tmp_path / "t.tif"))
    lines: list[str] = []
    bands = OpticalBands(sensor="landsat8", scale=1e-4)
    build_fused_stack(
        _inputs(sample_scene, optical=named, bands=bands), ("TCB",), str(tmp_path / "t.tif"), log=lines.append
    )
    assert "Tasseled Cap coefficients of sensor: landsat8." in lines


def test_check_inputs_speaks_of_the_model(sample_scene):
    from rts_fusion.core.sources import check_inputs

    with pytest.raises(MissingInputsError, match=r"^This model's bands need inputs that were not given: LST needs a"):
        check_inputs(_inputs(sample_scene, thermal=None), PAPER, subject="This model's bands")
    check_inputs(_inputs(sample_scene), PAPER)  # all there: no error
