"""Algorithm "Compare models": train several architectures and band sets under one budget, one table."""

from __future__ import annotations

import os
import tempfile

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
)

from ..models.registry import ARCHITECTURES, differs_from_study
from .common import RtsAlgorithm, layer_path, require_deep_learning, run_core, write_table
from .experiment_params import (
    ARCHITECTURE_IDS,
    BAND_SETS,
    SCORE_COLUMNS_HELP,
    add_budget_parameters,
    band_set,
    read_budget,
)
from .params import vector_path


def parse_seeds(text: str) -> list[int]:
    """Comma-separated integer seeds, or a clear error."""
    try:
        seeds = [int(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError as exc:
        raise QgsProcessingException(f"Seeds: '{text}' is not a comma-separated list of integers.") from exc
    if not seeds:
        raise QgsProcessingException("Give at least one seed.")
    return seeds


class ModelStudyAlgorithm(RtsAlgorithm):
    """The study's model comparison as one reproducible run."""

    GROUP = "Experiments"
    STACK = "STACK"
    INVENTORY = "INVENTORY"
    MANIFEST = "MANIFEST"
    ARCHITECTURES = "ARCHITECTURES"
    BAND_SETS = "BAND_SETS"
    SEEDS = "SEEDS"
    DECODER_DIM = "DECODER_DIM"
    OUTPUT = "OUTPUT"
    HTML = "HTML"
    BEST_MODEL = "BEST_MODEL"
    BEST_F1 = "BEST_F1"
    RUNS = "RUNS"

    def name(self) -> str:
        return "modelstudy"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return "Compare models"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        names = "".join(f"<li>{ARCHITECTURES[a][0]}: {differs_from_study(a)}</li>" for a in ARCHITECTURE_IDS)
        return (
            "Trains every chosen architecture on every chosen band set with the same settings, the same "
            "spatially blocked split and the same seed(s), and scores each on the held-out test split: precision, "
            "recall, F1 and IoU, pooled over pixels and averaged per chip, overall accuracy, and the study's own "
            "per-chip convention and object counts. " + SCORE_COLUMNS_HELP + " Outputs "
            "one table (a row per model and seed, with parameters and training time), and an HTML report with "
            "the models ranked by mean F1 and their learning curves. Cancel keeps the finished rows.<br><br>"
            "<b>Training protocol</b>: the experiment defaults, or the study's (AdamW 3e-4, OneCycle to 1e-3 from "
            "1e-3/25 with 10 % linear warm-up and linear annealing, best epoch by the study's per-chip F1 "
            "(ties to the lower validation loss), its "
            "augmentation ranges, Dice and per-chip input scaling) with the epochs and budget given here; the split "
            "stays spatially blocked either way.<br>"
            "Data: a fused stack and a slump inventory, or a chip manifest (then the band set is the manifest's)."
            "<br>Encoder size: <i>tiny</i> (narrow and shallow; quick, CPU-friendly) or <i>standard</i> (the sizes "
            f"the study names; MiT-b0 for the SegFormer family).<br>Architectures, and how each differs from the "
            f"study's build of it (the table's vs_study column says the same):<ul>{names}</ul>"
            "On RGB (3 bands) the SegFormer-family and attention-ConvNeXt models also start from random weights "
            "where the study's code loaded ImageNet weights (no model download here); on other band sets the "
            "study started them from random weights too. "
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(QgsProcessingParameterRasterLayer(self.STACK, "Fused stack", optional=True))
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.INVENTORY, "Slump inventory", [QgsProcessing.SourceType.TypeVectorPolygon], optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(self.MANIFEST, "Chip manifest (instead of stack + inventory)", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.ARCHITECTURES,
                "Architectures",
                list(ARCHITECTURE_IDS),
                allowMultiple=True,
                defaultValue=[7, 8, 12],
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.BAND_SETS, "Band sets", list(BAND_SETS), allowMultiple=True, defaultValue=[1]
            )
        )
        self.addParameter(QgsProcessingParameterString(self.SEEDS, "Seeds (comma-separated)", "0"))
        add_budget_parameters(self)
        self.addParameter(
            QgsProcessingParameterNumber(
                self.DECODER_DIM,
                "Decoder width (SegFormer family)",
                QgsProcessingParameterNumber.Type.Integer,
                64,
                False,
                8,
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(self.OUTPUT, "Model table", QgsProcessing.SourceType.TypeVector)
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(self.HTML, "Report", "HTML files (*.html)", optional=True)
        )
        self.addOutput(QgsProcessingOutputString(self.BEST_MODEL, "Best model (mean test F1)"))
        self.addOutput(QgsProcessingOutputNumber(self.BEST_F1, "Its mean test F1"))
        self.addOutput(QgsProcessingOutputNumber(self.RUNS, "Finished runs"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        require_deep_learning()
        from ..models.study import StudyRun, run_model_study, settings_of, study_report
        from ..models.train import TrainConfig

        manifest = self.parameterAsFile(parameters, self.MANIFEST, context) or None
        stack_layer = self.parameterAsRasterLayer(parameters, self.STACK, context)
        inventory_layer = self.parameterAsVectorLayer(parameters, self.INVENTORY, context)
        if not manifest and (stack_layer is None or inventory_layer is None):
            raise QgsProcessingException("Give a fused stack and a slump inventory, or a chip manifest.")
        stack = layer_path(stack_layer, "fused stack") if not manifest else None
        inventory = vector_path(inventory_layer, "inventory") if not manifest else None
        archs = [ARCHITECTURE_IDS[i] for i in self.parameterAsEnums(parameters, self.ARCHITECTURES, context)]
        sets = [BAND_SETS[i] for i in self.parameterAsEnums(parameters, self.BAND_SETS, context)]
        if not archs or not sets:
            raise QgsProcessingException("Choose at least one architecture and one band set.")
        if manifest:
            sets = ["manifest"]
        runs = [
            StudyRun(
                f"{ARCHITECTURES[a][0].split(' (')[0]} [{s}]",
                a,
                None if s == "manifest" else band_set(s),
            )
            for a in archs
            for s in sets
        ]
        base = TrainConfig(
            decoder_dim=self.parameterAsInt(parameters, self.DECODER_DIM, context),
            **read_budget(self, parameters, context),
        )
        seeds = parse_seeds(self.parameterAsString(parameters, self.SEEDS, context))
        workdir = tempfile.mkdtemp(prefix="rts_model_study_")
        feedback.pushInfo(f"{len(runs)} models × {len(seeds)} seed(s); packages in {workdir}")
        result = run_core(
            feedback,
            run_model_study,
            runs,
            base,
            seeds,
            workdir,
            stack_path=stack,
            inventory_path=inventory,
            manifest=manifest,
            log=feedback.pushInfo,
        )
        if result.canceled:
            feedback.reportError("Cancelled: the table holds the runs that finished.", fatalError=False)
        if not result.rows:
            raise QgsProcessingException("No run finished.")
        dest = write_table(self, parameters, self.OUTPUT, context, result.rows)
        best = result.summary[0]
        feedback.pushInfo(f"Best: {best['model']} (mean test F1 {best['f1']:.3f})")
        out = {self.OUTPUT: dest, self.BEST_MODEL: best["model"], self.BEST_F1: best["f1"], self.RUNS: len(result.rows)}
        html = self.parameterAsFileOutput(parameters, self.HTML, context)
        if html:
            settings = settings_of(base, seeds=seeds, data=manifest or f"{os.path.basename(stack)} + inventory")
            out[self.HTML] = study_report(html, result, settings)
        return out
