"""Algorithm "Detect thaw slumps": fused stack + model package → probability raster and binary mask."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..core.errors import RtsFusionError
from .common import RtsAlgorithm, layer_path, optional_number, require_model_runtime, run_core, style_on_load
from .params import MODEL_HELP, add_device_parameter, add_model_file_parameter, add_threshold_parameter, device_choice


class DetectAlgorithm(RtsAlgorithm):
    """Run a trained model over a fused stack, tile by tile, with seamless blending."""

    GROUP = "Deep learning"
    STACK = "STACK"
    MODEL = "MODEL"
    DEVICE = "DEVICE"
    BATCH_SIZE = "BATCH_SIZE"
    THRESHOLD = "THRESHOLD"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    TTA = "TTA"
    EXTENT = "EXTENT"
    PROBABILITY_TYPE = "PROBABILITY_TYPE"
    PROBABILITY = "PROBABILITY"
    MASK = "MASK"

    def name(self) -> str:
        return "detect"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return "Detect thaw slumps"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        return (
            "Runs a model package (from 'Train RTS model') or an exported .onnx model over a fused stack and writes "
            "the slump probability and the binary mask (probability ≥ threshold).<br><br>" + MODEL_HELP + "<br>"
            "The stack's bands are matched to the model's by name; a missing band is named in the error. Tiles of "
            "the model's tile size overlap by its overlap and are blended with a smooth window, so there are no "
            "seams; memory stays bounded whatever the raster size. Nodata pixels stay nodata. A stack smaller "
            "than one tile is padded for the model and the outputs keep the stack's size. An extent gets exactly "
            "the probabilities the whole stack gets there (the tiles reach beyond it where the stack goes on).<br>"
            "<b>Probability</b>: float32 0–1 (nodata −1), or uint8 where the value is round(p × 250) and 255 is "
            "nodata. <b>Mask</b>: 1 slump, 0 background, 255 nodata.<br>"
            "<b>Device</b> (default auto): with PyTorch, auto uses a CUDA GPU when present (bf16/fp16 mixed "
            "precision, batch size lowered on out-of-memory) and all CPU threads otherwise; with ONNX Runtime, auto "
            "uses the CUDA, DirectML or CoreML execution provider when installed, else the CPU (cuda needs "
            "onnxruntime-gpu). Test-time augmentation averages four flips."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(QgsProcessingParameterRasterLayer(self.STACK, "Fused stack"))
        add_model_file_parameter(self, self.MODEL)
        add_device_parameter(self, self.DEVICE)
        self.addParameter(
            QgsProcessingParameterNumber(
                self.BATCH_SIZE, "Batch size (tiles)", QgsProcessingParameterNumber.Type.Integer, 4, False, 1, 256
            )
        )
        add_threshold_parameter(self, self.THRESHOLD)
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, "Extent (empty: whole stack)", optional=True))
        advanced = [
            QgsProcessingParameterNumber(
                self.TILE_SIZE,
                "Tile size (empty: the model's)",
                QgsProcessingParameterNumber.Type.Integer,
                None,
                True,
                32,
            ),
            QgsProcessingParameterNumber(
                self.OVERLAP,
                "Tile overlap (empty: the model's)",
                QgsProcessingParameterNumber.Type.Integer,
                None,
                True,
                0,
            ),
            QgsProcessingParameterBoolean(self.TTA, "Test-time augmentation (flips)", defaultValue=False),
            QgsProcessingParameterEnum(
                self.PROBABILITY_TYPE, "Probability raster type", ["float32 (0-1)", "uint8 (p x 250)"], defaultValue=0
            ),
        ]
        for p in advanced:
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(p)
        self.addParameter(QgsProcessingParameterRasterDestination(self.PROBABILITY, "Slump probability"))
        self.addParameter(QgsProcessingParameterRasterDestination(self.MASK, "Slump mask", optional=True))
        self.addOutput(QgsProcessingOutputNumber("SLUMP_PIXELS", "Slump pixels"))
        self.addOutput(QgsProcessingOutputNumber("TILES", "Tiles processed"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        model_path = self.parameterAsFile(parameters, self.MODEL, context)
        require_model_runtime(model_path)
        from ..models.inference import InferenceOptions, bounds_to_window, predict_stack
        from ..pipeline.map_slumps import load_model

        stack_layer = self.parameterAsRasterLayer(parameters, self.STACK, context)
        stack = layer_path(stack_layer, "fused stack")
        window = None
        if parameters.get(self.EXTENT):
            r = self.parameterAsExtent(parameters, self.EXTENT, context, stack_layer.crs())
            try:
                window = bounds_to_window(stack, (r.xMinimum(), r.yMinimum(), r.xMaximum(), r.yMaximum()))
            except RtsFusionError as exc:
                raise QgsProcessingException(str(exc)) from exc
        device = device_choice(self, parameters, context, self.DEVICE)
        try:
            loaded = load_model(model_path)
        except ValueError as exc:
            raise QgsProcessingException(str(exc)) from exc
        model, card = loaded.model, loaded.card
        options = InferenceOptions(
            device=device,
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            tile_size=optional_number(self, parameters, self.TILE_SIZE, context, integer=True),
            overlap=optional_number(self, parameters, self.OVERLAP, context, integer=True),
            threshold=optional_number(self, parameters, self.THRESHOLD, context),
            tta=self.parameterAsBool(parameters, self.TTA, context),
            window=window,
            probability_dtype=("float32", "uint8")[self.parameterAsEnum(parameters, self.PROBABILITY_TYPE, context)],
        )
        prob = self.parameterAsOutputLayer(parameters, self.PROBABILITY, context)
        mask = self.parameterAsOutputLayer(parameters, self.MASK, context) or None
        result = run_core(feedback, predict_stack, model, card, stack, prob, mask, options, log=feedback.pushInfo)
        feedback.pushInfo(
            f"{result.tiles} tiles on {result.device}; {result.slump_pixels} of {result.valid_pixels} valid pixels "
            "classified as slump."
        )
        style_on_load(context, prob, "probability")
        style_on_load(context, mask, "mask")
        return {self.PROBABILITY: prob, self.MASK: mask, "SLUMP_PIXELS": result.slump_pixels, "TILES": result.tiles}
