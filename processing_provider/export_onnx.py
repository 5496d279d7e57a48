"""Algorithm "Export model to ONNX": a model package → an .onnx file for mapping without PyTorch."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
)

from ..core.errors import RtsFusionError
from .common import RtsAlgorithm, missing_modules, require_deep_learning


class ExportOnnxAlgorithm(RtsAlgorithm):
    """Export a trained model package to ONNX, with its card and the keys Deepness/GeoDeep read."""

    GROUP = "Deep learning"
    MODEL = "MODEL"
    OUTPUT = "OUTPUT"
    MAX_DIFF = "MAX_DIFF"

    def name(self) -> str:
        return "exportonnx"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return "Export model to ONNX"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        return (
            "Writes a model package (.safetensors) as an ONNX model (.onnx) that 'Detect thaw slumps', 'Map thaw "
            "slumps' and the panel run with ONNX Runtime, without PyTorch (a runtime of about 70 MB instead of "
            "PyTorch's ~1 GB): same bands, tiles, blending, nodata handling, normalisation and outputs.<br><br>"
            "<b>Model package</b>: a .safetensors file from 'Train RTS model' or 'Import the authors' checkpoint'. "
            "Exporting needs PyTorch and the onnx package; only mapping with the result is PyTorch-free.<br>"
            "<b>ONNX model</b>: the file written. Its graph takes normalised tiles (batch, bands, height, width; "
            "batch and tile size free) and returns the slump probability (batch, 1, height, width). Its metadata "
            "holds the full model card (key rtsfusion_card) and the keys Deepness and GeoDeep read: model_type "
            "Segmentor, class_names, resolution (cm per pixel), tiles_size, tiles_overlap (percent of the tile), "
            "seg_thresh, standardization_mean and standardization_std. These two are the card's statistics for "
            "models normalised by standardisation; for the per-chip schemes (the study's min–max scaling) they "
            "are 0 and 1, and only RTS Fusion applies the card's normalisation.<br>"
            "The export is run once with ONNX Runtime and compared with PyTorch on two random tiles; a difference "
            "above 1e-4 in probability is refused and nothing is written. <b>Max |Δprobability|</b> reports it."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(
            QgsProcessingParameterFile(self.MODEL, "Model package (.safetensors)", extension="safetensors")
        )
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "ONNX model", "ONNX model (*.onnx)"))
        self.addOutput(QgsProcessingOutputNumber(self.MAX_DIFF, "Max |Δprobability| against PyTorch"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        require_deep_learning()
        missing = missing_modules(("onnx", "onnxruntime"))
        if missing:
            raise QgsProcessingException(
                f"Missing Python package(s): {', '.join(missing)}. Exporting to "
                "ONNX needs onnx and onnxruntime (pip install onnx onnxruntime in QGIS's Python)."
            )
        from ..models.onnx_export import export_onnx

        package = self.parameterAsFile(parameters, self.MODEL, context)
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if not out.lower().endswith(".onnx"):
            out += ".onnx"
        try:
            result = export_onnx(package, out, log=feedback.pushInfo)
        except RtsFusionError as exc:
            raise QgsProcessingException(str(exc)) from exc
        return {self.OUTPUT: result.path, self.MAX_DIFF: result.max_abs_diff}
