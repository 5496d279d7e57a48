"""The worker process: runs map_slumps for a job file, reporting JSON lines on stdout, cancelled through stdin.

Started as ``python <plugin>/pipeline/worker.py JOB.json`` with QGIS's own Python, so that a crash or an
out-of-memory in torch ends this process, not QGIS. Protocol, one JSON object per stdout line:

- ``{"progress": 42.0}``, ``{"log": "message"}``
- last line: ``{"result": {...MapResult...}}``, ``{"error": "message"}`` or ``{"canceled": "message"}``

Writing ``cancel`` to stdin asks the run to stop; it then removes what it wrote and exits with
CANCELED. Exit codes: 0 done, 2 an input the user must fix, 3 cancelled, 1 anything else (a bug).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import sys
import threading
import traceback
from typing import Any, TextIO

DONE, FAILED, USER_ERROR, CANCELED = 0, 1, 2, 3
DEPS_ENV = "RTS_FUSION_DEPS"  # the plugin's private package folder, applied before anything heavy is imported
PACKAGE = "rts_fusion"
_TAG = "__dataclass__"


def _package_root() -> str:
    """The package name this module was imported under (the plugin folder's name need not be rts_fusion)."""
    return __name__.rsplit(".", 2)[0] if __name__.count(".") >= 2 else PACKAGE


def to_jsonable(value: Any) -> Any:
    """A frozen dataclass tree as JSON-ready data, each dataclass tagged with its module and class."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        root = _package_root()
        module = type(value).__module__
        rel = module[len(root) + 1 :] if module.startswith(root + ".") else module
        data = {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        return {_TAG: f"{rel}:{type(value).__qualname__}", **data}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


def from_jsonable(value: Any) -> Any:
    """Rebuild what to_jsonable wrote; lists become tuples (the dataclasses hold tuples).

    Raises:
        ValueError: a tagged class outside this package's core/ and pipeline/ modules.

    """
    if isinstance(value, list):
        return tuple(from_jsonable(v) for v in value)
    if isinstance(value, dict) and _TAG in value:
        module, name = value[_TAG].split(":")
        if module.split(".")[0] not in ("core", "pipeline"):
            raise ValueError(f"A job may only hold core and pipeline settings, not {value[_TAG]}.")
        cls = getattr(importlib.import_module(f"{_package_root()}.{module}"), name)
        return cls(**{k: from_jsonable(v) for k, v in value.items() if k != _TAG})
    if isinstance(value, dict):
        return {k: from_jsonable(v) for k, v in value.items()}
    return value


def write_job(path: str, inputs, package: str, outputs, options) -> None:
    """Write a map_slumps job file for the worker."""
    job = {"inputs": inputs, "package": package, "outputs": outputs, "options": options}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_jsonable(job), f, indent=1)


def read_job(path: str) -> dict:
    """Read a job file written by write_job."""
    with open(path, encoding="utf-8") as f:
        return from_jsonable(json.load(f))


class _Reporter:
    """JSON lines on stdout, flushed at once, never more often than the caller's progress changes by 0.5 %."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.last = -1.0
        self.lock = threading.Lock()

    def send(self, **message: Any) -> None:
        with self.lock:
            self.stream.write(json.dumps(message) + "\n")
            self.stream.flush()

    def progress(self, value: float) -> None:
        if value >= 100.0 or abs(value - self.last) >= 0.5:
            self.last = value
            self.send(progress=round(float(value), 2))


def _watch_stdin(stop: threading.Event, stream: TextIO) -> None:
    """Set `stop` when the parent writes 'cancel' (a parent that went away breaks stdout, which also stops us)."""
    for line in stream:
        if line.strip().lower() == "cancel":
            stop.set()
            return


def run(job_path: str, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Run one job; returns the exit code."""
    from ..core.errors import OperationCanceled, RtsFusionError
    from .map_slumps import map_slumps

    out = _Reporter(stdout or sys.stdout)
    stop = threading.Event()
    threading.Thread(target=_watch_stdin, args=(stop, stdin or sys.stdin), daemon=True).start()
    try:
        job = read_job(job_path)
        result = map_slumps(
            job["inputs"],
            job["package"],
            job["outputs"],
            job["options"],
            progress=out.progress,
            is_canceled=stop.is_set,
            log=lambda m: out.send(log=m),
        )
    except OperationCanceled as exc:
        out.send(canceled=f"Cancelled by the user; outputs were removed. ({exc})")
        return CANCELED
    except RtsFusionError as exc:
        out.send(error=str(exc))
        return USER_ERROR
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which shows it; the process ends anyway
        out.send(error=f"The worker failed: {exc.__class__.__name__}: {exc}", traceback=traceback.format_exc())
        return FAILED
    out.send(result=to_jsonable(result))
    return DONE


def _bootstrap() -> Any:
    """Run as a script: apply the dependency folder, import the plugin package by path, return its worker."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]  # never import siblings top-level
    spec = importlib.util.spec_from_file_location(
        os.path.join(here, "environment.py"), os.path.join(here, "environment.py")
    )
    env = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(env)
    if os.environ.get(DEPS_ENV):
        env.prepend_deps_folder(os.environ[DEPS_ENV])
    if PACKAGE not in sys.modules:
        pkg_spec = importlib.util.spec_from_file_location(
            PACKAGE, os.path.join(root, "__init__.py"), submodule_search_locations=[root]
        )
        package = importlib.util.module_from_spec(pkg_spec)
        sys.modules[PACKAGE] = package
        pkg_spec.loader.exec_module(package)
    return importlib.import_module(f"{PACKAGE}.pipeline.worker")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: worker.py JOB.json\n")
        sys.exit(FAILED)
    sys.exit(_bootstrap().run(sys.argv[1]))
