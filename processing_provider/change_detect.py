"""Algorithm "Compare inventories": slumps new, grown, shrunk, stable or vanished between two dates."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterNumber,
    QgsProcessingParameterVectorDestination,
    QgsProcessingParameterVectorLayer,
)

from ..core.change import CLASSES, compare_inventories, write_changes
from .common import RtsAlgorithm, run_core
from .params import vector_output, vector_path


class ChangeDetectAlgorithm(RtsAlgorithm):
    """Classify the change of every slump between an earlier and a later inventory."""

    GROUP = "Inventory analysis"
    BEFORE = "BEFORE"
    AFTER = "AFTER"
    TOLERANCE = "TOLERANCE"
    OUTPUT = "OUTPUT"
    AREA_CHANGE_M2 = "AREA_CHANGE_M2"
    MEAN_RETREAT_M = "MEAN_RETREAT_M"

    def name(self) -> str:
        return "changedetect"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return "Compare inventories"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        return (
            "Compares slump polygons of two dates. Polygons that overlap form a group (so splits and merges stay "
            "one group): a group whose area rose by more than the tolerance is <b>grown</b>, fell by more "
            "<b>shrunk</b>, else <b>stable</b>; a later polygon overlapping nothing is <b>new</b>, an earlier one "
            "<b>vanished</b>.<br>Attributes: change, the ids of the earlier and later polygons, areas before and "
            "after and their change (m², %), and retreat_m — how far the later outline reaches beyond the earlier "
            "one (headwall retreat of a growing slump). Areas and distances are in metres. Totals are given as "
            "outputs."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.BEFORE, "Earlier inventory", [QgsProcessing.SourceType.TypeVectorPolygon]
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.AFTER, "Later inventory", [QgsProcessing.SourceType.TypeVectorPolygon]
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.TOLERANCE,
                "Stable within ± (% of area)",
                QgsProcessingParameterNumber.Type.Double,
                10.0,
                False,
                0.0,
                1000.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT, "Slump changes", QgsProcessing.SourceType.TypeVectorPolygon
            )
        )
        for c in CLASSES:
            self.addOutput(QgsProcessingOutputNumber(f"N_{c.upper()}", f"Slumps {c}"))
        self.addOutput(QgsProcessingOutputNumber(self.AREA_CHANGE_M2, "Total area change (m²)"))
        self.addOutput(QgsProcessingOutputNumber(self.MEAN_RETREAT_M, "Mean retreat of grown slumps (m)"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        before = vector_path(self.parameterAsVectorLayer(parameters, self.BEFORE, context), "earlier inventory")
        after = vector_path(self.parameterAsVectorLayer(parameters, self.AFTER, context), "later inventory")
        tolerance = self.parameterAsDouble(parameters, self.TOLERANCE, context) / 100.0
        result = run_core(feedback, compare_inventories, before, after, tolerance)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        with vector_output(output, "slump changes") as gpkg:
            write_changes(gpkg, result)
        t = result.totals
        feedback.pushInfo(", ".join(f"{t[f'n_{c}']} {c}" for c in CLASSES) + f"; area change {t['area_change_m2']} m²")
        out = {
            self.OUTPUT: output,
            self.AREA_CHANGE_M2: t["area_change_m2"],
            self.MEAN_RETREAT_M: t["mean_retreat_grown_m"],
        }
        out.update({f"N_{c.upper()}": t[f"n_{c}"] for c in CLASSES})
        return out
