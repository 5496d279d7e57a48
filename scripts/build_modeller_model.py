"""Regenerate the graphical-modeller models in resources/models from the algorithms' current parameters.

    map_thaw_slumps.model3            align → detect → polygonise
    train_detect_evaluate.model3      train on an inventory → detect on another scene → evaluate

Every child parameter gets a value: a model input, another step's output, or the algorithm's own default, so the
models stay valid when an algorithm gains a parameter (rerun this script; tests/test_modeller_models.py fails
until then). Run with the project's venv: .venv/bin/python scripts/build_modeller_model.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "resources" / "models"


class _Builder:
    """A model under construction: inputs, children with every parameter set, described outputs."""

    def __init__(self, name: str, internal: str, help_text: str) -> None:
        from qgis.core import QgsProcessingModelAlgorithm

        self.model = QgsProcessingModelAlgorithm(name, "RTS Fusion", internal)
        self.model.setHelpContent({"ALG_DESC": help_text})
        self.inputs = 0

    def input(self, definition) -> str:
        """Add a model input (placed in a column on the left)."""
        from qgis.core import QgsProcessingModelParameter
        from qgis.PyQt.QtCore import QPointF

        p = QgsProcessingModelParameter(definition.name())
        p.setPosition(QPointF(140, 60 + 75 * self.inputs))
        p.setDescription(definition.description())
        self.inputs += 1
        self.model.addModelParameter(definition, p)
        return definition.name()

    def child(self, alg_id: str, cid: str, description: str, x: float, y: float, params: dict, outputs: dict):
        """Add a step with every parameter set.

        `params` maps parameter → source; the others get the algorithm's default (or stay empty when optional);
        `outputs` maps destination parameter → (model output name, description).
        """
        from qgis.core import (
            QgsApplication,
            QgsProcessingModelChildAlgorithm,
            QgsProcessingModelChildParameterSource,
            QgsProcessingModelOutput,
            QgsProcessingParameterDefinition,
        )
        from qgis.PyQt.QtCore import QPointF

        alg = QgsApplication.processingRegistry().algorithmById(alg_id)
        if alg is None:
            raise SystemExit(f"{alg_id} is not registered")
        c = QgsProcessingModelChildAlgorithm(alg_id)
        c.setChildId(cid)
        c.setDescription(description)
        c.setPosition(QPointF(x, y))
        names = {d.name() for d in alg.parameterDefinitions()}
        unknown = set(params) - names
        if unknown:
            raise SystemExit(f"{alg_id} has no parameter {sorted(unknown)}")
        for d in alg.parameterDefinitions():
            if d.isDestination():
                continue
            if d.name() in params:
                c.addParameterSources(d.name(), [params[d.name()]])
            elif d.defaultValue() is not None:
                c.addParameterSources(
                    d.name(), [QgsProcessingModelChildParameterSource.fromStaticValue(d.defaultValue())]
                )
            elif not d.flags() & QgsProcessingParameterDefinition.FlagOptional:
                raise SystemExit(f"{alg_id}: mandatory parameter {d.name()} has no default; give it a value here")
        outs = {}
        for i, (key, (name, label)) in enumerate(outputs.items()):
            o = QgsProcessingModelOutput(name, label)
            o.setChildOutputName(key)
            o.setChildId(cid)
            # The run dialog fills in a temporary file for each output (qgis_process wants each one named).
            o.setMandatory(False)
            o.setDefaultValue("TEMPORARY_OUTPUT")
            o.setPosition(QPointF(x + 200, y + 50 + 45 * i))
            outs[name] = o
        c.setModelOutputs(outs)
        self.model.addChildAlgorithm(c)

    def write(self, path: Path) -> None:
        """Refuse an invalid model; write it."""
        ok, problems = self.model.validate()
        if not ok:
            raise SystemExit(f"{path.name} is not valid: {problems}")
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.model.toFile(str(path)):
            raise SystemExit(f"could not write {path}")


def _enum_like(alg_id: str, param: str, name: str, description: str):
    """A model input with the same choices and default as an algorithm's enum parameter."""
    from qgis.core import QgsApplication, QgsProcessingParameterEnum

    d = QgsApplication.processingRegistry().algorithmById(alg_id).parameterDefinition(param)
    return QgsProcessingParameterEnum(name, description, options=d.options(), defaultValue=d.defaultValue())


