"""The panel's worker-process runner: same parameters as rtsfusion:mapslumps, progress, cancel, crash."""

import os
import sys

import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback
from rts_fusion.plugin.worker_task import MapSlumpsWorkerTask


def run_sync(task: MapSlumpsWorkerTask) -> tuple[bool, dict]:
    done = []
    task.executed.connect(lambda ok, results: done.append((ok, results)))
    task.finished(task.run())  # what the task manager does, without its thread
    return done[0]


@pytest.mark.end_to_end
def test_worker_task_maps_like_the_algorithm(provider, mapslumps_parameters):
    params = mapslumps_parameters
    task = MapSlumpsWorkerTask(params, python=sys.executable)
    progress, messages = [], []
    task.progressChanged.connect(progress.append)
    task.message.connect(messages.append)
    ok, results = run_sync(task)
    assert ok, task.error
    assert results["POLYGONS"] == params["POLYGONS"] and results["COUNT"] > 0
    assert all(os.path.exists(results[k]) for k in ("STACK", "PROBABILITY", "MASK", "POLYGONS"))
    assert progress[-1] == 100.0 and any("thaw slumps mapped" in m for m in messages)


@pytest.mark.end_to_end
def test_worker_task_cancel_and_crash_leave_nothing(provider, mapslumps_parameters):
    params = mapslumps_parameters
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
