"""Algorithm "Polygonise detections": probability or mask raster → attributed, editable slump polygons."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from ..core.polygons import PolygonizeOptions, polygonize
from .common import RtsAlgorithm, layer_path, run_core, style_on_load
from .params import vector_output


class PolygonizeAlgorithm(RtsAlgorithm):
    """Turn detections into polygons with area, perimeter, probability and terrain/thermal attributes."""

    GROUP = "Deep learning"
    INPUT = "INPUT"
    THRESHOLD = "THRESHOLD"
    MIN_AREA = "MIN_AREA"
    FILL_HOLES = "FILL_HOLES"
    SIMPLIFY = "SIMPLIFY"
    SMOOTH = "SMOOTH"
    DROP_NODATA = "DROP_NODATA"
    STACK = "STACK"
    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "polygonize"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return "Polygonise detections"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        return (
            "Turns a slump probability raster (from 'Detect thaw slumps', float 0–1 or uint8 ×250) or a 0/1 mask "
            "into polygons in a GeoPackage, ready to edit. Any other raster (several bands, values outside 0–1, "
            "or 0–250 for the uint8 form, an integer raster other than 0/1) is refused.<br><br>"
            "Pixels at or above the threshold are slumps (probability input; a mask is taken as is). Holes "
            "smaller than the hole area are filled, objects smaller than the minimum area dropped, and objects "
            "touching nodata (fragments cut by missing data) dropped unless unticked. Outlines can be simplified "
            "(tolerance in map units) and smoothed (Chaikin passes) without self-intersections: a polygon whose "
            "smoothed outline would be invalid keeps its pixel outline.<br>"
            "<b>Attributes</b>: id, area_m2, perimeter_m, pixels, prob_mean, prob_max, and — with the fused stack "
            "— elev_mean, slope_mean (derived from DEM if the stack has no SLOPE), lst_mean and ndvi_mean."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Probability or mask raster"))
        self.addParameter(
            QgsProcessingParameterNumber(
                self.THRESHOLD, "Probability threshold", QgsProcessingParameterNumber.Type.Double, 0.4, False, 0.0, 1.0
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MIN_AREA, "Minimum slump area (m²)", QgsProcessingParameterNumber.Type.Double, 1000.0, False, 0.0
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.FILL_HOLES,
                "Fill holes smaller than (m²)",
                QgsProcessingParameterNumber.Type.Double,
                500.0,
                False,
                0.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.SIMPLIFY,
                "Simplify tolerance (map units, 0 = none)",
                QgsProcessingParameterNumber.Type.Double,
                0.0,
                False,
                0.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.SMOOTH,
                "Smoothing passes (Chaikin, 0 = keep the pixel outline)",
                QgsProcessingParameterNumber.Type.Integer,
                0,
                False,
                0,
                5,
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(self.DROP_NODATA, "Drop objects touching nodata", defaultValue=True)
        )
        self.addParameter(QgsProcessingParameterRasterLayer(self.STACK, "Fused stack (for attributes)", optional=True))
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT, "Slump polygons", QgsProcessing.SourceType.TypeVectorPolygon
            )
        )
        self.addOutput(QgsProcessingOutputNumber("COUNT", "Number of polygons"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        raster = layer_path(self.parameterAsRasterLayer(parameters, self.INPUT, context), "detection")
        stack_layer = self.parameterAsRasterLayer(parameters, self.STACK, context)
        stack = layer_path(stack_layer, "fused stack") if stack_layer else None
        opts = PolygonizeOptions(
            threshold=self.parameterAsDouble(parameters, self.THRESHOLD, context),
            min_area_m2=self.parameterAsDouble(parameters, self.MIN_AREA, context),
            fill_holes_m2=self.parameterAsDouble(parameters, self.FILL_HOLES, context),
            simplify_m=self.parameterAsDouble(parameters, self.SIMPLIFY, context),
            smooth_iterations=self.parameterAsInt(parameters, self.SMOOTH, context),
            drop_touching_nodata=self.parameterAsBool(parameters, self.DROP_NODATA, context),
        )
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        with vector_output(output, "slump polygons") as gpkg:
            count = run_core(feedback, polygonize, raster, gpkg, opts, stack_path=stack)
        feedback.pushInfo(f"{count} slump polygons written.")
        style_on_load(context, output, "slumps")
        return {self.OUTPUT: output, "COUNT": count}
