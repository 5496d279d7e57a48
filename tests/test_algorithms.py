import os

import numpy as np
import processing
import pytest
import rasterio
from qgis.core import QgsProcessingException, QgsProject, QgsRasterLayer, QgsVectorLayer
from rts_fusion.core.features import EXTENDED, PAPER
from rts_fusion.core.vector import write_polygons


@pytest.fixture(scope="module")
def scene_run(provider, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("alg_scene"))
    return processing.run("rtsfusion:samplescene", {"SIZE": 96, "SEED": 5, "FOLDER": folder})


def test_provider_lists_algorithms(provider):
    ids = {a.id() for a in provider.algorithms()}
    assert {"rtsfusion:alignfuse", "rtsfusion:samplescene"} <= ids
    for alg in provider.algorithms():
        assert alg.shortHelpString() and alg.displayName()


def test_sample_scene_outputs_are_valid_layers(scene_run):
    for key in ("OPTICAL", "THERMAL", "DEM", "TEMPERATURE_SERIES"):
        layer = QgsRasterLayer(scene_run[key], key)
        assert layer.isValid(), key
    slumps = QgsVectorLayer(scene_run["SLUMPS"], "slumps")
    assert slumps.isValid() and slumps.featureCount() == scene_run["N_SLUMPS"] > 0
    assert QgsRasterLayer(scene_run["OPTICAL"]).crs().authid() == "EPSG:32646"
    assert QgsRasterLayer(scene_run["DEM"]).crs().authid() == "EPSG:4326"


def test_alignfuse_paper_preset(scene_run, tmp_path):
    out = str(tmp_path / "stack.tif")
    result = processing.run(
        "rtsfusion:alignfuse",
        {
            "OPTICAL": scene_run["OPTICAL"],
            "THERMAL": scene_run["THERMAL"],
            "DEM": scene_run["DEM"],
            "TEMPERATURE_SERIES": scene_run["TEMPERATURE_SERIES"],
            "OUTPUT": out,
        },
    )
    assert result["OUTPUT"] == out
    with rasterio.open(out) as ds, rasterio.open(scene_run["OPTICAL"]) as opt:
        assert ds.descriptions == PAPER and ds.transform == opt.transform and ds.crs == opt.crs
        red = ds.read(1)
        np.testing.assert_allclose(red, opt.read(3) * 1e-4, rtol=1e-6)
    layer = QgsRasterLayer(out)
    assert layer.isValid() and layer.bandCount() == 13


def test_alignfuse_extended_with_grid_options(scene_run, tmp_path):
    out = str(tmp_path / "ext.tif")
    processing.run(
        "rtsfusion:alignfuse",
        {
            "OPTICAL": scene_run["OPTICAL"],
            "THERMAL": scene_run["THERMAL"],
            "DEM": scene_run["DEM"],
            "TEMPERATURE_SERIES": scene_run["TEMPERATURE_SERIES"],
            "PRESET": 1,
            "TARGET_CRS": "EPSG:32645",
            "PIXEL_SIZE": 30.0,
            "OUTPUT": out,
        },
    )
    with rasterio.open(out) as ds:
        assert ds.descriptions == EXTENDED and ds.crs.to_epsg() == 32645 and ds.res == (30.0, 30.0)


def test_alignfuse_custom_list_without_thermal(scene_run, tmp_path):
    out = str(tmp_path / "c.tif")
    processing.run(
        "rtsfusion:alignfuse",
        {
            "OPTICAL": scene_run["OPTICAL"],
            "DEM": scene_run["DEM"],
            "PRESET": 2,
            "CUSTOM_FEATURES": "ndvi, slope, tpi",
            "OUTPUT": out,
        },
    )
    with rasterio.open(out) as ds:
        assert ds.descriptions == ("NDVI", "SLOPE", "TPI")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"PRESET": 0}, "FTI"),  # paper preset without FTI source
        ({"PRESET": 2, "CUSTOM_FEATURES": "NDVI,BOGUS"}, "Unknown feature"),
        ({"PRESET": 2, "CUSTOM_FEATURES": "TCB", "SENSOR": 3}, "Tasseled Cap"),
        ({"PRESET": 2, "CUSTOM_FEATURES": "NDVI", "REFLECTANCE_SCALE": 1.0}, "not surface reflectance"),
    ],
)
def test_alignfuse_bad_input_is_a_clear_processing_error(scene_run, tmp_path, extra, message):
    params = {
        "OPTICAL": scene_run["OPTICAL"],
        "THERMAL": scene_run["THERMAL"],
        "DEM": scene_run["DEM"],
        "OUTPUT": str(tmp_path / "bad.tif"),
        **extra,
    }
    with pytest.raises(QgsProcessingException, match=message):
        processing.run("rtsfusion:alignfuse", params)


