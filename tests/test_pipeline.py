import json
import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from osgeo import ogr
from rts_fusion.core.errors import OperationCanceled, RtsFusionError
from rts_fusion.core.polygons import PolygonizeOptions, label_objects, read_detections
from rts_fusion.core.synthetic import sample_inputs
from rts_fusion.pipeline import worker
from rts_fusion.pipeline.map_slumps import MapInputs, MapOptions, MapOutputs, map_slumps

WORKER = os.path.join(os.path.dirname(worker.__file__), "worker.py")


def feature_count(path: str) -> int:
    ds = ogr.Open(path)
    return ds.GetLayer(0).GetFeatureCount()


def outputs_in(folder, polygons="slumps.gpkg") -> MapOutputs:
    return MapOutputs(*(str(folder / n) for n in ("stack.tif", "prob.tif", "mask.tif", polygons)))


@pytest.mark.end_to_end
def test_map_slumps_thresholds_once_and_polygonises_the_mask(training_scene, tiny_model, tmp_path):
    outputs = outputs_in(tmp_path)
    seen = []
    result = map_slumps(
        MapInputs(sample_inputs(training_scene)),
        tiny_model,
        outputs,
        MapOptions(device="cpu", threshold=0.3, min_area_m2=500),
        progress=seen.append,
    )
    assert seen == sorted(seen) and seen[-1] == 100.0  # one overall progress, never going back
    with rasterio.open(result.stack) as s, rasterio.open(result.probability) as p, rasterio.open(result.mask) as m:
        assert tuple(s.descriptions) == result.bands and len(result.bands) == 13
        prob, mask = p.read(1), m.read(1)
    valid = prob >= 0
    np.testing.assert_array_equal(mask[valid], (prob[valid] >= 0.3).astype(np.uint8))  # the mask: threshold 0.3
    assert result.threshold == 0.3 and result.slump_pixels == int((mask == 1).sum()) > 0
    # The polygons are exactly the mask's cleaned objects, with the probability's statistics.
    _, expected = label_objects(read_detections(result.mask), PolygonizeOptions(min_area_m2=500, fill_holes_m2=250))
    ds = ogr.Open(result.polygons)  # the layer lives only as long as its dataset
    layer = ds.GetLayer(0)
    assert result.count == layer.GetFeatureCount() == expected > 0
    for f in layer:
        assert 0.3 <= f["prob_max"] <= 1 and f["prob_mean"] <= f["prob_max"] and f["area_m2"] >= 500


@pytest.mark.end_to_end
def test_map_slumps_converts_other_vector_formats(training_scene, tiny_model, tmp_path):
    outputs = outputs_in(tmp_path, "slumps.geojson")
    result = map_slumps(
        MapInputs(sample_inputs(training_scene)), tiny_model, outputs, MapOptions(device="cpu", min_area_m2=500)
    )
    assert feature_count(result.polygons) == result.count
    assert not (tmp_path / "slumps_tmp.gpkg").exists()


def test_a_failed_vector_conversion_names_the_users_file_not_the_temporary_one(tmp_path):
    from osgeo import ogr
    from rts_fusion.core.errors import RtsFusionError
    from rts_fusion.pipeline.map_slumps import write_vector

    gpkg = str(tmp_path / "slumps.gpkg")
    ogr.GetDriverByName("GPKG").CreateDataSource(gpkg).CreateLayer("thaw_slumps", geom_type=ogr.wkbPolygon)
    temporary = str(tmp_path / ".out.1234.part.parquet")
    with pytest.raises(RtsFusionError, match=r"slump polygons to '/.*/out\.parquet'") as err:
        write_vector(gpkg, temporary, str(tmp_path / "out.parquet"), "NoSuchFormat")
    assert ".part" not in str(err.value)


@pytest.mark.end_to_end
def test_cancelled_map_slumps_leaves_nothing(training_scene, tiny_model, tmp_path):
    outputs = outputs_in(tmp_path)
    progress = []
    with pytest.raises(OperationCanceled):
        map_slumps(
            MapInputs(sample_inputs(training_scene)),
            tiny_model,
            outputs,
            MapOptions(device="cpu"),
            progress=progress.append,
            is_canceled=lambda: bool(progress) and progress[-1] > 40,  # during detection, the stack finished
        )
    assert not any(os.path.exists(p) for p in outputs.paths())


def test_map_slumps_names_a_bad_model(training_scene, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    with pytest.raises(RtsFusionError, match="bad.safetensors"):
        map_slumps(MapInputs(sample_inputs(training_scene)), str(bad), outputs_in(tmp_path))
    with pytest.raises(RtsFusionError, match="threshold"):
        MapOptions(threshold=1.5)


def test_job_round_trip(training_scene, tmp_path):
    path = str(tmp_path / "job.json")
    inputs, options = MapInputs(sample_inputs(training_scene)), MapOptions(device="cpu", threshold=0.4)
    worker.write_job(path, inputs, "m.safetensors", outputs_in(tmp_path), options)
    job = worker.read_job(path)
    assert job["inputs"] == inputs and job["options"] == options and job["package"] == "m.safetensors"
    with open(path) as f:
        data = json.load(f)
    data["options"]["__dataclass__"] = "models.train:TrainConfig"
    with open(path, "w") as f:
        json.dump(data, f)
    with pytest.raises(ValueError, match="only hold core and pipeline"):
        worker.read_job(path)


def start_worker(job: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, WORKER, job], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.end_to_end
def test_worker_process_maps_and_reports(training_scene, tiny_model, tmp_path):
    job, outputs = str(tmp_path / "job.json"), outputs_in(tmp_path)
    worker.write_job(
        job, MapInputs(sample_inputs(training_scene)), tiny_model, outputs, MapOptions(device="cpu", min_area_m2=500)
    )
    proc = start_worker(job)
    out, err = proc.communicate(timeout=300)
    messages = [json.loads(line) for line in out.splitlines()]
    assert proc.returncode == worker.DONE, err
    progress = [m["progress"] for m in messages if "progress" in m]
    assert progress == sorted(progress) and progress[-1] == 100.0 and len(progress) > 5
    result = messages[-1]["result"]
    assert result["polygons"] == outputs.polygons and result["count"] == feature_count(outputs.polygons)
    assert any("thaw slumps mapped" in m.get("log", "") for m in messages)


@pytest.mark.end_to_end
def test_worker_process_cancel_and_user_error(training_scene, tiny_model, tmp_path):
    job, outputs = str(tmp_path / "job.json"), outputs_in(tmp_path)
    worker.write_job(job, MapInputs(sample_inputs(training_scene)), tiny_model, outputs, MapOptions(device="cpu"))
    proc = start_worker(job)
    for line in proc.stdout:  # cancel once it is working
        if json.loads(line).get("progress", 0) > 5:
            break
    proc.stdin.write("cancel\n")
    proc.stdin.flush()
    rest = proc.stdout.read().splitlines()
    assert proc.wait(timeout=120) == worker.CANCELED
    assert "Cancelled" in json.loads(rest[-1])["canceled"]
    assert not any(os.path.exists(p) for p in outputs.paths())
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    worker.write_job(job, MapInputs(sample_inputs(training_scene)), str(bad), outputs, MapOptions(device="cpu"))
    proc = start_worker(job)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == worker.USER_ERROR
    assert "bad.safetensors" in json.loads(out.splitlines()[-1])["error"]
