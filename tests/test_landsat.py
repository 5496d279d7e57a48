"""Separate Landsat band files stacked into one optical raster (core.landsat), on tiny and real scenes."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rts_fusion.core.errors import RtsFusionError
from rts_fusion.core.landsat import build_landsat_optical, parse_mtl

MTL_L2 = """GROUP = LANDSAT_METADATA_FILE
  GROUP = IMAGE_ATTRIBUTES
    SPACECRAFT_ID = "LANDSAT_8"
    SUN_ELEVATION = 30.0
  END_GROUP = IMAGE_ATTRIBUTES
  GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS
{l2}  END_GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS
  GROUP = LEVEL1_RADIOMETRIC_RESCALING
{l1}  END_GROUP = LEVEL1_RADIOMETRIC_RESCALING
END_GROUP = LANDSAT_METADATA_FILE
"""


def _scene(folder, prefix: str, numbers, mtl: bool = True, level2: bool = True, crs: str = "EPSG:32608"):
    """Tiny band files whose DN is 1000 × band number (0 = fill in the corner), and an MTL."""
    paths = []
    for n in numbers:
        path = os.path.join(folder, f"{prefix}_{'SR_' if level2 else ''}B{n}.TIF")
        data = np.full((64, 64), 1000 * n, dtype="uint16")
        data[:4, :4] = 0
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=64,
            height=64,
            count=1,
            dtype="uint16",
            crs=crs,
            transform=from_origin(500000, 7000000, 30, 30),
        ) as dst:
            dst.write(data, 1)
        paths.append(path)
    if mtl:
        l2 = "".join(
            f"    REFLECTANCE_MULT_BAND_{n} = 2.75e-05\n    REFLECTANCE_ADD_BAND_{n} = -0.2\n" for n in numbers
        )
        l1 = "".join(f"    REFLECTANCE_MULT_BAND_{n} = 2.0E-05\n    REFLECTANCE_ADD_BAND_{n} = -0.1\n" for n in numbers)
        with open(os.path.join(folder, f"{prefix}_MTL.txt"), "w") as f:
            f.write(MTL_L2.format(l2=l2, l1=l1))
    return paths


def test_level2_bands_become_named_surface_reflectance(tmp_path):
    paths = _scene(str(tmp_path), "LC08_L2SP_001002_20200101_20200102_02_T1", [4, 2, 3, 5, 6, 7, 10])
    out = build_landsat_optical(list(reversed(paths)), str(tmp_path / "optical.vrt"))
    assert out.sensor == "landsat8" and out.calibration == "surface reflectance" and out.calibrated
    assert [b.number for b in out.bands] == [2, 3, 4, 5, 6, 7]  # sorted; B10 (thermal) left out, reported
    assert len(out.skipped) == 1 and "B10" in out.skipped[0]
    with rasterio.open(out.path) as ds:
        assert ds.descriptions == ("Blue (B2)", "Green (B3)", "Red (B4)", "NIR (B5)", "SWIR1 (B6)", "SWIR2 (B7)")
        a = ds.read(masked=True)
        assert ds.dtypes[0] == "float32"
        # DN 1000 n × 2.75e-5 − 0.2; fill pixels masked, not turned into −0.2 reflectance.
        for i, n in enumerate([2, 3, 4, 5, 6, 7]):
            assert a[i, 10, 10] == pytest.approx(1000 * n * 2.75e-5 - 0.2, abs=1e-6)
        assert a.mask[:, 0, 0].all() and not a.mask[:, 10, 10].any()
        assert ds.tags(1)["LANDSAT_BAND"] == "B2"


def test_level1_uses_toa_coefficients_with_sun_elevation(tmp_path):
    paths = _scene(str(tmp_path), "LC08_L1TP_001002_20200101_20200102_02_T1", [2, 3, 4, 5], level2=False)
    out = build_landsat_optical(paths, str(tmp_path / "toa.tif"))
    assert out.calibration == "top-of-atmosphere reflectance"
    with rasterio.open(out.path) as ds:
        assert ds.driver == "GTiff" and ds.count == 4
        # (DN × 2e-5 − 0.1) / sin(30°)
        assert ds.read(1)[10, 10] == pytest.approx((2000 * 2e-5 - 0.1) / 0.5, abs=1e-6)
        assert ds.descriptions[0] == "Blue (B2)"


def test_without_mtl_the_bands_stay_digital_numbers_and_say_so(tmp_path):
    paths = _scene(
        str(tmp_path), "LT05_L1TP_001002_19900101_20200102_02_T1", [1, 2, 3, 4, 5, 6, 7], mtl=False, level2=False
    )
    out = build_landsat_optical(paths, str(tmp_path / "dn.vrt"))
    assert not out.calibrated and out.calibration == "digital numbers" and out.sensor == "landsat5"
    assert [b.number for b in out.bands] == [1, 2, 3, 4, 5, 7]  # TM B6 is thermal
    with rasterio.open(out.path) as ds:
        assert ds.read(1)[10, 10] == 1000 and ds.descriptions[0] == "Blue (B1)"


def test_refuses_bad_inputs_without_writing(tmp_path):
    prefix = "LC08_L2SP_001002_20200101_20200102_02_T1"
    paths = _scene(str(tmp_path), prefix, [2, 3, 4])
    (tmp_path / "other").mkdir()
    other = _scene(str(tmp_path / "other"), prefix, [4], crs="EPSG:32609", mtl=False)
    shutil.copyfile(other[0], paths[2])  # B4 now lies in another UTM zone
    out = tmp_path / "x.vrt"
    with pytest.raises(RtsFusionError, match="B4.TIF' is in another coordinate reference system"):
        build_landsat_optical(paths, str(out))
    with pytest.raises(RtsFusionError, match="given twice"):
        build_landsat_optical(paths[:2] + paths[:1], str(out))
    with pytest.raises(RtsFusionError, match="one of the input files"):
        build_landsat_optical(paths[:2], paths[0])
    (tmp_path / "scene.TIF").write_text("")
    with pytest.raises(RtsFusionError, match="'scene.TIF' is not named like a Landsat band"):
        build_landsat_optical([str(tmp_path / "scene.TIF")], str(out))
    (tmp_path / "mixed").mkdir()
    mixed = _scene(str(tmp_path / "mixed"), prefix, [2, 3]) + _scene(str(tmp_path / "mixed"), prefix, [4], mtl=False)
    with pytest.raises(RtsFusionError, match="some bands but not for B4"):
        build_landsat_optical(mixed, str(out))
    assert not out.exists()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".landsat_")]


def test_real_landsat8_level2_scene(shared_data, tmp_path):
    folder = shared_data / "landsat8_l2_surface_temperature"
    bands = sorted(str(p) for p in (folder / "georeferenced_from_MTL").glob("*.TIF"))
    mtl = next((folder / "raw_ungeoreferenced").glob("*_MTL.txt"))
    assert parse_mtl(str(mtl))["LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"]["REFLECTANCE_MULT_BAND_4"] == "2.75e-05"
    out = build_landsat_optical(bands, str(tmp_path / "l8.vrt"), mtl_path=str(mtl))
    assert out.calibration == "surface reflectance" and [b.number for b in out.bands] == [1, 2, 3, 4, 5, 6, 7]
    with rasterio.open(out.path) as ds:
        red = ds.read(4, masked=True)
        with rasterio.open(bands[3]) as src:
            dn = src.read(1).astype("float64")
        ok = ~red.mask
        np.testing.assert_allclose(red.data[ok], dn[ok] * 2.75e-5 - 0.2, rtol=1e-5, atol=1e-6)
        assert 0.0 < float(np.median(red.compressed())) < 0.5  # real surface reflectance
    # The raw files carry no georeferencing: refused by name.
    raw = sorted(str(p) for p in (folder / "raw_ungeoreferenced").glob("*_SR_B*.TIF"))
    with pytest.raises(RtsFusionError, match="no coordinate reference system"):
        build_landsat_optical(raw, str(tmp_path / "raw.vrt"))


def test_real_landsat5_scene_without_reflectance_coefficients(shared_data, tmp_path):
    bands = sorted(str(p) for p in (shared_data / "landsat5_thermal_srtm" / "landsat5").glob("*_B?.TIF"))
    out = build_landsat_optical(bands, str(tmp_path / "l5.vrt"))
    assert out.mtl and out.mtl.endswith("_MTL.txt")  # found beside the bands, but it has radiance only
    assert out.sensor == "landsat5" and not out.calibrated
    assert [b.number for b in out.bands] == [1, 2, 3, 4, 5, 7] and "B6" in out.skipped[0]


def test_processing_algorithm_feeds_align_and_fuse(provider, shared_data, tmp_path):
    import processing
    from qgis.core import QgsProcessingException, QgsRasterLayer

    folder = shared_data / "landsat8_l2_surface_temperature"
    bands = sorted(str(p) for p in (folder / "georeferenced_from_MTL").glob("*.TIF"))
    mtl = str(next((folder / "raw_ungeoreferenced").glob("*_MTL.txt")))
    out = str(tmp_path / "optical.vrt")
    result = processing.run("rtsfusion:landsatbands", {"BANDS": bands, "MTL": mtl, "OUTPUT": out})
    assert result["OUTPUT"] == out and result["SENSOR"] == "landsat8"
    assert result["CALIBRATION"] == "surface reflectance"
    layer = QgsRasterLayer(out, "optical")
    assert layer.isValid() and layer.bandCount() == 7 and "Red (B4)" in layer.bandName(4)
    del layer  # a raster layer alive after QGIS exits crashes the interpreter at shutdown
    stack = str(tmp_path / "stack.tif")
    processing.run(
        "rtsfusion:alignfuse",
        {
            "OPTICAL": out,
            "PRESET": 2,
            "CUSTOM_FEATURES": "NDVI",
            "BAND_BLUE": 2, "BAND_GREEN": 3, "BAND_RED": 4, "BAND_NIR": 5, "BAND_SWIR1": 6, "BAND_SWIR2": 7,
            "OUTPUT": stack,
        },
    )  # fmt: skip
    with rasterio.open(stack) as ds:
        ndvi = ds.read(1, masked=True)
        assert ds.descriptions == ("NDVI",) and -1.0 <= float(ndvi.mean()) <= 1.0
    with pytest.raises(QgsProcessingException, match="not named like a Landsat band"):
        processing.run("rtsfusion:landsatbands", {"BANDS": [mtl], "OUTPUT": str(tmp_path / "x.vrt")})
