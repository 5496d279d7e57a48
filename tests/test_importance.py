"""Per-band importance: a band that carries the signal ranks first, a noise band near zero."""

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

torch = pytest.importorskip("torch")

from conftest import tiny_train_config, write_raster  # noqa: E402
from rts_fusion.core.errors import RtsFusionError  # noqa: E402
from rts_fusion.core.vector import PolygonRecord, write_polygons  # noqa: E402
from rts_fusion.models.importance import ImportanceOptions, band_importance, write_csv  # noqa: E402
from rts_fusion.models.package import load_package  # noqa: E402
from rts_fusion.models.train import train_from_stack  # noqa: E402

BANDS = ("BLUE", "NDVI", "DEM")
SIZE = 256
ORIGIN = (500000.0, 3900000.0)
CRS = rasterio.crs.CRS.from_epsg(32646)


@pytest.fixture(scope="module")
def signal_scene(tmp_path_factory):
    """BLUE is bright exactly on the slumps; NDVI and DEM are pure noise. Returns (stack, truth, model)."""
    folder = tmp_path_factory.mktemp("importance")
    rng = np.random.default_rng(3)
    truth = np.zeros((SIZE, SIZE), bool)
    records = []
    for _ in range(24):
        r, c = rng.integers(4, SIZE - 24, 2)
        h, w = rng.integers(8, 20, 2)
        truth[r : r + h, c : c + w] = True
        x0, y0 = ORIGIN[0] + 10 * c, ORIGIN[1] - 10 * r
        x1, y1 = x0 + 10 * w, y0 - 10 * h
        records.append(PolygonRecord([(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)], {"id": len(records)}))
    slumps = str(folder / "slumps.gpkg")
    write_polygons(slumps, "slumps", CRS.to_wkt(), records)
    data = np.stack(
        [
            truth * 0.3 + 0.05 + 0.02 * rng.standard_normal((SIZE, SIZE)),
            rng.standard_normal((SIZE, SIZE)) * 0.3,
            4700 + 20 * rng.standard_normal((SIZE, SIZE)),
        ]
    ).astype(np.float32)
    stack = str(folder / "stack.tif")
    write_raster(stack, data, names=BANDS, nodata=-9999.0, transform=from_origin(*ORIGIN, 10, 10))
    torch.set_num_threads(2)
    cfg = tiny_train_config(decoder_dim=16, epochs=6, patience=6, seed=0, lr=2e-3, max_lr=5e-3)
    package = train_from_stack(stack, slumps, str(folder / "m.safetensors"), cfg).package
    return stack, slumps, package


def test_signal_band_ranks_first_and_noise_near_zero(signal_scene, tmp_path):
    stack, slumps, package = signal_scene
    model, card = load_package(package)
    res = band_importance(model, card, stack, slumps, options=ImportanceOptions(repeats=2, seed=1, device="cpu"))
    assert res.baseline["f1"] > 0.6  # the model learnt the signal
    perm = {r["band"]: r for r in res.rows if r["method"] == "permutation" and r["kind"] == "band"}
    assert perm["BLUE"]["rank"] == 1 and perm["BLUE"]["f1_drop"] > 0.3
    assert abs(perm["NDVI"]["f1_drop"]) < 0.05 and abs(perm["DEM"]["f1_drop"]) < 0.05
    sal = {r["band"]: r for r in res.rows if r["method"] == "saliency" and r["kind"] == "band"}
    assert sal["BLUE"]["rank"] == 1 and sal["BLUE"]["importance"] > 0.5
    assert sum(r["importance"] for r in sal.values()) == pytest.approx(1.0, abs=1e-4)
    groups = {r["band"]: r for r in res.rows if r["method"] == "permutation" and r["kind"] == "group"}
    assert groups["optical"]["f1_drop"] > groups["auxiliary"]["f1_drop"]  # BLUE and NDVI vs DEM
    # Deterministic for a seed.
    again = band_importance(model, card, stack, slumps, options=ImportanceOptions("permutation", 2, 1, "cpu"))
    first = [r for r in res.rows if r["method"] == "permutation"]
    assert [r["band"] for r in again.rows] == [r["band"] for r in first]
    assert [r["f1_drop"] for r in again.rows] == pytest.approx([r["f1_drop"] for r in first], abs=1e-6)
    out = tmp_path / "imp.csv"
    write_csv(str(out), res)
    assert out.read_text().splitlines()[0].startswith("rank,method,kind,band")


def test_area_and_band_errors(signal_scene, tmp_path):
    stack, slumps, package = signal_scene
    model, card = load_package(package)
    with pytest.raises(RtsFusionError, match="more than"):
        band_importance(model, card, stack, slumps, options=ImportanceOptions(max_pixels=1000, device="cpu"))
    with pytest.raises(RtsFusionError, match="method"):
        band_importance(model, card, stack, slumps, options=ImportanceOptions(method="shap", device="cpu"))
    far = str(tmp_path / "far.gpkg")
    write_polygons(far, "aoi", CRS.to_wkt(), [PolygonRecord([(0, 0), (10, 0), (10, 10), (0, 0)], {"id": 1})])
    with pytest.raises(RtsFusionError, match="does not overlap"):
        band_importance(model, card, stack, slumps, aoi_path=far, options=ImportanceOptions(device="cpu"))


def test_band_importance_algorithm_writes_table_csv_and_chart(provider, signal_scene, tmp_path):
    import processing
    from qgis.core import QgsProject, QgsVectorLayer

    stack, slumps, package = signal_scene
    csv_path, chart = str(tmp_path / "imp.csv"), str(tmp_path / "imp.png")
    res = processing.run(
        "rtsfusion:bandimportance",
        {"MODEL": package, "STACK": stack, "TRUTH": slumps, "METHOD": 1, "REPEATS": 1, "DEVICE": 1,
         "OUTPUT": "memory:", "CSV": csv_path, "CHART": chart},
    )  # fmt: skip
    assert res["TOP_BAND"] == "BLUE" and res["BASELINE_F1"] > 0.6
    table = res["OUTPUT"]
    table = table if isinstance(table, QgsVectorLayer) else QgsProject.instance().mapLayer(table)
    rows = [f.attributes() for f in table.getFeatures()]
    names = [f.name() for f in table.fields()]
    assert [r[names.index("band")] for r in rows][:1] == ["BLUE"]
    assert {r[names.index("method")] for r in rows} == {"permutation"}
    assert open(chart, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert len(open(csv_path).read().splitlines()) == 1 + len(rows)
