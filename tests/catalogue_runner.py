"""Run bad-input catalogue cases in one QGIS start-up: `python catalogue_runner.py`, one case a line on stdin.

Each stdin line is a case {"alg": "rtsfusion:…", "params": {...}, "cwd": folder, "inputs": [paths]}. The runner
starts QGIS, Processing and the RTS Fusion provider once, then runs the cases one after another, each isolated from
the ones before: its own working folder, a fresh Processing context and feedback (processing.run makes one per
call), an empty project, the environment variables as they were at start-up, and the digests of its inputs taken
just before and just after it (so a case that touches an input is the one blamed). For each case it prints one line
`RESULT {...}`: how the run ended ("ok" with the algorithm's results, "error" for a QgsProcessingException,
"crash" for anything else, with its traceback), every message the algorithm reported, and the input digests. A case
that kills or hangs the process is caught by the test, which starts a fresh runner for the cases after it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT_MARK = "RESULT "


def _jsonable(value):
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def digest(path: str) -> str:
    """The SHA-256 of a file's bytes, or "deleted" when it is gone."""
    if not os.path.exists(path):
        return "deleted"
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main() -> None:
    """Initialise QGIS, Processing and the RTS Fusion provider once; run the cases read from stdin."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback, QgsProject

    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append(os.path.join(QgsApplication.pkgDataPath(), "python", "plugins"))
    import processing
    from processing.core.Processing import Processing

    Processing.initialize()
    module_spec = importlib.util.spec_from_file_location(
        "rts_fusion", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["rts_fusion"] = module
    module_spec.loader.exec_module(module)
    from rts_fusion.processing_provider.provider import RtsFusionProvider

    provider = RtsFusionProvider()
    QgsApplication.processingRegistry().addProvider(provider)

    class Feedback(QgsProcessingFeedback):
        def __init__(self) -> None:
            super().__init__()
            self.errors: list[str] = []
            self.log: list[str] = []

        def reportError(self, error, fatalError=False):  # noqa: N802, N803 - QGIS API names
            self.errors.append(error)

        def pushInfo(self, info):  # noqa: N802 - QGIS API name
            self.log.append(info)

        def pushWarning(self, warning):  # noqa: N802 - QGIS API name
            self.log.append(warning)

    environment = dict(os.environ)
    for line in sys.stdin:
        if not line.strip():
            continue
        spec = json.loads(line)
        os.chdir(spec["cwd"])
        before = {p: digest(p) for p in spec["inputs"]}
        feedback = Feedback()
        try:
            out = processing.run(spec["alg"], spec["params"], feedback=feedback)
            result = {"status": "ok", "results": {k: _jsonable(v) for k, v in out.items()}}
        except QgsProcessingException as exc:
            result = {"status": "error", "message": str(exc)}
        except BaseException as exc:  # noqa: BLE001 - any other exception is what the catalogue must catch
            result = {"status": "crash", "message": "".join(traceback.format_exception(exc))}
        result["errors"] = feedback.errors
        result["log"] = feedback.log
        result["inputs_before"] = before
        result["inputs_after"] = {p: digest(p) for p in spec["inputs"]}
        QgsProject.instance().clear()
        os.environ.clear()
        os.environ.update(environment)
        os.chdir(ROOT)
        sys.stdout.write(RESULT_MARK + json.dumps(result) + "\n")
        sys.stdout.flush()
    os._exit(0)  # skip QGIS's teardown: the results are written, and exit-time crashes would only add noise


if __name__ == "__main__":
    main()
