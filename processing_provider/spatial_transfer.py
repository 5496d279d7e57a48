"""Algorithm "Spatial transfer": leave one region out, train on the rest, test on the held-out region."""

from __future__ import annotations

import tempfile

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
)

from .common import RtsAlgorithm, layer_path, require_deep_learning, run_core, write_table
from .experiment_params import SCORE_COLUMNS_HELP, add_training_parameters, read_training_parameters
from .params import vector_path


class SpatialTransferAlgorithm(RtsAlgorithm):
    """Leave one region out, one fold per region: does the model hold up on ground it never saw."""

    GROUP = "Experiments"
    STACK = "STACK"
    INVENTORY = "INVENTORY"
    REGIONS = "REGIONS"
    MANIFEST = "MANIFEST"
    MANIFEST_COLUMN = "MANIFEST_COLUMN"
    REGION_FIELD = "REGION_FIELD"
    OUTPUT = "OUTPUT"
    MEAN_F1 = "MEAN_F1"

    def name(self) -> str:
        return "spatialtransfer"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return "Spatial transfer"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        return (
            "Leave-one-region-out test of how a model transfers to unseen ground. Regions are the features of a "
            "polygon layer, grouped by a field when one is given. For each region in turn, a model is trained "
            "on the other regions (their own blocked split picks the best epoch) and tested on the held-out "
            "region, per fold and as the mean over folds, with overall accuracy next to F1 as the study reports "
            "it; in_sample_f1 is the score on the training regions' own test split, for comparison.<br>"
            + SCORE_COLUMNS_HELP
            + "<br>"
            "With a chip manifest (the study's layout), regions are the values of its region column."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(QgsProcessingParameterRasterLayer(self.STACK, "Fused stack", optional=True))
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.INVENTORY, "Slump inventory", [QgsProcessing.SourceType.TypeVectorPolygon], optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.REGIONS, "Regions (polygons)", [QgsProcessing.SourceType.TypeVectorPolygon], optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(self.MANIFEST, "Or: chip manifest (instead of stack, inventory, regions)",
                                       optional=True)
        )  # fmt: skip
        self.addParameter(
            QgsProcessingParameterString(self.MANIFEST_COLUMN, "Manifest region column", "region", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterField(self.REGION_FIELD, "Region field (empty: each feature)", None, self.REGIONS,
                                        optional=True)
        )  # fmt: skip
        add_training_parameters(self)
        self.addParameter(
            QgsProcessingParameterFeatureSink(self.OUTPUT, "Transfer table", QgsProcessing.SourceType.TypeVector)
        )
        self.addOutput(QgsProcessingOutputNumber(self.MEAN_F1, "Mean F1 over held-out regions"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        require_deep_learning()
        from ..models.study import manifest_transfer, spatial_transfer

        manifest = self.parameterAsFile(parameters, self.MANIFEST, context)
        if manifest:
            cfg, _ = read_training_parameters(self, parameters, context)
            column = self.parameterAsString(parameters, self.MANIFEST_COLUMN, context) or "region"
            result = run_core(feedback, manifest_transfer, manifest, column, cfg, log=feedback.pushInfo)
            dest = write_table(self, parameters, self.OUTPUT, context, result.rows)
            return {self.OUTPUT: dest, self.MEAN_F1: result.rows[-1]["f1"] if result.rows else float("nan")}
        for name in (self.STACK, self.INVENTORY, self.REGIONS):
            if not parameters.get(name):
                raise QgsProcessingException("Give a fused stack, an inventory and regions, or a chip manifest.")
        stack = layer_path(self.parameterAsRasterLayer(parameters, self.STACK, context), "fused stack")
        inventory = vector_path(self.parameterAsVectorLayer(parameters, self.INVENTORY, context), "inventory")
        regions = vector_path(self.parameterAsVectorLayer(parameters, self.REGIONS, context), "regions")
        field = self.parameterAsString(parameters, self.REGION_FIELD, context) or None
        cfg, bands = read_training_parameters(self, parameters, context)
        result = run_core(
            feedback,
            spatial_transfer,
            stack,
            inventory,
            regions,
            field,
            cfg,
            bands=bands,
            workdir=tempfile.mkdtemp(prefix="rts_spatial_"),
            log=feedback.pushInfo,
        )
        dest = write_table(self, parameters, self.OUTPUT, context, result.rows)
        return {self.OUTPUT: dest, self.MEAN_F1: result.rows[-1]["f1"] if result.rows else float("nan")}
