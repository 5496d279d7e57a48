"""The panel's worker-process runner: same parameters as rtsfusion:mapslumps, progress, cancel, crash."""

import os
import sys

import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback
from rts_fusion.plugin.worker_task import MapSlumpsWorkerTask


def scene_parameters(training_stack, tiny_model, folder) -> dict:
    scene = os.path.dirname(training_stack[0])  # the sample scene the tiny model was trained on
    return {
        "MODEL": tiny_model,
        "OPTICAL": os.path.join(scene, "optical.tif"),
        "THERMAL": os.path.join(scene, "thermal.tif"),
        "DEM": os.path.join(scene, "dem.tif"),
        "TEMPERATURE_SERIES": os.path.join(scene, "temperature_series.tif"),
        "DEVICE": 1,
        "MIN_AREA": 500,
        "STACK": str(folder / "stack.tif"),
        "PROBABILITY": str(folder / "p.tif"),
        "MASK": str(folder / "m.tif"),
        "POLYGONS": str(folder / "slumps.gpkg"),
    }


def run_sync(task: MapSlumpsWorkerTask) -> tuple[bool, dict]:
    done = []
    task.executed.connect(lambda ok, results: done.append((ok, results)))
    task.finished(task.run())  # what the task manager does, without its thread
    return done[0]


def test_worker_task_maps_like_the_algorithm(provider, training_stack, tiny_model, tmp_path):
    task = MapSlumpsWorkerTask(scene_parameters(training_stack, tiny_model, tmp_path), python=sys.executable)
    progress, messages = [], []
    task.progressChanged.connect(progress.append)
    task.message.connect(messages.append)
    ok, results = run_sync(task)
    assert ok, task.error
    assert results["POLYGONS"] == str(tmp_path / "slumps.gpkg") and results["COUNT"] > 0
    assert all(os.path.exists(results[k]) for k in ("STACK", "PROBABILITY", "MASK", "POLYGONS"))
    assert progress[-1] == 100.0 and any("thaw slumps mapped" in m for m in messages)


def test_worker_task_cancel_and_crash_leave_nothing(provider, training_stack, tiny_model, tmp_path):
    params = scene_parameters(training_stack, tiny_model, tmp_path)
    feedback = QgsProcessingFeedback()  # cancelled like a Processing run: the panel's drop-in use
    task = MapSlumpsWorkerTask(params, feedback=feedback, python=sys.executable)
    feedback.progressChanged.connect(lambda p: p > 5 and feedback.cancel())
    ok, _ = run_sync(task)
    assert not ok and "Cancelled" in task.error
    assert not any(os.path.exists(params[k]) for k in ("STACK", "PROBABILITY", "MASK", "POLYGONS"))
    # A worker that dies (as torch would on a segfault or the OOM killer) ends the task, not this process.
    task = MapSlumpsWorkerTask(params, python=sys.executable)
    task.progressChanged.connect(lambda p: p > 5 and task.process.kill())
    ok, _ = run_sync(task)
    assert not ok and "stopped unexpectedly" in task.error and "QGIS is unaffected" in task.error
    assert not any(os.path.exists(params[k]) for k in ("STACK", "PROBABILITY", "MASK", "POLYGONS"))


def test_worker_task_refuses_bad_parameters_at_once(provider, tmp_path):
    with pytest.raises(QgsProcessingException):
        MapSlumpsWorkerTask({"MODEL": str(tmp_path / "none.safetensors"), "OPTICAL": None})
