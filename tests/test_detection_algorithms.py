import numpy as np
import processing
import pytest
import rasterio
from osgeo import ogr
from qgis.core import QgsProcessingException, QgsProject, QgsVectorLayer

pytestmark = pytest.mark.end_to_end  # a model is trained for these (session fixture tiny_model)


def test_detect_writes_probability_and_mask(provider, training_stack, tiny_model, tmp_path):
    stack, _ = training_stack
    prob, mask = str(tmp_path / "prob.tif"), str(tmp_path / "mask.tif")
    res = processing.run(
        "rtsfusion:detect", {"STACK": stack, "MODEL": tiny_model, "DEVICE": 1, "PROBABILITY": prob, "MASK": mask}
    )
    with rasterio.open(prob) as p, rasterio.open(mask) as m, rasterio.open(stack) as s:
        assert p.transform == s.transform and p.shape == s.shape and p.dtypes[0] == "float32"
        pv, mv = p.read(1), m.read(1)
    assert 0 <= pv.min() and pv.max() <= 1
    np.testing.assert_array_equal(mv, (pv >= 0.4).astype(np.uint8))
    assert res["SLUMP_PIXELS"] == int(mv.sum()) > 0


def test_detect_refuses_a_stack_without_the_model_bands(provider, sample_scene, tiny_model, tmp_path):
    out = str(tmp_path / "rgb.tif")
    processing.run(
        "rtsfusion:alignfuse",
        {"OPTICAL": sample_scene.optical, "PRESET": 2, "CUSTOM_FEATURES": "RED,GREEN,BLUE", "OUTPUT": out},
    )
    with pytest.raises(QgsProcessingException, match="lacks band\\(s\\) DEM, EVI, FTI, LST"):
        processing.run("rtsfusion:detect", {"STACK": out, "MODEL": tiny_model, "PROBABILITY": str(tmp_path / "p.tif")})


def test_detect_refuses_a_corrupt_model(provider, training_stack, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(QgsProcessingException, match="not a readable model package"):
        processing.run(
            "rtsfusion:detect", {"STACK": training_stack[0], "MODEL": str(bad), "PROBABILITY": str(tmp_path / "p.tif")}
        )


def test_detect_polygonize_evaluate_chain(provider, training_stack, tiny_model, tmp_path):
    stack, slumps = training_stack
    prob = processing.run(
        "rtsfusion:detect",
        {"STACK": stack, "MODEL": tiny_model, "DEVICE": 1, "PROBABILITY": str(tmp_path / "prob.tif")},
    )["PROBABILITY"]
    polys = processing.run(
        "rtsfusion:polygonize",
        {"INPUT": prob, "STACK": stack, "MIN_AREA": 500, "OUTPUT": str(tmp_path / "slumps.gpkg")},
    )
    layer = QgsVectorLayer(polys["OUTPUT"], "p")
    assert layer.isValid() and layer.featureCount() == polys["COUNT"] > 0
    names = layer.fields().names()
    assert {
        "area_m2",
        "perimeter_m",
        "prob_mean",
        "prob_max",
        "elev_mean",
        "slope_mean",
        "lst_mean",
        "ndvi_mean",
    } <= set(names)
    f = next(layer.getFeatures())
    assert f["area_m2"] >= 500 and 0.4 <= f["prob_mean"] <= f["prob_max"] <= 1 and 4300 < f["elev_mean"] < 5300
    assert layer.dataProvider().capabilities() & layer.dataProvider().AddFeatures  # editable
    ev = processing.run(
        "rtsfusion:evaluate",
        {
            "PREDICTION": polys["OUTPUT"],
            "TRUTH": slumps,
            "REFERENCE": stack,
            "CHIP_SIZE": 64,
            "OUTPUT": "memory:",
            "MATCHES": str(tmp_path / "matches.gpkg"),
            "CSV": str(tmp_path / "m.csv"),
            "HTML": str(tmp_path / "m.html"),
        },
    )
    table = ev["OUTPUT"] if isinstance(ev["OUTPUT"], QgsVectorLayer) else QgsProject.instance().mapLayer(ev["OUTPUT"])
    rows = {f["metric"]: f["pooled"] for f in table.getFeatures()}
    assert rows["pixel_f1"] == pytest.approx(ev["PIXEL_F1"]) and 0.2 < ev["PIXEL_F1"] <= 1
    assert 0 < ev["OBJECT_F1_ANY_OVERLAP"] <= 1
    ds = ogr.Open(ev["MATCHES"])
    assert {ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())} == {"predictions", "ground_truth"}
    assert "pixel_f1" in open(ev["CSV"]).read() and "Scores" in open(ev["HTML"]).read()


def test_mapslumps_one_shot(provider, training_scene, mapslumps_parameters):
    res = processing.run("rtsfusion:mapslumps", mapslumps_parameters)
    with rasterio.open(res["STACK"]) as ds:
        assert ds.count == 13  # exactly the model's bands
    assert QgsVectorLayer(res["POLYGONS"], "p").featureCount() == res["COUNT"]
    ev = processing.run(
        "rtsfusion:evaluate",
        {"PREDICTION": res["POLYGONS"], "TRUTH": training_scene.slumps, "REFERENCE": res["STACK"], "OUTPUT": "memory:"},
    )
    assert ev["OBJECT_F1_ANY_OVERLAP"] > 0.3  # a briefly trained tiny model; an empty map scores 0
