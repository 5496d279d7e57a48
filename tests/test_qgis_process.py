"""End-to-end: the plugin loaded by the qgis_process executable, as a user's batch job would run it."""

import json
import os
import shutil
import subprocess
import sysconfig

import numpy as np
import pytest
import rasterio
from conftest import ROOT
from rts_fusion.core.features import PAPER

QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/lib/qgis/qgis_process.bin"
pytestmark = [
    pytest.mark.qgis_process,
    pytest.mark.skipif(not os.path.exists(QGIS_PROCESS), reason="qgis_process.bin not installed"),
]


@pytest.fixture(scope="module")
def qgis_process(tmp_path_factory):
    """Run qgis_process with the plugin on its plugin path, in a throw-away profile."""
    base = tmp_path_factory.mktemp("qgis_process")
    plugins = base / "plugins"
    plugins.mkdir()
    (plugins / "rts_fusion").symlink_to(ROOT)
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        QGIS_PLUGINPATH=str(plugins),
        QGIS_CUSTOM_CONFIG_PATH=str(base / "profile"),
        # The embedded Python does not see the venv; give it the venv's packages.
        PYTHONPATH=os.pathsep.join(p for p in (sysconfig.get_paths()["purelib"], env.get("PYTHONPATH")) if p),
    )

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=600)

    enabled = run("plugins", "enable", "rts_fusion")
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    return run


def test_list_shows_the_algorithms(qgis_process):
    out = qgis_process("list")
    assert "rtsfusion:alignfuse" in out.stdout and "rtsfusion:samplescene" in out.stdout


