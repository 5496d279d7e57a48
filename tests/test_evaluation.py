import numpy as np
import pytest
import rasterio
from affine import Affine
from osgeo import ogr
from rasterio.crs import CRS
from rts_fusion.core.errors import RtsFusionError
from rts_fusion.core.evaluation import evaluate_detections, match_objects, metric_rows, write_matches
from rts_fusion.core.metrics import Confusion, scores
from rts_fusion.core.vector import PolygonRecord, write_polygons

T = Affine(10, 0, 0, 0, -10, 1000)
WKT = CRS.from_epsg(32646).to_wkt()


def box(c0, r0, c1, r1):
    """Pixel box [c0, c1) × [r0, r1) as a map ring."""
    x0, y0 = T * (c0, r0)
    x1, y1 = T * (c1, r1)
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]


def polys(path, boxes):
    write_polygons(str(path), "p", WKT, [PolygonRecord(box(*b), {"id": i}) for i, b in enumerate(boxes)])
    return str(path)


def mask(path, boxes, shape=(100, 100)):
    m = np.zeros(shape, np.uint8)
    for c0, r0, c1, r1 in boxes:
        m[r0:r1, c0:c1] = 1
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=shape[1],
        height=shape[0],
        count=1,
        dtype="uint8",
        crs=CRS.from_wkt(WKT),
        transform=T,
    ) as dst:
        dst.write(m[None])
    return str(path)


TRUTH = [(10, 10, 30, 30), (50, 50, 60, 60)]


def run(tmp_path, pred_boxes, **kw):
    truth = polys(tmp_path / "truth.gpkg", TRUTH)
    pred = mask(tmp_path / "pred.tif", pred_boxes)
    return evaluate_detections(pred, truth, **kw).evaluation


def test_scores_formulae():
    s = scores(Confusion(tp=8, fp=2, fn=4, tn=86))
    assert s["precision"] == pytest.approx(0.8) and s["recall"] == pytest.approx(8 / 12)
    assert s["f1"] == pytest.approx(16 / 22) and s["iou"] == pytest.approx(8 / 14)
    assert s["overall_accuracy"] == pytest.approx(0.94)
    pe = (10 * 12 + 90 * 88) / 100**2
    assert s["kappa"] == pytest.approx((0.94 - pe) / (1 - pe))
    assert scores(Confusion(tn=10))["f1"] == 1.0


def test_perfect(tmp_path):
    ev = run(tmp_path, TRUTH)
    assert ev.pixel["pooled"]["f1"] == 1.0 and ev.pixel["pooled"]["kappa"] == pytest.approx(1.0)
    assert ev.objects["one_to_one"]["f1"] == 1.0 and ev.objects["any_overlap"]["f1"] == 1.0


def test_empty_prediction(tmp_path):
    ev = run(tmp_path, [])
    assert ev.pixel["pooled"]["recall"] == 0 and ev.pixel["pooled"]["f1"] == 0
    assert ev.objects["one_to_one"]["recall"] == 0 and ev.objects["true_objects"] == 2
    assert all(r["status"] == "FN" for r in ev.truth)


def test_shifted_detection(tmp_path):
    # First box shifted by 5 px: IoU = 15·20 / (2·400 − 300) = 0.6; second shifted by 5 of 10: IoU 1/3.
    ev = run(tmp_path, [(15, 10, 35, 30), (55, 50, 65, 60)])
    one = ev.objects["one_to_one"]
    assert one["tp"] == 1 and one["fp"] == 1 and one["fn"] == 1
    assert ev.objects["any_overlap"]["f1"] == 1.0
    statuses = {r["id"]: (r["status"], r["iou"]) for r in ev.predicted}
    assert statuses[1] == ("TP", pytest.approx(0.6)) and statuses[2][0] == "FP"
    assert ev.pixel["pooled"]["iou"] == pytest.approx((300 + 50) / (500 + 150))


def test_split_detection(tmp_path):
    # One true slump found as two halves: neither half reaches IoU 0.5; the loose rule counts both.
    ev = run(tmp_path, [(10, 10, 19, 30), (21, 10, 30, 30)] + [(50, 50, 60, 60)])  # IoU 180/400 each
    assert ev.objects["one_to_one"]["tp"] == 1 and ev.objects["one_to_one"]["fp"] == 2
    assert ev.objects["any_overlap"]["precision"] == 1.0 and ev.pixel["pooled"]["recall"] == pytest.approx(460 / 500)


def test_merged_detection(tmp_path):
    truth = polys(tmp_path / "t.gpkg", [(10, 10, 20, 20), (22, 10, 32, 20)])
    pred = mask(tmp_path / "p.tif", [(10, 10, 32, 20)])  # one blob over both
    ev = evaluate_detections(pred, truth).evaluation
    one = ev.objects["one_to_one"]
    assert one["tp"] == 0 and one["fn"] == 2 and ev.objects["any_overlap"]["recall"] == 1.0


