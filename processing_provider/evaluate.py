"""Algorithm "Evaluate detections": predictions + ground-truth polygons → pixel and object scores."""

from __future__ import annotations

import html
import math
import os

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorLayer,
    QgsRasterLayer,
    QgsWkbTypes,
)

from ..core import report
from ..core.errors import RtsFusionError
from ..core.evaluation import evaluate_detections, metric_rows, write_csv, write_matches
from .common import RtsAlgorithm, field_type, layer_path, style_on_load
from .params import vector_path


class EvaluateAlgorithm(RtsAlgorithm):
    """Score detections against ground truth, per pixel (pooled and per chip) and per object."""

    GROUP = "Analysis"
    PREDICTION = "PREDICTION"
    TRUTH = "TRUTH"
    REFERENCE = "REFERENCE"
    AOI = "AOI"
    THRESHOLD = "THRESHOLD"
    CHIP_SIZE = "CHIP_SIZE"
    IOU = "IOU"
    CONNECTIVITY = "CONNECTIVITY"
    PIXEL_SIZE = "PIXEL_SIZE"
    OUTPUT = "OUTPUT"
    MATCHES = "MATCHES"
    CSV = "CSV"
    HTML = "HTML"

    def name(self) -> str:
        return "evaluate"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return "Evaluate detections"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        return (
            "Compares detections — a probability or mask raster, or slump polygons — with ground-truth slump "
            "polygons.<br><br>"
            "<b>Pixel level</b>: precision, recall, F1, IoU, overall accuracy and Cohen's kappa, pooled over all "
            "pixels and averaged per chip (chips of the chip size holding a true or predicted slump), as the "
            "study reports them (its FusionSA-SegFormer: F1 0.843 per chip on test).<br>"
            "<b>Object level</b>: precision, recall and F1 with one-to-one matching at IoU ≥ the threshold, and "
            "with the study's looser rule (any overlap counts), both over the whole area with objects as the "
            "polygon outlines; and <b>per chip as the study counts them</b> ('object_chips_8_connected_*'): "
            "objects cut at the chip edges, pixels joined into one object by 8-connectivity (diagonal "
            "neighbours join, the study's rule; default) or 4-connectivity (edge neighbours only), a prediction "
            "touching any true slump by one pixel a true positive, and the counts summed over chips.<br>"
            "Outputs a metrics table, CSV and HTML report, and a GeoPackage whose 'predictions' and "
            "'ground_truth' layers mark each polygon TP, FP or FN. Polygon detections are scored on the grid of a "
            "reference raster (e.g. the fused stack) or, without one, on a grid of the given pixel size covering "
            "both layers. An area of interest limits where pixels count; objects wholly outside it are not "
            "counted.<br><br>"
            "An empty ground truth, or ground truth that does not overlap the detections, is an error. Warnings "
            "(ground truth partly outside the detections, no detection touching any true slump) are written to "
            "the log and into the metrics table, CSV and report."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(QgsProcessingParameterMapLayer(self.PREDICTION, "Detections (raster or polygons)"))
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.TRUTH, "Ground-truth slump polygons", [QgsProcessing.SourceType.TypeVectorPolygon]
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterLayer(
                self.REFERENCE, "Reference raster (for polygon detections)", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.AOI, "Area of interest", [QgsProcessing.SourceType.TypeVectorPolygon], optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.THRESHOLD, "Probability threshold", QgsProcessingParameterNumber.Type.Double, 0.4, False, 0.0, 1.0
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.CHIP_SIZE,
                "Chip size for per-chip scores (px)",
                QgsProcessingParameterNumber.Type.Integer,
                256,
                False,
                8,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.IOU, "IoU for object matches", QgsProcessingParameterNumber.Type.Double, 0.5, False, 0.01, 1.0
            )
        )
        connectivity = QgsProcessingParameterEnum(
            self.CONNECTIVITY,
            "Pixel connectivity for the study's per-chip object counts",
            ["8 (diagonal neighbours join; the study's)", "4 (edge neighbours only)"],
            defaultValue=0,
        )
        connectivity.setHelp(
            "How slump pixels join into objects when counting objects per chip as the study does: 8 (default, the "
            "study's cv2 rule) joins pixels touching at a corner, 4 only pixels sharing an edge, so it counts more, "
            "smaller objects."
        )
        self.addParameter(connectivity)
        self.addParameter(
            QgsProcessingParameterNumber(
                self.PIXEL_SIZE,
                "Pixel size for polygon detections without a reference raster (layer CRS units)",
                QgsProcessingParameterNumber.Type.Double,
                optional=True,
                minValue=0.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(self.OUTPUT, "Metrics table", QgsProcessing.SourceType.TypeVector)
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.MATCHES, "Matched polygons (GeoPackage)", "GeoPackage (*.gpkg)", optional=True
            )
        )
        self.addParameter(QgsProcessingParameterFileDestination(self.CSV, "Metrics CSV", "CSV (*.csv)", optional=True))
        self.addParameter(
            QgsProcessingParameterFileDestination(self.HTML, "Report", "HTML files (*.html)", optional=True)
        )
        for name in ("PIXEL_F1", "PIXEL_IOU", "PER_CHIP_F1", "OBJECT_F1", "OBJECT_F1_ANY_OVERLAP", "OBJECT_F1_CHIPS"):
            self.addOutput(QgsProcessingOutputNumber(name, name.replace("_", " ").capitalize()))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        layer = self.parameterAsLayer(parameters, self.PREDICTION, context)
        if layer is None:
            raise QgsProcessingException("The detections layer is missing or invalid.")
        prediction = (
            layer_path(layer, "detections") if isinstance(layer, QgsRasterLayer) else vector_path(layer, "detections")
        )
        truth = vector_path(self.parameterAsVectorLayer(parameters, self.TRUTH, context), "ground truth")
        ref_layer = self.parameterAsRasterLayer(parameters, self.REFERENCE, context)
        aoi_layer = self.parameterAsVectorLayer(parameters, self.AOI, context)
        pixel_size = (
            self.parameterAsDouble(parameters, self.PIXEL_SIZE, context)
            if parameters.get(self.PIXEL_SIZE) not in (None, "")
            else None
        )
        try:
            result = evaluate_detections(
                prediction,
                truth,
                reference=layer_path(ref_layer, "reference") if ref_layer else None,
                aoi=vector_path(aoi_layer, "AOI") if aoi_layer else None,
                threshold=self.parameterAsDouble(parameters, self.THRESHOLD, context),
                chip_size=self.parameterAsInt(parameters, self.CHIP_SIZE, context),
                iou_threshold=self.parameterAsDouble(parameters, self.IOU, context),
                pixel_size=pixel_size or None,
                connectivity=(8, 4)[self.parameterAsEnum(parameters, self.CONNECTIVITY, context)],
            )
        except (RtsFusionError, ValueError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        ev = result.evaluation
        for warning in ev.warnings:
            feedback.reportError(f"Warning: {warning}", fatalError=False)
        rows = metric_rows(ev)
        fields = QgsFields()
        fields.append(QgsField("metric", field_type("String")))
        fields.append(QgsField("pooled", field_type("Double")))
        fields.append(QgsField("per_chip", field_type("Double")))
        fields.append(QgsField("note", field_type("String")))
        sink, dest = self.parameterAsSink(parameters, self.OUTPUT, context, fields, QgsWkbTypes.Type.NoGeometry)
        for row in rows:
            f = QgsFeature(fields)
            f.setAttributes(
                [row["metric"]]
                + [None if math.isnan(row[k]) else row[k] for k in ("pooled", "per_chip")]
                + [row["note"]]
            )
            sink.addFeature(f, QgsFeatureSink.Flag.FastInsert)
        results = {self.OUTPUT: dest}
        matches = self.parameterAsFileOutput(parameters, self.MATCHES, context)
        if matches:
            write_matches(matches, result)
            results[self.MATCHES] = matches
            for name in ("predictions", "ground_truth"):
                uri = f"{matches}|layername={name}"
                details = QgsProcessingContext.LayerDetails(f"Evaluation: {name}", context.project(), self.MATCHES)
                context.addLayerToLoadOnCompletion(uri, details)
                style_on_load(context, uri, "matches")
        csv_path = self.parameterAsFileOutput(parameters, self.CSV, context)
        if csv_path:
            results[self.CSV] = write_csv(csv_path, rows)
        html_path = self.parameterAsFileOutput(parameters, self.HTML, context)
        if html_path:
            table = [
                {"metric": r["metric"], "pooled": r["pooled"], "per chip": r["per_chip"]} for r in rows if not r["note"]
            ]
            warnings = "".join(f"<li>{html.escape(w)}</li>" for w in ev.warnings)
            report.write_html(
                html_path,
                "RTS Fusion evaluation",
                [
                    (
                        "Inputs",
                        f"<p>Detections: {os.path.basename(prediction)}<br>Ground truth: {os.path.basename(truth)}"
                        f"<br>Chips scored: {ev.chips}</p>",
                    ),
                    *((("Warnings", f"<ul>{warnings}</ul>"),) if warnings else ()),
                    ("Scores", report.table(table)),
                    ("Objects", f"<pre>{ev.objects}</pre>"),
                ],
            )
            results[self.HTML] = html_path
        pooled, per_chip = ev.pixel["pooled"], ev.pixel["per_chip"]
        feedback.pushInfo(
            f"Pixel F1 {pooled['f1']:.3f} (per chip {per_chip.get('f1', float('nan')):.3f}), IoU {pooled['iou']:.3f}; "
            f"object F1 {ev.objects['one_to_one']['f1']:.3f} (any overlap {ev.objects['any_overlap']['f1']:.3f}; "
            f"per chip, {ev.objects['per_chip']['connectivity']}-connected, {ev.objects['per_chip']['f1']:.3f})."
        )
        results.update(
            PIXEL_F1=pooled["f1"],
            PIXEL_IOU=pooled["iou"],
            PER_CHIP_F1=per_chip.get("f1"),
            OBJECT_F1=ev.objects["one_to_one"]["f1"],
            OBJECT_F1_ANY_OVERLAP=ev.objects["any_overlap"]["f1"],
            OBJECT_F1_CHIPS=ev.objects["per_chip"]["f1"],
        )
        return results