def test_alignfuse_output_is_loaded_into_the_project(scene_run, tmp_path):
    QgsProject.instance().removeAllMapLayers()
    processing.runAndLoadResults(
        "rtsfusion:alignfuse",
        {
            "OPTICAL": scene_run["OPTICAL"],
            "PRESET": 2,
            "CUSTOM_FEATURES": "RED,GREEN,BLUE",
            "OUTPUT": str(tmp_path / "loaded.tif"),
        },
    )
    layers = list(QgsProject.instance().mapLayers().values())
    assert any(isinstance(lyr, QgsRasterLayer) and lyr.bandCount() == 3 for lyr in layers)


def test_train_algorithm_writes_package_and_report(provider, training_stack, tmp_path, stub_fit):
    stack, slumps = training_stack
    out = str(tmp_path / "model.safetensors")
    report = str(tmp_path / "report.html")
    result = processing.run(
        "rtsfusion:train",
        {
            "STACK": stack,
            "INVENTORY": slumps,
            "BANDS": 1,
            "ENCODER": 6,
            "DECODER_DIM": 32,
            "TILE_SIZE": 64,
            "EPOCHS": 3,
            "BATCH_SIZE": 8,
            "CHIPS_PER_EPOCH": 32,
            "LEARNING_RATE": 1e-3,
            "DEVICE": 1,
            "SEED": 3,
            "OUTPUT": out,
            "REPORT": report,
        },
    )
    from rts_fusion.models.package import read_card

    card = read_card(result["OUTPUT"])
    assert len(stub_fit) == 1 and stub_fit[0].epochs == 3 and stub_fit[0].chips_per_epoch == 32  # the parameters
    assert card.bands == PAPER and card.config.architecture == "fusion_sa_segformer" and card.config.encoder == "tiny"
    assert 1 <= result["BEST_EPOCH"] <= 3 and 0 <= result["VAL_F1"] <= 1
    html = open(report).read()
    assert "Learning curves" in html and "FusionSA-SegFormer" in html

    for png in ("report_loss.png", "report_scores.png"):
        assert os.path.getsize(tmp_path / png) > 1000


def test_train_algorithm_needs_data(provider, tmp_path):
    with pytest.raises(QgsProcessingException, match="fused stack and a slump inventory"):
        processing.run("rtsfusion:train", {"OUTPUT": str(tmp_path / "m.safetensors")})


def test_deep_learning_algorithms_explain_missing_torch(monkeypatch):
    import importlib.util

    from rts_fusion.processing_provider.common import require_deep_learning

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(
        QgsProcessingException, match=r"(?s)Missing Python package\(s\): torch.*Raster → RTS Fusion → Install"
    ) as info:
        require_deep_learning()
    assert "<" not in str(info.value)  # Processing's log reads messages as HTML


def test_evaluate_polygons_on_a_pixel_size_grid_and_refusals(scene_run, tmp_path):
    """Slump polygons scored against themselves without a reference raster; an empty truth is refused."""
    slumps = scene_run["SLUMPS"]
    ev = processing.run(
        "rtsfusion:evaluate",
        {
            "PREDICTION": slumps,
            "TRUTH": slumps,
            "PIXEL_SIZE": 10.0,
            "OUTPUT": "memory:",
            "CSV": str(tmp_path / "m.csv"),
        },
    )
    assert ev["PIXEL_F1"] == 1.0 and ev["OBJECT_F1"] == 1.0 and ev["OBJECT_F1_ANY_OVERLAP"] == 1.0
    assert ev["OBJECT_F1_CHIPS"] == 1.0
    assert "note" in open(ev["CSV"]).readline()
    with pytest.raises(QgsProcessingException, match="reference raster .* or a pixel size"):
        processing.run("rtsfusion:evaluate", {"PREDICTION": slumps, "TRUTH": slumps, "OUTPUT": "memory:"})
    empty = str(tmp_path / "empty_truth.gpkg")
    write_polygons(empty, "truth", QgsVectorLayer(slumps).crs().toWkt(), [])
    with pytest.raises(QgsProcessingException, match="holds no polygon"):
        processing.run(
            "rtsfusion:evaluate", {"PREDICTION": slumps, "TRUTH": empty, "PIXEL_SIZE": 10.0, "OUTPUT": "memory:"}
        )