def build_map_model(path: Path) -> None:
    """Align → detect → polygonise."""
    from qgis.core import (
        QgsProcessingModelChildParameterSource as Src,
    )
    from qgis.core import (
        QgsProcessingParameterFile,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
    )

    b = _Builder(
        "Map thaw slumps (align, detect, polygonise)",
        "mapthawslumps",
        "Aligns the optical image with the optional thermal layer, DEM and temperature series into a fused stack, "
        "detects thaw slumps with a model package (or a model exported to .onnx) and turns the probability into "
        "polygons. Choose a feature preset that contains the model's bands (the model card lists them); leave "
        "thermal, DEM or series empty when the preset does not need them. Edit a copy to change any step's settings.",
    )
    for name, desc, optional in (
        ("optical", "Optical image", False),
        ("thermal", "Thermal layer", True),
        ("dem", "DEM", True),
        ("series", "Temperature series (for FTI)", True),
    ):
        b.input(QgsProcessingParameterRasterLayer(name, desc, optional=optional))
    from rts_fusion.processing_provider.params import MODEL_FILTER

    b.input(QgsProcessingParameterFile("model", "Model (package or exported .onnx)", fileFilter=MODEL_FILTER))
    b.input(_enum_like("rtsfusion:alignfuse", "SENSOR", "sensor", "Optical sensor"))
    preset = _enum_like("rtsfusion:alignfuse", "PRESET", "preset", "Feature preset (must contain the model's bands)")
    names = preset.options()
    preset.setDefaultValue(next((i for i, o in enumerate(names) if o.startswith("extended")), 0))
    b.input(preset)
    b.input(
        QgsProcessingParameterNumber(
            "min_area", "Minimum slump area (m²)", QgsProcessingParameterNumber.Double, 1000.0, False, 0.0
        )
    )
    p = Src.fromModelParameter
    b.child(
        "rtsfusion:alignfuse",
        "align",
        "Align and fuse",
        430,
        120,
        {
            "OPTICAL": p("optical"),
            "THERMAL": p("thermal"),
            "DEM": p("dem"),
            "TEMPERATURE_SERIES": p("series"),
            "SENSOR": p("sensor"),
            "PRESET": p("preset"),
        },
        {"OUTPUT": ("Fused stack", "Fused stack (feature bands)")},
    )
    b.child(
        "rtsfusion:detect",
        "detect",
        "Detect thaw slumps",
        640,
        260,
        {"STACK": Src.fromChildOutput("align", "OUTPUT"), "MODEL": p("model")},
        {"PROBABILITY": ("Slump probability", "Slump probability (0–1)")},
    )
    b.child(
        "rtsfusion:polygonize",
        "polygonize",
        "Probability to polygons",
        850,
        400,
        {
            "INPUT": Src.fromChildOutput("detect", "PROBABILITY"),
            "STACK": Src.fromChildOutput("align", "OUTPUT"),
            "MIN_AREA": p("min_area"),
        },
        {"OUTPUT": ("Slump polygons", "Thaw-slump polygons with attributes")},
    )
    b.write(path)


def build_train_model(path: Path) -> None:
    """Train on an inventory → detect on another scene → evaluate against that scene's outlines."""
    from qgis.core import (
        QgsProcessing,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
        QgsProcessingParameterVectorLayer,
    )
    from qgis.core import (
        QgsProcessingModelChildParameterSource as Src,
    )

    b = _Builder(
        "Train, detect and evaluate (two scenes)",
        "traindetectevaluate",
        "Trains a model on one scene's fused stack and slump inventory, detects slumps on another scene's fused "
        "stack (same bands) and scores the detection against that scene's outlines (pixel and object F1, "
        "HTML report). Make both stacks with 'Align and fuse' and the same preset.",
    )
    polygons = [QgsProcessing.TypeVectorPolygon]
    b.input(QgsProcessingParameterRasterLayer("train_stack", "Training scene: fused stack"))
    b.input(QgsProcessingParameterVectorLayer("inventory", "Training scene: slump inventory (polygons)", polygons))
    b.input(QgsProcessingParameterRasterLayer("test_stack", "Test scene: fused stack"))
    b.input(QgsProcessingParameterVectorLayer("test_truth", "Test scene: slump outlines (polygons)", polygons))
    b.input(_enum_like("rtsfusion:train", "ENCODER", "encoder", "Encoder size"))
    b.input(QgsProcessingParameterNumber("epochs", "Epochs", QgsProcessingParameterNumber.Integer, 50, False, 1, 1000))
    b.input(
        QgsProcessingParameterNumber(
            "tile_size", "Tile size (px)", QgsProcessingParameterNumber.Integer, 256, False, 32
        )
    )
    p = Src.fromModelParameter
    b.child(
        "rtsfusion:train",
        "train",
        "Train a model",
        430,
        120,
        {
            "STACK": p("train_stack"),
            "INVENTORY": p("inventory"),
            "ENCODER": p("encoder"),
            "EPOCHS": p("epochs"),
            "TILE_SIZE": p("tile_size"),
        },
        {"OUTPUT": ("Model package", "Trained model package"), "REPORT": ("Training report", "Training report")},
    )
    b.child(
        "rtsfusion:detect",
        "detect",
        "Detect on the test scene",
        640,
        300,
        {"STACK": p("test_stack"), "MODEL": Src.fromChildOutput("train", "OUTPUT")},
        {"PROBABILITY": ("Slump probability", "Slump probability on the test scene")},
    )
    b.child(
        "rtsfusion:evaluate",
        "evaluate",
        "Evaluate against the outlines",
        850,
        460,
        {"PREDICTION": Src.fromChildOutput("detect", "PROBABILITY"), "TRUTH": p("test_truth")},
        {
            "OUTPUT": ("Evaluated outlines", "Outlines with match status"),
            "HTML": ("Evaluation report", "Evaluation report (HTML)"),
        },
    )
    b.write(path)


def main() -> int:
    """Start QGIS headless, register the provider (for parameter definitions) and write the models."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    sys.path.insert(0, str(ROOT / "scripts"))
    from demo import register_provider

    provider = register_provider()
    for build, name in (
        (build_map_model, "map_thaw_slumps.model3"),
        (build_train_model, "train_detect_evaluate.model3"),
    ):
        build(MODELS / name)
        print(MODELS / name)
    del provider
    return 0


if __name__ == "__main__":
    sys.exit(main())
