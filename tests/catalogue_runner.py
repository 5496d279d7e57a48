"""Run one case of the bad-input catalogue in a fresh process: `python catalogue_runner.py spec.json result.json`.

The spec is {"alg": "rtsfusion:…", "params": {...}}. The result records how the run ended ("ok" with the
algorithm's results, "error" for a QgsProcessingException, "crash" for anything else, with its traceback) and
every message the algorithm reported, so the test can check the message a user would read.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _jsonable(value):
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def main(spec_path: str, result_path: str) -> None:
    """Initialise QGIS, Processing and the RTS Fusion provider; run the case; write the result as JSON."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    spec = json.loads(Path(spec_path).read_text())
    from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback

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

    feedback = Feedback()
    result: dict = {}
    try:
        out = processing.run(spec["alg"], spec["params"], feedback=feedback)
        result = {"status": "ok", "results": {k: _jsonable(v) for k, v in out.items()}}
    except QgsProcessingException as exc:
        result = {"status": "error", "message": str(exc)}
    except BaseException as exc:  # noqa: BLE001 - any other exception is what the catalogue must catch
        result = {"status": "crash", "message": "".join(traceback.format_exception(exc))}
    result["errors"] = feedback.errors
    result["log"] = feedback.log
    Path(result_path).write_text(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)  # skip QGIS's teardown: the result is written, and exit-time crashes would only add noise


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
