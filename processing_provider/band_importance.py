"""Algorithm "Band importance": which input bands drive a model's slump predictions."""

from __future__ import annotations

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
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
    QgsProcessingParameterVectorLayer,
    QgsWkbTypes,
)

from ..core.outputs import atomic_output
from .common import RtsAlgorithm, field_type, layer_path, require_deep_learning, run_core
from .params import DEVICES, vector_path

METHOD_LABELS = ("Both (saliency and permutation)", "Permutation (drop in F1 and IoU)", "Saliency (|gradient × input|)")
FIELDS = (
    ("rank", field_type("Int")),
    ("method", field_type("String")),
    ("kind", field_type("String")),
    ("band", field_type("String")),
    ("group", field_type("String")),
    ("importance", field_type("Double")),
    ("std", field_type("Double")),
    ("f1_drop", field_type("Double")),
    ("iou_drop", field_type("Double")),
    ("iou_std", field_type("Double")),
    ("samples", field_type("Int")),
)


class BandImportanceAlgorithm(RtsAlgorithm):
    """Rank a model's input bands (and band groups) by saliency and permutation importance."""

    GROUP = "Analysis"
    MODEL = "MODEL"
    STACK = "STACK"
    TRUTH = "TRUTH"
    AOI = "AOI"
    METHOD = "METHOD"
    REPEATS = "REPEATS"
    SEED = "SEED"
    DEVICE = "DEVICE"
    BATCH_SIZE = "BATCH_SIZE"
    OUTPUT = "OUTPUT"
    CSV = "CSV"
    CHART = "CHART"
    BASELINE_F1 = "BASELINE_F1"  # outputs: scores of the unshuffled prediction and the top band
    BASELINE_IOU = "BASELINE_IOU"
    TOP_BAND = "TOP_BAND"

    def name(self) -> str:
        return "bandimportance"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return "Band importance"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        return (
            "Ranks the input bands of a model package by how much its slump predictions depend on them, on an "
            "area of a fused stack with ground-truth slump polygons (the whole stack, or the bounding box of the "
            "area of interest; at most 4096 × 4096 px).<br><br>"
            "<b>Saliency</b> (the study's method, fast): mean |gradient × input| per band of the mean predicted "
            "slump probability inside the true slumps, as a share of the total.<br>"
            "<b>Permutation</b>: each band's valid pixels are shuffled within the area (repeated with different "
            "permutations, seeded) and the drop in F1 and IoU against the unshuffled prediction's scores is "
            "recorded; the optical and auxiliary band groups are shuffled as wholes too.<br>"
            "Outputs a table sorted by importance (a layer and optionally CSV) and a bar chart PNG."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(QgsProcessingParameterFile(self.MODEL, "Model package", extension="safetensors"))
        self.addParameter(QgsProcessingParameterRasterLayer(self.STACK, "Fused stack"))
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.TRUTH, "Ground-truth slump polygons", [QgsProcessing.SourceType.TypeVectorPolygon]
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.AOI, "Area of interest", [QgsProcessing.SourceType.TypeVectorPolygon], optional=True
            )
        )
        self.addParameter(QgsProcessingParameterEnum(self.METHOD, "Method", list(METHOD_LABELS), defaultValue=0))
        self.addParameter(
            QgsProcessingParameterNumber(
                self.REPEATS, "Permutations per band", QgsProcessingParameterNumber.Type.Integer, 3, False, 1, 50
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.SEED, "Random seed", QgsProcessingParameterNumber.Type.Integer, 0, False, 0
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(self.DEVICE, "Device", ["Auto (CUDA if present)", "CPU", "CUDA"], defaultValue=0)
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.BATCH_SIZE, "Batch size (tiles)", QgsProcessingParameterNumber.Type.Integer, 4, False, 1, 256
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(self.OUTPUT, "Band importance table", QgsProcessing.SourceType.TypeVector)
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(self.CSV, "Importance CSV", "CSV (*.csv)", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(self.CHART, "Importance chart", "PNG images (*.png)", optional=True)
        )
        self.addOutput(QgsProcessingOutputNumber(self.BASELINE_F1, "F1 of the unshuffled prediction"))
        self.addOutput(QgsProcessingOutputNumber(self.BASELINE_IOU, "IoU of the unshuffled prediction"))
        self.addOutput(QgsProcessingOutputString(self.TOP_BAND, "Most important band"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        require_deep_learning()
        from ..models.importance import METHODS, ImportanceOptions, band_importance, write_csv
        from ..models.package import load_package

        stack = layer_path(self.parameterAsRasterLayer(parameters, self.STACK, context), "fused stack")
        truth = vector_path(self.parameterAsVectorLayer(parameters, self.TRUTH, context), "ground truth")
        aoi_layer = self.parameterAsVectorLayer(parameters, self.AOI, context)
        aoi = vector_path(aoi_layer, "area of interest") if aoi_layer else None
        try:
            model, card = load_package(self.parameterAsFile(parameters, self.MODEL, context))
        except ValueError as exc:
            raise QgsProcessingException(str(exc)) from exc
        method = METHODS[self.parameterAsEnum(parameters, self.METHOD, context)]
        options = ImportanceOptions(
            method=method,
            repeats=self.parameterAsInt(parameters, self.REPEATS, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
        )
        result = run_core(feedback, band_importance, model, card, stack, truth, aoi, options)
        feedback.pushInfo(
            f"Unshuffled prediction on {result.area[2]} × {result.area[3]} px: F1 {result.baseline['f1']:.3f}, "
            f"IoU {result.baseline['iou']:.3f}."
        )
        fields = QgsFields()
        for name, kind in FIELDS:
            fields.append(QgsField(name, kind))
        sink, dest = self.parameterAsSink(parameters, self.OUTPUT, context, fields, QgsWkbTypes.Type.NoGeometry)
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT))
        for row in result.rows:
            f = QgsFeature(fields)
            f.setAttributes([row.get(name) for name, _ in FIELDS])
            sink.addFeature(f, QgsFeatureSink.Flag.FastInsert)
        bands = [r for r in result.rows if r["kind"] == "band"]
        top = bands[0]["band"] if bands else ""
        results = {
            self.OUTPUT: dest,
            self.BASELINE_F1: result.baseline["f1"],
            self.BASELINE_IOU: result.baseline["iou"],
            self.TOP_BAND: top,
        }
        for r in bands[:5]:
            feedback.pushInfo(f"{r['method']:>11} #{r['rank']}: {r['band']} {r['importance']:.4f}")
        csv_path = self.parameterAsFileOutput(parameters, self.CSV, context)
        if csv_path:
            write_csv(csv_path, result)
            results[self.CSV] = csv_path
        chart = self.parameterAsFileOutput(parameters, self.CHART, context)
        if chart:
            importance_chart(chart, result.rows)
            results[self.CHART] = chart
        return results


def importance_chart(path: str, rows: list[dict]) -> str:
    """A bar chart PNG of the band rows, one panel per method, most important first."""
    from ..core.report import _pyplot

    plt = _pyplot()
    methods = [m for m in ("permutation", "saliency") if any(r["method"] == m for r in rows)]
    fig, axes = plt.subplots(len(methods), 1, figsize=(7, 3.2 * len(methods)), dpi=100, squeeze=False)
    for ax, method in zip(axes[:, 0], methods):
        band_rows = [r for r in rows if r["method"] == method and r["kind"] == "band"]
        colours = ["#2b83ba" if r["group"] == "optical" else "#d7191c" for r in band_rows]
        ax.bar(
            [r["band"] for r in band_rows],
            [r["importance"] for r in band_rows],
            yerr=[r["std"] or 0 for r in band_rows],
            color=colours,
            capsize=2,
        )
        ax.set_ylabel("F1 drop" if method == "permutation" else "share of |grad × input|")
        ax.set_title(f"{method.capitalize()} importance (blue: optical, red: auxiliary)")
        ax.tick_params(axis="x", rotation=45)
        ax.axhline(0, color="#555", linewidth=0.6)
    fig.tight_layout()
    with atomic_output(path, "importance chart") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path