def test_polygon_predictions_aoi_and_per_chip(tmp_path):
    truth = polys(tmp_path / "t.gpkg", TRUTH)
    pred = polys(tmp_path / "p.gpkg", [(10, 10, 30, 30)])
    ref = mask(tmp_path / "ref.tif", [])
    aoi = polys(tmp_path / "aoi.gpkg", [(0, 0, 40, 40)])
    ev = evaluate_detections(pred, truth, reference=ref, aoi=aoi, chip_size=50).evaluation
    assert ev.pixel["pooled"]["f1"] == 1.0 and ev.objects["true_objects"] == 1  # second truth box outside AOI
    ev = evaluate_detections(pred, truth, reference=ref, chip_size=50).evaluation
    assert ev.chips == 2 and ev.pixel["per_chip"]["recall"] == pytest.approx(0.5)
    assert ev.pixel["pooled"]["recall"] == pytest.approx(400 / 500)
    rows = metric_rows(ev)
    assert {r["metric"] for r in rows} >= {"pixel_f1", "object_one_to_one_f1", "object_any_overlap_recall"}


def test_match_table_written_as_layers(tmp_path):
    truth = polys(tmp_path / "t.gpkg", TRUTH)
    pred = mask(tmp_path / "p.tif", [(15, 10, 35, 30)])
    result = evaluate_detections(pred, truth)
    out = str(tmp_path / "m.gpkg")
    write_matches(out, result)
    ds = ogr.Open(out)
    statuses = sorted(f.GetField("status") for f in ds.GetLayerByName("ground_truth"))
    assert statuses == ["FN", "TP"]
    assert [f.GetField("status") for f in ds.GetLayerByName("predictions")] == ["TP"]


def test_match_objects_directly():
    pred = np.array([[1, 1, 0, 2]])
    truth = np.array([[1, 1, 0, 0]])
    summary, prow, trow = match_objects(pred, truth, 0.5)
    assert summary["one_to_one"]["precision"] == 0.5 and summary["one_to_one"]["recall"] == 1.0


def test_real_expert_outlines_agree_partially(shared_data, tmp_path):
    """Two of the twelve Peel experts against each other: real polygons, agreement well below perfect."""
    base = shared_data / "peel_labelling_experiment"
    ref = str(next(base.glob("S2_*.tif")))
    a, b = str(base / "labels" / "user01_peel.shp"), str(base / "labels" / "user02_peel.shp")
    ev = evaluate_detections(a, b, reference=ref).evaluation
    any_f1 = ev.objects["any_overlap"]["f1"]
    assert 0.3 < any_f1 <= 1.0 and ev.objects["true_objects"] >= 5
    assert 0.2 < ev.pixel["pooled"]["iou"] < 0.99


def test_empty_truth_is_an_error(tmp_path):
    truth = polys(tmp_path / "t.gpkg", [])
    pred = mask(tmp_path / "p.tif", TRUTH)
    with pytest.raises(RtsFusionError, match="t.gpkg' holds no polygon"):
        evaluate_detections(pred, truth)


def test_truth_off_the_detections_is_an_error(tmp_path):
    far = [(c0 + 500, r0, c1 + 500, r1) for c0, r0, c1, r1 in TRUTH]  # 5 km east of the raster
    truth = polys(tmp_path / "t.gpkg", far)
    pred = mask(tmp_path / "p.tif", TRUTH)
    with pytest.raises(RtsFusionError, match="None of the 2 ground-truth polygons of 't.gpkg'.*do not overlap"):
        evaluate_detections(pred, truth)


def test_partly_outside_and_no_overlap_are_warnings(tmp_path):
    truth = polys(tmp_path / "t.gpkg", [*TRUTH, (500, 10, 510, 20)])
    ev = evaluate_detections(mask(tmp_path / "p.tif", [(70, 70, 80, 80)]), truth).evaluation
    assert any("1 of the 3 ground-truth polygons" in w for w in ev.warnings)
    assert any("No detection overlaps" in w for w in ev.warnings)
    assert ev.objects["true_objects"] == 2
    rows = metric_rows(ev)
    assert [r["metric"] for r in rows[:2]] == ["warning", "warning"] and rows[0]["note"]
    assert not evaluate_detections(mask(tmp_path / "q.tif", TRUTH), truth).evaluation.warnings[1:]


LAYOUTS = [  # boxes in file order, objects seen without and with the AOI (0, 0, 40, 40)
    ([(10, 10, 30, 30), (50, 50, 60, 60), (80, 80, 90, 90)], 3, 1),
    ([(80, 80, 90, 90), (10, 10, 30, 30), (50, 50, 60, 60)], 3, 1),
    ([(50, 50, 60, 60), (80, 80, 90, 90), (10, 10, 30, 30)], 3, 1),
    ([(10, 10, 30, 30), (15, 15, 25, 25), (80, 80, 90, 90)], 3, 2),  # second drawn over the first
    ([(15, 15, 25, 25), (10, 10, 30, 30), (80, 80, 90, 90)], 2, 1),  # first wholly covered by a later one
]


