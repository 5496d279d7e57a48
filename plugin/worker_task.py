"""Run "Map thaw slumps" in a separate QGIS Python process, as a QgsTask the panel can start and cancel.

A crash or an out-of-memory in torch then ends the worker process, not QGIS (and the user's unsaved project).
The parameters are those of `rtsfusion:mapslumps`, read by that algorithm's own `map_job` in the main thread,
so the worker does exactly what the algorithm does (both call pipeline.map_slumps). Progress and log lines come
back as JSON lines; cancel asks the worker to stop (it removes its outputs), and kills it after a grace period.

Usage (the panel) — a drop-in for ``QgsProcessingAlgRunnerTask(alg, parameters, context, feedback)``::

    task = MapSlumpsWorkerTask(parameters, context, feedback=feedback)  # QgsProcessingException: bad parameters
    task.executed.connect(on_done)  # (ok, results) with the algorithm's output keys; task.error says why not
    QgsApplication.taskManager().addTask(task)
    ...
    feedback.cancel()  # or task.cancel()

The feedback (optional) receives progress and log lines (pushInfo; warnings through reportError), and cancelling
it cancels the run, as with Processing.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time

from qgis.core import (
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsTask,
)
from qgis.PyQt.QtCore import pyqtSignal

from ..pipeline import worker
from ..processing_provider.common import require_model_runtime
from ..processing_provider.map_slumps import MapSlumpsAlgorithm as _Map
from .dependencies import deps_folder, qgis_python

WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pipeline", "worker.py")
CANCEL_GRACE_S = 20.0  # after this the worker is killed and its outputs removed here


def _pump(stream, put) -> None:
    """Hand each line of a pipe to `put` until it closes (a reader thread, so the task loop never blocks)."""
    for line in stream:
        put(line)


class MapSlumpsWorkerTask(QgsTask):
    """Map thaw slumps in a worker process; emits `executed(ok, results)` when done, on the main thread."""

    executed = pyqtSignal(bool, dict)
    message = pyqtSignal(str)

    def __init__(
        self,
        parameters: dict,
        context: QgsProcessingContext | None = None,
        feedback: QgsProcessingFeedback | None = None,
        python: str | None = None,
        description: str = "Map thaw slumps (worker process)",
    ) -> None:
        """Read and check the parameters now (main thread); the run happens in `run`.

        Raises:
            QgsProcessingException: invalid parameters, missing deep-learning packages or no QGIS Python.

        """
        super().__init__(description, QgsTask.Flag.CanCancel)
        if context is None:
            context = QgsProcessingContext()
            context.setProject(QgsProject.instance())
        alg = QgsApplication.processingRegistry().createAlgorithmById("rtsfusion:mapslumps")
        if alg is None:
            raise QgsProcessingException("The algorithm rtsfusion:mapslumps is not available; is the plugin enabled?")
        ok, problem = alg.checkParameterValues(parameters, context)
        if not ok:
            raise QgsProcessingException(problem)
        self.inputs, self.package, self.outputs, self.options = alg.map_job(parameters, context)
        require_model_runtime(self.package)  # onnxruntime for an .onnx model, PyTorch for a package
        try:
            self.python = python or qgis_python()
        except RuntimeError as exc:
            raise QgsProcessingException(str(exc)) from exc
        self.feedback = feedback
        self.results: dict = {}
        self.error = ""
        self.warnings: list[str] = []
        self.process: subprocess.Popen | None = None
        self.exit_code: int | None = None

    def _command(self, job: str) -> tuple[list[str], dict]:
        env = dict(os.environ)
        if os.path.isdir(deps_folder()):
            env[worker.DEPS_ENV] = deps_folder()
        return [self.python, WORKER_SCRIPT, job], env

    def run(self) -> bool:  # background thread: no widgets, no project access
        """Start the worker, relay its progress and log lines, cancel it when asked."""
        folder = tempfile.mkdtemp(prefix="rtsfusion_job_")
        try:
            job = os.path.join(folder, "job.json")
            worker.write_job(job, self.inputs, self.package, self.outputs, self.options)
            return self._run(*self._command(job))
        except OSError as exc:
            self.error = f"The worker process could not start: {exc}"
            return False
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _run(self, cmd: list[str], env: dict) -> bool:
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # no console window on Windows
        self.process = proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            creationflags=flags,
        )
        lines: queue.Queue = queue.Queue()
        errors: list[str] = []
        reader = threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True)
        reader.start()
        threading.Thread(target=_pump, args=(proc.stderr, errors.append), daemon=True).start()
        last: dict = {}
        cancel_sent: float | None = None
        while True:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                line = None
            if line:
                last = self._handle(line) or last
            if self._canceled() and cancel_sent is None:
                cancel_sent = time.monotonic()
                with contextlib.suppress(OSError, ValueError):
                    proc.stdin.write("cancel\n")
                    proc.stdin.flush()
            if cancel_sent is not None and time.monotonic() - cancel_sent > CANCEL_GRACE_S and proc.poll() is None:
                proc.kill()
            if line is None and not reader.is_alive() and lines.empty():  # stdout closed and every line handled
                break
        self.exit_code = proc.wait()
        with contextlib.suppress(OSError):
            proc.stdin.close()
        if "result" in last and self.exit_code == worker.DONE:
            result = last["result"]
            self.warnings = list(result.get("warnings") or [])
            if self.feedback is not None:
                for warning in self.warnings:
                    self.feedback.reportError(warning, fatalError=False)
            self.results = {
                _Map.STACK: result["stack"],
                _Map.PROBABILITY: result["probability"],
                _Map.MASK: result["mask"],
                _Map.POLYGONS: result["polygons"],
                _Map.COUNT: result["count"],
            }
            return True
        if "canceled" in last:
            self.error = last["canceled"]
        elif "error" in last:
            self.error = last["error"]
        else:  # killed, crashed or out of memory: it could not clean up after itself
            self._remove_outputs()
            detail = " ".join("".join(errors).strip().splitlines()[-3:])
            why = "it was stopped after the cancel grace period" if cancel_sent else "it crashed or ran out of memory"
            self.error = (
                f"The worker process stopped unexpectedly (exit code {self.exit_code}: {why}); its partial outputs "
                f"were removed. QGIS is unaffected. {detail}"
            ).strip()
        return False

    def _canceled(self) -> bool:
        return self.isCanceled() or (self.feedback is not None and self.feedback.isCanceled())

    def _handle(self, line: str) -> dict | None:
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            self.message.emit(line.rstrip())  # a stray print from a library
            return None
        if "progress" in msg:
            self.setProgress(float(msg["progress"]))
            if self.feedback is not None:
                self.feedback.setProgress(float(msg["progress"]))
            return None
        if "log" in msg:
            self.message.emit(str(msg["log"]))
            if self.feedback is not None:
                self.feedback.pushInfo(str(msg["log"]))
            return None
        return msg

    def _remove_outputs(self) -> None:
        for path in self.outputs.paths():
            with contextlib.suppress(OSError):
                os.remove(path)

    def finished(self, result: bool) -> None:  # main thread
        """Report the outcome through `executed`."""
        if not result and not self.error:
            self.error = "Cancelled by the user." if self._canceled() else "The run failed."
        if not result and self.feedback is not None and not self._canceled():
            self.feedback.reportError(self.error, fatalError=True)
        self.executed.emit(bool(result), dict(self.results))
