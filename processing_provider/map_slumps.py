"""Algorithm "Map thaw slumps": optical + thermal + DEM + model → stack, probability, mask and polygons."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterVectorDestination,
)

from ..pipeline.map_slumps import MapInputs, MapOptions, MapOutputs, map_slumps
from .common import map_options, require_model_runtime, run_core, style_on_load
from .fusion_inputs import FusionInputsAlgorithm
from .params import (
    MODEL_HELP,
    add_device_parameter,
    add_min_area_parameter,
    add_model_file_parameter,
    add_threshold_parameter,
)


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
    COUNT = "COUNT"  # output: the number of slump polygons

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
            "model's tile size and threshold unless a threshold is given; the mask is the only thresholding and the "
            "polygons are made from it (with the probability's mean and maximum as attributes). Outputs: the fused "
            "stack, the slump probability, the mask and the polygons. A failed or cancelled run removes what it "
            "wrote.<br>" + MODEL_HELP
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        add_model_file_parameter(self, self.MODEL)
        self.add_input_parameters(with_features=False)
        add_device_parameter(self, self.DEVICE)
        add_threshold_parameter(self, self.THRESHOLD)
        add_min_area_parameter(self, self.MIN_AREA)
        self.addParameter(QgsProcessingParameterRasterDestination(self.STACK, "Fused stack"))
        self.addParameter(QgsProcessingParameterRasterDestination(self.PROBABILITY, "Slump probability"))
        self.addParameter(QgsProcessingParameterRasterDestination(self.MASK, "Slump mask"))
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.POLYGONS, "Slump polygons", QgsProcessing.SourceType.TypeVectorPolygon
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.COUNT, "Number of slumps"))

    def map_job(self, parameters, context) -> tuple[MapInputs, str, MapOutputs, MapOptions]:
        """What the pipeline needs for these parameters: inputs, model package path, outputs and options.

        Used by processAlgorithm and by the panel's worker process, so both read the parameters the same way.
        """
        inputs, grid, radius = self.read_inputs(parameters, context)
        options = map_options(self, parameters, context)
        outputs = MapOutputs(
            stack=self.parameterAsOutputLayer(parameters, self.STACK, context),
            probability=self.parameterAsOutputLayer(parameters, self.PROBABILITY, context),
            mask=self.parameterAsOutputLayer(parameters, self.MASK, context),
            polygons=self.parameterAsOutputLayer(parameters, self.POLYGONS, context),
        )
        model = self.parameterAsFile(parameters, self.MODEL, context)
        return MapInputs(inputs, grid, radius), model, outputs, options

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        inputs, model, outputs, options = self.map_job(parameters, context)
        require_model_runtime(model)
        result = run_core(feedback, map_slumps, inputs, model, outputs, options, log=feedback.pushInfo)
        for warning in result.warnings:
            feedback.reportError(warning, fatalError=False)
        style_on_load(context, result.probability, "probability")
        style_on_load(context, result.mask, "mask")
        style_on_load(context, result.polygons, "slumps")
        return {
            self.STACK: result.stack,
            self.PROBABILITY: result.probability,
            self.MASK: result.mask,
            self.POLYGONS: result.polygons,
            self.COUNT: result.count,
        }
