"""Algorithm "Temporal transfer": train on one year, test on other years at the same places."""

from __future__ import annotations

import tempfile

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
)

from .common import RtsAlgorithm, layer_path, require_deep_learning, run_core, write_table
from .experiment_params import SCORE_COLUMNS_HELP, add_training_parameters, read_training_parameters
from .params import vector_path


class TemporalTransferAlgorithm(RtsAlgorithm):
    """Train on one year, test on others: does the model hold up in other years."""

    GROUP = "Experiments"
    TRAIN_STACK = "TRAIN_STACK"
    TRAIN_INVENTORY = "TRAIN_INVENTORY"
    TEST_STACKS = "TEST_STACKS"
    TEST_INVENTORIES = "TEST_INVENTORIES"
    MANIFEST = "MANIFEST"
    MANIFEST_COLUMN = "MANIFEST_COLUMN"
    OTHER_MANIFEST = "OTHER_MANIFEST"
    TRAIN_VALUE = "TRAIN_VALUE"
    LABELS = "LABELS"
    OUTPUT = "OUTPUT"
    MEAN_TRANSFER_F1 = "MEAN_TRANSFER_F1"

    def name(self) -> str:
        return "temporaltransfer"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return "Temporal transfer"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        return (
            "Trains a model on one year's fused stack and inventory and tests it on other years' stacks and "
            "inventories of the same places (pair them in the same order; labels default to the layer names). "
            "As in the study, the other years are scored only at locations held out from training (the training "
            "run's test chips, less any pixel a training or validation chip covers; the years' stacks must share "
            "one grid), so the score is not flattered by ground the model was trained on or its best epoch was "
            "picked on. Rows: the training "
            "year's own held-out test split, then each other year at the held-out locations.<br>"
            + SCORE_COLUMNS_HELP
            + "<br>"
            "The study reported overall accuracy above 0.90 in other years.<br>With a chip manifest (the study's "
            "layout), give its year column and the training year: as the study's script does, 20 % of the "
            "locations (region and stem) both years hold are held out per region, the model trains on the "
            "training year's other chips and is scored at the held-out locations of every other year. The study "
            "ships one manifest per year (manifest_2023…, manifest_2024.csv): give the second as <i>other years' "
            "chip manifest</i> and the two are joined; a numeric stem matches across them as a number (151 and "
            "000000000151 are the same place)."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(
            QgsProcessingParameterRasterLayer(self.TRAIN_STACK, "Training year: fused stack", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.TRAIN_INVENTORY,
                "Training year: slump inventory",
                [QgsProcessing.SourceType.TypeVectorPolygon],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.TEST_STACKS, "Other years: fused stacks", QgsProcessing.SourceType.TypeRaster, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.TEST_INVENTORIES, "Other years: slump inventories (same order)",
                QgsProcessing.SourceType.TypeVectorPolygon, optional=True,
            )
        )  # fmt: skip
        self.addParameter(
            QgsProcessingParameterFile(self.MANIFEST, "Or: chip manifest (instead of stacks and inventories)",
                                       optional=True)
        )  # fmt: skip
        self.addParameter(
            QgsProcessingParameterFile(self.OTHER_MANIFEST, "Manifest: other years' chip manifest (joined to it)",
                                       optional=True)
        )  # fmt: skip
        self.addParameter(
            QgsProcessingParameterString(self.MANIFEST_COLUMN, "Manifest year column", "year", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterString(self.TRAIN_VALUE, "Manifest: training year (a value of the column)",
                                         optional=True)
        )  # fmt: skip
        self.addParameter(
            QgsProcessingParameterString(
                self.LABELS, "Labels: training year, then the others (comma-separated)", optional=True
            )
        )
        add_training_parameters(self)
        self.addParameter(
            QgsProcessingParameterFeatureSink(self.OUTPUT, "Transfer table", QgsProcessing.SourceType.TypeVector)
        )
        self.addOutput(QgsProcessingOutputNumber(self.MEAN_TRANSFER_F1, "Mean F1 on the other years"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        require_deep_learning()
        from ..models.study import manifest_transfer, temporal_transfer

        manifest = self.parameterAsFile(parameters, self.MANIFEST, context)
        other = self.parameterAsFile(parameters, self.OTHER_MANIFEST, context)
        if other and not manifest:
            raise QgsProcessingException(
                "'Manifest: other years' chip manifest' is joined to a chip manifest: give 'Or: chip manifest' too."
            )
        if manifest:
            manifest = [manifest, other] if other else manifest
            train_value = self.parameterAsString(parameters, self.TRAIN_VALUE, context).strip()
            if not train_value:
                raise QgsProcessingException("With a manifest, give the training year (a value of its year column).")
            cfg, _ = read_training_parameters(self, parameters, context)
            column = self.parameterAsString(parameters, self.MANIFEST_COLUMN, context) or "year"
            result = run_core(
                feedback, manifest_transfer, manifest, column, cfg, train_value=train_value, log=feedback.pushInfo
            )
            dest = write_table(self, parameters, self.OUTPUT, context, result.rows)
            transfer = [r["f1"] for r in result.rows]
            return {
                self.OUTPUT: dest,
                self.MEAN_TRANSFER_F1: sum(transfer) / len(transfer) if transfer else float("nan"),
            }
        if not parameters.get(self.TRAIN_STACK) or not parameters.get(self.TRAIN_INVENTORY):
            raise QgsProcessingException("Give the training year's stack and inventory, or a chip manifest.")
        train_stack = layer_path(self.parameterAsRasterLayer(parameters, self.TRAIN_STACK, context), "training stack")
        train_inv = vector_path(self.parameterAsVectorLayer(parameters, self.TRAIN_INVENTORY, context), "inventory")
        stacks = self.parameterAsLayerList(parameters, self.TEST_STACKS, context)
        inventories = self.parameterAsLayerList(parameters, self.TEST_INVENTORIES, context)
        if not stacks or len(stacks) != len(inventories):
            raise QgsProcessingException(
                f"Give one inventory per test stack ({len(stacks)} stacks, {len(inventories)} inventories)."
            )
        labels = [v.strip() for v in self.parameterAsString(parameters, self.LABELS, context).split(",") if v.strip()]
        if labels and len(labels) != len(stacks) + 1:
            raise QgsProcessingException(f"Give {len(stacks) + 1} labels (the training year first), not {len(labels)}.")
        if not labels:
            labels = [self.parameterAsRasterLayer(parameters, self.TRAIN_STACK, context).name()] + [
                s.name() for s in stacks
            ]
        tests = [
            (label, layer_path(s, "test stack"), vector_path(v, "test inventory"))
            for label, s, v in zip(labels[1:], stacks, inventories)
        ]
        cfg, bands = read_training_parameters(self, parameters, context)
        result = run_core(
            feedback,
            temporal_transfer,
            (train_stack, train_inv),
            tests,
            cfg,
            bands=bands,
            workdir=tempfile.mkdtemp(prefix="rts_temporal_"),
            train_label=labels[0],
            log=feedback.pushInfo,
        )
        dest = write_table(self, parameters, self.OUTPUT, context, result.rows)
        transfer = [r["f1"] for r in result.rows[1:]]
        return {self.OUTPUT: dest, self.MEAN_TRANSFER_F1: sum(transfer) / len(transfer) if transfer else float("nan")}