@pytest.mark.parametrize(("boxes", "n_all", "n_aoi"), LAYOUTS)
@pytest.mark.parametrize("with_aoi", [False, True])
def test_any_layer_against_itself_scores_one(tmp_path, boxes, n_all, n_aoi, with_aoi):
    """Whatever the order of the objects in the file, and whether some lie outside the AOI, self-scores are 1."""
    layer = polys(tmp_path / "l.gpkg", boxes)
    ref = mask(tmp_path / "ref.tif", [])
    aoi = polys(tmp_path / "aoi.gpkg", [(0, 0, 40, 40)]) if with_aoi else None
    for kw in ({"reference": ref}, {"pixel_size": 10.0}, {"pixel_size": 5.0}):
        ev = evaluate_detections(layer, layer, aoi=aoi, **kw).evaluation
        assert ev.pixel["pooled"]["f1"] == 1.0 and ev.pixel["pooled"]["iou"] == 1.0
        for rule in ("one_to_one", "any_overlap"):
            assert ev.objects[rule]["f1"] == 1.0 and ev.objects[rule]["precision"] == 1.0
        assert ev.objects["one_to_one"]["fp"] == 0 and ev.objects["one_to_one"]["fn"] == 0
        assert ev.objects["true_objects"] == ev.objects["predicted_objects"] == (n_aoi if with_aoi else n_all)
    if n_all == len(boxes) == len({b[0] // 40 for b in boxes}):  # disjoint boxes: a mask of them, every order
        ev = evaluate_detections(mask(tmp_path / "m.tif", boxes), layer, aoi=aoi).evaluation
        assert ev.objects["one_to_one"]["f1"] == 1.0 and ev.pixel["pooled"]["f1"] == 1.0


def test_objects_outside_the_aoi_never_count(tmp_path):
    # Predicted objects outside the AOI, before and after the one inside: none of them is a false positive.
    truth = polys(tmp_path / "t.gpkg", [(10, 10, 30, 30)])
    pred = mask(tmp_path / "p.tif", [(2, 60, 8, 70), (10, 10, 30, 30), (60, 60, 70, 70)])
    aoi = polys(tmp_path / "aoi.gpkg", [(0, 0, 40, 40)])
    result = evaluate_detections(pred, truth, aoi=aoi)
    ev = result.evaluation
    assert ev.objects["predicted_objects"] == 1 and ev.objects["one_to_one"]["precision"] == 1.0
    out = str(tmp_path / "m.gpkg")
    write_matches(out, result)
    ds = ogr.Open(out)
    assert [f.GetField("status") for f in ds.GetLayerByName("predictions")] == ["TP"]


def test_polygon_detections_on_a_pixel_size_grid(tmp_path):
    truth = polys(tmp_path / "t.gpkg", TRUTH)
    pred = polys(tmp_path / "p.gpkg", [(15, 10, 35, 30)])
    ev = evaluate_detections(pred, truth, pixel_size=10.0).evaluation
    assert ev.pixel["pooled"]["iou"] == pytest.approx(300 / (300 + 100 + 200))  # TP 300, FP 100, FN 100 + 100
    assert ev.objects["one_to_one"]["tp"] == 1 and ev.objects["true_objects"] == 2
    with pytest.raises(RtsFusionError, match="reference raster .* or a pixel size"):
        evaluate_detections(pred, truth)
    with pytest.raises(RtsFusionError, match="pixel size of 0.001 metre.*too large"):
        evaluate_detections(pred, truth, pixel_size=0.001)


def test_per_chip_object_counts_follow_the_connectivity(tmp_path):
    """The study's per-chip object count: two boxes meeting at a corner are one object with 8-connectivity."""
    truth = polys(tmp_path / "t.gpkg", [(10, 10, 20, 20)])
    pred = mask(tmp_path / "p.tif", [(10, 10, 20, 20), (20, 20, 30, 30)])  # the second touches only a corner
    eight = evaluate_detections(pred, truth, chip_size=50).evaluation
    four = evaluate_detections(pred, truth, chip_size=50, connectivity=4).evaluation
    assert eight.objects["per_chip"]["connectivity"] == 8
    assert (eight.objects["per_chip"]["tp"], eight.objects["per_chip"]["fp"]) == (1, 0)
    assert (four.objects["per_chip"]["tp"], four.objects["per_chip"]["fp"]) == (1, 1)
    assert four.objects["per_chip"]["precision"] == 0.5
    # Chips of 15 px cut the true box into four pieces: objects are counted per chip, as the study does.
    cut = evaluate_detections(pred, truth, chip_size=15).evaluation.objects["per_chip"]
    assert cut["tp"] == 4 and cut["fn"] == 0
    rows = {r["metric"]: r["per_chip"] for r in metric_rows(four)}
    assert rows["object_chips_4_connected_precision"] == 0.5
    with pytest.raises(RtsFusionError, match="connectivity must be 4 or 8"):
        evaluate_detections(pred, truth, connectivity=6)