def test_sample_scene_then_alignfuse(qgis_process, tmp_path):
    folder = tmp_path / "scene"
    res = qgis_process("run", "rtsfusion:samplescene", "--json", "--", "SIZE=96", "SEED=11", f"FOLDER={folder}")
    assert res.returncode == 0, res.stdout + res.stderr
    results = json.loads(res.stdout)["results"]
    assert results["N_SLUMPS"] > 0
    out = tmp_path / "stack.tif"
    res = qgis_process(
        "run",
        "rtsfusion:alignfuse",
        "--json",
        "--",
        f"OPTICAL={results['OPTICAL']}",
        f"THERMAL={results['THERMAL']}",
        f"DEM={results['DEM']}",
        f"TEMPERATURE_SERIES={results['TEMPERATURE_SERIES']}",
        f"OUTPUT={out}",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    with rasterio.open(out) as ds, rasterio.open(results["OPTICAL"]) as opt:
        assert ds.descriptions == PAPER
        assert ds.crs == opt.crs and ds.transform == opt.transform and ds.nodata == -9999.0
        data = ds.read(masked=True)
        np.testing.assert_allclose(data[PAPER.index("GREEN")], opt.read(2) * 1e-4, rtol=1e-6)
        assert 270 < float(data[PAPER.index("LST")].mean()) < 320


def test_bad_input_fails_with_a_message_not_a_traceback(qgis_process, tmp_path):
    raw = ROOT.parent / "shared" / "data" / "landsat8_l2_surface_temperature" / "raw_ungeoreferenced"
    files = sorted(raw.glob("*SR_B*.TIF")) if raw.is_dir() else []
    if not files:
        pytest.skip("shared real data not available")
    res = qgis_process(
        "run",
        "rtsfusion:alignfuse",
        "--",
        f"OPTICAL={files[0]}",
        "PRESET=2",
        "CUSTOM_FEATURES=RED",
        f"OUTPUT={tmp_path / 'x.tif'}",
    )
    assert res.returncode != 0
    assert "no georeferencing" in res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr


def test_train_through_qgis_process(qgis_process, training_stack, tmp_path):
    stack, slumps = training_stack
    out = tmp_path / "model.safetensors"
    report = tmp_path / "report.html"
    res = qgis_process(
        "run",
        "rtsfusion:train",
        "--json",
        "--",
        f"STACK={stack}",
        f"INVENTORY={slumps}",
        "BANDS=2",
        "ENCODER=6",
        "DECODER_DIM=16",
        "TILE_SIZE=64",
        "EPOCHS=1",
        "CHIPS_PER_EPOCH=16",
        "DEVICE=1",
        f"OUTPUT={out}",
        f"REPORT={report}",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["results"]["BEST_EPOCH"] == 1
    from rts_fusion.models.package import read_card

    assert read_card(str(out)).bands == ("RED", "GREEN", "BLUE")
    assert "Learning curves" in report.read_text()


def test_shipped_modeller_model_maps_slumps(qgis_process, sample_scene, tiny_model, tmp_path):
    """The graphical-modeller model in resources/models runs align → detect → polygonise end to end."""
    model3 = ROOT / "resources" / "models" / "map_thaw_slumps.model3"
    polygons = tmp_path / "slumps.gpkg"
    res = qgis_process(
        "run",
        str(model3),
        "--json",
        "--",
        f"optical={sample_scene.optical}",
        f"thermal={sample_scene.thermal}",
        f"dem={sample_scene.dem}",
        f"series={sample_scene.temperature_series}",
        f"model={tiny_model}",
        "align:Fused stack=TEMPORARY_OUTPUT",
        "detect:Slump probability=TEMPORARY_OUTPUT",
        f"polygonize:Slump polygons={polygons}",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    from osgeo import ogr

    ds = ogr.Open(str(polygons))
    layer = ds.GetLayer(0)
    fields = {layer.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(layer.GetLayerDefn().GetFieldCount())}
    assert {"area_m2", "prob_mean", "slope_mean", "lst_mean"} <= fields
    areas = [f.GetField("area_m2") for f in layer]
    assert areas and min(areas) >= 1000


def test_inventory_analysis_through_qgis_process(qgis_process, tmp_path):
    """Multi-year sample → inventory statistics, temporal trends and inventory comparison, as a batch job would."""
    folder = tmp_path / "scene"
    res = qgis_process(
        "run", "rtsfusion:samplescene", "--json", "--", "SIZE=128", "SEED=3", "MULTIYEAR=true", f"FOLDER={folder}"
    )
    assert res.returncode == 0, res.stdout + res.stderr
    results = json.loads(res.stdout)["results"]
    years = folder / "years"
    assert results["YEARS_FOLDER"] == str(years)

    html = tmp_path / "inventory.html"
    res = qgis_process(
        "run", "rtsfusion:inventorystats", "--json", "--", f"SLUMPS={years / 'slumps_2024.gpkg'}",
        f"DEM={results['DEM']}", f"OPTICAL={results['OPTICAL']}", f"OUTPUT={tmp_path / 'inventory.csv'}",
        f"HTML={html}",
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["results"]["N_SLUMPS"] == results["N_SLUMPS"]
    header = (tmp_path / "inventory.csv").read_text().splitlines()[0]
    assert header.startswith("factor,class") and "frequency_ratio" in header
    assert html.read_text().count("<img") == 5

    rasters = [f"RASTERS={years / f'{v}_{y}.tif'}" for v in ("ndvi", "lst") for y in range(2019, 2025)]
    res = qgis_process(
        "run", "rtsfusion:temporaltrends", "--json", "--", f"SLUMPS={years / 'slumps_2024.gpkg'}", *rasters,
        "PER_SLUMP=false", f"OUTPUT={tmp_path / 'trends.csv'}",
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    lines = (tmp_path / "trends.csv").read_text().splitlines()
    assert "y2019" in lines[0] and "sen_slope" in lines[0]
    assert len(lines) == 1 + 2 * 3  # all slumps pooled: ndvi and lst × slump, ring, difference

    res = qgis_process(
        "run", "rtsfusion:changedetect", "--json", "--", f"BEFORE={years / 'slumps_2019.gpkg'}",
        f"AFTER={years / 'slumps_2024.gpkg'}", f"OUTPUT={tmp_path / 'changes.gpkg'}",
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)["results"]
    assert out["N_GROWN"] + out["N_NEW"] == results["N_SLUMPS"] and out["N_VANISHED"] == 0
    assert out["AREA_CHANGE_M2"] > 0 and (tmp_path / "changes.gpkg").exists()


def test_model_study_through_qgis_process(qgis_process, training_stack, tmp_path):
    stack, slumps = training_stack
    html = tmp_path / "study.html"
    res = qgis_process(
        "run", "rtsfusion:modelstudy", "--json", "--", f"STACK={stack}", f"INVENTORY={slumps}",
        "ARCHITECTURES=0,8", "BAND_SETS=1", "EPOCHS=1", "CHIPS_PER_EPOCH=16", "DEVICE=1",
        f"OUTPUT={tmp_path / 'study.csv'}", f"HTML={html}",
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)["results"]
    assert out["RUNS"] == 2 and 0 <= out["BEST_F1"] <= 1
    lines = (tmp_path / "study.csv").read_text().splitlines()
    assert len(lines) == 3 and "f1_per_chip" in lines[0]
    assert "3-layer CNN [paper]" in lines[1] and "SA-SegFormer [paper]" in lines[2]
    assert "Learning curves" in html.read_text()


def scene_stack(qgis_process, folder, *extra):
    res = qgis_process("run", "rtsfusion:samplescene", "--json", "--", f"FOLDER={folder}", *extra)
    assert res.returncode == 0, res.stdout + res.stderr
    scene = json.loads(res.stdout)["results"]
    stack = folder / "stack.tif"
    res = qgis_process(
        "run", "rtsfusion:alignfuse", "--", f"OPTICAL={scene['OPTICAL']}", f"THERMAL={scene['THERMAL']}",
        f"DEM={scene['DEM']}", f"TEMPERATURE_SERIES={scene['TEMPERATURE_SERIES']}", f"OUTPUT={stack}",
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    return scene, stack


def test_spatial_and_temporal_transfer_through_qgis_process(qgis_process, tmp_path):
    quick = ("BAND_SET=1", "EPOCHS=1", "CHIPS_PER_EPOCH=16", "DEVICE=1")
    scene, stack = scene_stack(qgis_process, tmp_path / "regions", "SIZE=384", "SEED=16", "REGIONS=3")
    res = qgis_process(
        "run", "rtsfusion:spatialtransfer", "--json", "--", f"STACK={stack}", f"INVENTORY={scene['SLUMPS']}",
        f"REGIONS={scene['REGIONS_LAYER']}", "REGION_FIELD=region", *quick, f"OUTPUT={tmp_path / 'spatial.csv'}",
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    lines = (tmp_path / "spatial.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == [
        "held out: west", "held out: centre", "held out: east", "mean over folds"
    ]  # fmt: skip

    early, early_stack = scene_stack(qgis_process, tmp_path / "y2019", "SIZE=384", "SEED=6", "YEAR=2019")
    late, late_stack = scene_stack(qgis_process, tmp_path / "y2024", "SIZE=384", "SEED=6", "YEAR=2024")
    res = qgis_process(
        "run", "rtsfusion:temporaltransfer", "--json", "--", f"TRAIN_STACK={early_stack}",
        f"TRAIN_INVENTORY={early['SLUMPS']}", f"TEST_STACKS={late_stack}", f"TEST_INVENTORIES={late['SLUMPS']}",
        "LABELS=2019,2024", *quick, f"OUTPUT={tmp_path / 'temporal.csv'}",
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    lines = (tmp_path / "temporal.csv").read_text().splitlines()
    assert lines[1].startswith("2019 (held-out test split)") and lines[2].startswith("2019 → 2024")
    assert 0 <= json.loads(res.stdout)["results"]["MEAN_TRANSFER_F1"] <= 1


def test_shipped_train_detect_evaluate_model(qgis_process, training_stack, sample_scene, tmp_path):
    """The second modeller model: train on one scene's inventory → detect on another scene → evaluate."""
    from rts_fusion.core.synthetic import fuse_sample_scene

    test_stack = fuse_sample_scene(sample_scene, PAPER, str(tmp_path / "test_stack.tif"))
    package, html, outlines = tmp_path / "model.safetensors", tmp_path / "evaluation.html", tmp_path / "outlines.gpkg"
    res = qgis_process(
        "run",
        str(ROOT / "resources" / "models" / "train_detect_evaluate.model3"),
        "--json",
        "--",
        f"train_stack={training_stack[0]}",
        f"inventory={training_stack[1]}",
        f"test_stack={test_stack}",
        f"test_truth={sample_scene.slumps}",
        "encoder=6",  # tiny
        "epochs=1",
        "tile_size=64",
        f"train:Model package={package}",
        "train:Training report=TEMPORARY_OUTPUT",
        "detect:Slump probability=TEMPORARY_OUTPUT",
        f"evaluate:Evaluated outlines={outlines}",
        f"evaluate:Evaluation report={html}",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    results = json.loads(res.stdout)["results"]
    from rts_fusion.models.package import read_card

    assert read_card(str(package)).bands == PAPER
    assert html.is_file() and "precision" in html.read_text().lower()
    assert results["evaluate:Evaluated outlines"].split("|")[0] == str(outlines) and outlines.is_file()
