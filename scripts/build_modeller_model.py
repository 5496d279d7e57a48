"""Regenerate resources/models/map_thaw_slumps.model3: align → detect → polygonise for the graphical modeller.

Run with the project's venv: .venv/bin/python scripts/build_modeller_model.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "resources" / "models" / "map_thaw_slumps.model3"


def build(path: Path) -> None:
    """Write the model file."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterFile,
        QgsProcessingParameterRasterLayer,
    )
    from qgis.PyQt.QtCore import QPointF

    model = QgsProcessingModelAlgorithm("Map thaw slumps (align, detect, polygonise)", "RTS Fusion", "mapthawslumps")
    model.setHelpContent(
        {
            "ALG_DESC": "Aligns optical, thermal and DEM layers into the extended fused stack, detects thaw slumps "
            "with a model package and polygonises them. Edit a copy to change any step's settings.",
        }
    )
    inputs = [
        ("optical", QgsProcessingParameterRasterLayer("optical", "Optical image")),
        ("thermal", QgsProcessingParameterRasterLayer("thermal", "Thermal layer")),
        ("dem", QgsProcessingParameterRasterLayer("dem", "DEM")),
        ("series", QgsProcessingParameterRasterLayer("series", "Temperature series (for FTI)")),
        ("model", QgsProcessingParameterFile("model", "Model package", extension="safetensors")),
    ]
    for i, (name, definition) in enumerate(inputs):
        p = QgsProcessingModelParameter(name)
        p.setPosition(QPointF(120, 60 + 70 * i))
        model.addModelParameter(definition, p)

    def child(alg_id: str, cid: str, x: float, y: float, params: dict, outputs: dict) -> None:
        c = QgsProcessingModelChildAlgorithm(alg_id)
        c.setChildId(cid)
        c.setDescription(cid)
        c.setPosition(QPointF(x, y))
        for key, source in params.items():
            c.addParameterSources(key, [source])
        outs = {}
        for key, label in outputs.items():
            o = QgsProcessingModelOutput(label)
            o.setChildOutputName(key)
            o.setChildId(cid)
            # Every output may be left blank (a temporary file), so the model runs with only its inputs.
            o.setMandatory(False)
            o.setDefaultValue("TEMPORARY_OUTPUT")
            outs[label] = o
        c.setModelOutputs(outs)
        model.addChildAlgorithm(c)

    src = QgsProcessingModelChildParameterSource
    child(
        "rtsfusion:alignfuse",
        "align",
        420,
        120,
        {
            "OPTICAL": src.fromModelParameter("optical"),
            "THERMAL": src.fromModelParameter("thermal"),
            "DEM": src.fromModelParameter("dem"),
            "TEMPERATURE_SERIES": src.fromModelParameter("series"),
            "PRESET": src.fromStaticValue(1),
        },
        {"OUTPUT": "Fused stack"},
    )
    child(
        "rtsfusion:detect",
        "detect",
        640,
        220,
        {
            "STACK": src.fromChildOutput("align", "OUTPUT"),
            "MODEL": src.fromModelParameter("model"),
            "DEVICE": src.fromStaticValue(0),
            "BATCH_SIZE": src.fromStaticValue(4),
        },
        {"PROBABILITY": "Slump probability"},
    )
    child(
        "rtsfusion:polygonize",
        "polygonize",
        860,
        320,
        {
            "INPUT": src.fromChildOutput("detect", "PROBABILITY"),
            "STACK": src.fromChildOutput("align", "OUTPUT"),
            "THRESHOLD": src.fromStaticValue(0.4),
            "MIN_AREA": src.fromStaticValue(1000.0),
            "FILL_HOLES": src.fromStaticValue(500.0),
            "SIMPLIFY": src.fromStaticValue(0.0),
            "DROP_NODATA": src.fromStaticValue(True),
        },
        {"OUTPUT": "Slump polygons"},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if not model.toFile(str(path)):
        raise SystemExit(f"could not write {path}")


def main() -> int:
    """Start QGIS headless, register the provider (for parameter definitions) and write the model."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    sys.path.insert(0, str(ROOT / "scripts"))
    from demo import register_provider

    provider = register_provider()
    build(TARGET)
    print(TARGET)
    del provider
    return 0


if __name__ == "__main__":
    sys.exit(main())
