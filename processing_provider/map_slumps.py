"""Algorithm "Map thaw slumps": optical + thermal + DEM + model → stack, probability, mask and polygons."""

from __future__ import annotations

import contextlib
import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingMultiStepFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterVectorDestination,
)

from ..core.polygons import PolygonizeOptions, polygonize
from ..core.stack import build_fused_stack
from .common import optional_number, require_deep_learning, run_core, style_on_load
from .fusion_inputs import FusionInputsAlgorithm
from .polygonize import write_vector_output

DEVICES = ("auto", "cpu", "cuda")


class MapSlumpsAlgorithm(FusionInputsAlgorithm):
    """One run from source layers to editable slump polygons, with the features the model asks for."""

    GROUP = "Deep learning"
    MODEL = "MODEL"
    DEVICE = "DEVICE"
    THRESHOLD = "THRESHOLD"
    MIN_AREA = "MIN_AREA"
    STACK = "STACK"
    PROBABILITY = "PROBABILITY"
    MASK = "MASK"
    POLYGONS = "POLYGONS"

    def name(self) -> str:
        return "mapslumps"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return "Map thaw slumps"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        return (
            "Maps thaw slumps in one run: aligns the optical, thermal and DEM layers and derives exactly the "
            "features the model package needs (read from its card), detects slumps tile by tile, and "
            "polygonises them into an editable, attributed layer.<br><br>"
            "The source parameters are those of 'Align and fuse layers'; detection and polygonisation use the "
            "model's tile size and threshold unless a threshold is given. Outputs: the fused stack, the slump "
            "probability, the mask and the polygons."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(
            QgsProcessingParameterFile(self.MODEL, "Model package (.safetensors)", extension="safetensors")
        )
        self.add_input_parameters(with_features=False)
        self.addParameter(QgsProcessingParameterEnum(self.DEVICE, "Device", list(DEVICES), defaultValue=0))
        self.addParameter(
            QgsProcessingParameterNumber(
                self.THRESHOLD,
                "Threshold (empty: the model's)",
                QgsProcessingParameterNumber.Double,
                None,
                True,
                0.0,
                1.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MIN_AREA, "Minimum slump area (m²)", QgsProcessingParameterNumber.Double, 1000.0, False, 0.0
            )
        )
        self.addParameter(QgsProcessingParameterRasterDestination(self.STACK, "Fused stack"))
        self.addParameter(QgsProcessingParameterRasterDestination(self.PROBABILITY, "Slump probability"))
        self.addParameter(QgsProcessingParameterRasterDestination(self.MASK, "Slump mask"))
        self.addParameter(
            QgsProcessingParameterVectorDestination(self.POLYGONS, "Slump polygons", QgsProcessing.TypeVectorPolygon)
        )
        self.addOutput(QgsProcessingOutputNumber("COUNT", "Number of slumps"))

    @staticmethod
    def _check_canceled(feedback) -> None:
        if feedback.isCanceled():
            raise QgsProcessingException("Cancelled by the user; outputs were removed.")

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        require_deep_learning()
        from ..models.inference import InferenceOptions, predict_stack
        from ..models.package import load_package

        steps = QgsProcessingMultiStepFeedback(3, feedback)
        if feedback.isCanceled():  # cancelled before the run started: the step feedback does not know it yet
            steps.cancel()
        try:
            model, card = load_package(self.parameterAsFile(parameters, self.MODEL, context))
        except ValueError as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushInfo(f"Model needs {len(card.bands)} bands: {', '.join(card.bands)}")
        feedback.pushInfo(f"From the inputs: {'; '.join(card.needed_inputs())}")
        inputs, grid, radius = self.read_inputs(parameters, context)
        stack = self.parameterAsOutputLayer(parameters, self.STACK, context)
        run_core(
            steps,
            build_fused_stack,
            inputs,
            card.bands,
            stack,
            grid_options=grid,
            terrain_radius_m=radius,
            log=feedback.pushInfo,
        )
        threshold = optional_number(self, parameters, self.THRESHOLD, context)
        prob = self.parameterAsOutputLayer(parameters, self.PROBABILITY, context)
        mask = self.parameterAsOutputLayer(parameters, self.MASK, context)
        output = self.parameterAsOutputLayer(parameters, self.POLYGONS, context)
        gpkg = output if output.lower().endswith(".gpkg") else os.path.splitext(output)[0] + "_tmp.gpkg"
        try:
            self._check_canceled(feedback)
            steps.setCurrentStep(1)
            options = InferenceOptions(
                device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)], threshold=threshold
            )
            run_core(steps, predict_stack, model, card, stack, prob, mask, options, log=feedback.pushInfo)
            self._check_canceled(feedback)
            steps.setCurrentStep(2)
            opts = PolygonizeOptions(
                threshold=card.threshold if threshold is None else threshold,
                min_area_m2=self.parameterAsDouble(parameters, self.MIN_AREA, context),
                fill_holes_m2=self.parameterAsDouble(parameters, self.MIN_AREA, context) / 2,
            )
            count = run_core(steps, polygonize, prob, gpkg, opts, stack_path=stack)
        except QgsProcessingException:
            if feedback.isCanceled():  # a cancelled run leaves nothing behind, not even its finished stack
                for path in {stack, prob, mask, gpkg}:
                    with contextlib.suppress(OSError):
                        os.remove(path)
            raise
        write_vector_output(gpkg, output)
        feedback.pushInfo(f"{count} thaw slumps mapped.")
        style_on_load(context, prob, "probability")
        style_on_load(context, mask, "mask")
        style_on_load(context, output, "slumps")
        return {self.STACK: stack, self.PROBABILITY: prob, self.MASK: mask, self.POLYGONS: output, "COUNT": count}
