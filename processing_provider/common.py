"""Shared pieces of the algorithms: base class, core-error translation, feedback adapters."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TypeVar

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
)
from qgis.PyQt.QtGui import QIcon

from ..core.errors import OperationCanceled, RtsFusionError
from ..pipeline.map_slumps import MapOptions
from .params import check_outputs, device_choice

T = TypeVar("T")
ICON = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "icon.svg")


class RtsAlgorithm(QgsProcessingAlgorithm):
    """Base of every RTS Fusion algorithm: icon, group, and a fresh instance per run."""

    GROUP = "Data preparation"

    def createInstance(self):  # noqa: N802 - QGIS API name
        return type(self)()

    def group(self) -> str:
        return self.GROUP

    def groupId(self) -> str:  # noqa: N802 - QGIS API name
        return self.GROUP.lower().replace(" ", "")

    def icon(self) -> QIcon:
        return QIcon(ICON)

    def checkParameterValues(self, parameters, context):  # noqa: N802 - QGIS API name
        ok, message = super().checkParameterValues(parameters, context)
        if ok:
            try:
                check_outputs(self, parameters, context)
            except QgsProcessingException as exc:
                return False, str(exc)
        return ok, message

    def prepareAlgorithm(self, parameters, context, feedback) -> bool:  # noqa: N802 - QGIS API name
        # Every way of running (dialog, processing.run, qgis_process, the modeller, the panel's task) passes
        # here before any work: an output that would destroy an input is refused whoever skipped the check.
        check_outputs(self, parameters, context, create_folders=True)
        return True


def run_core(feedback: QgsProcessingFeedback, fn: Callable[..., T], *args, **kwargs) -> T:
    """Call a core function with progress and cancel wired to feedback; core errors become messages.

    A RtsFusionError (bad input, explained) and a cancellation turn into QgsProcessingException, which
    Processing shows to the user as a message instead of a traceback.
    """
    try:
        return fn(*args, progress=feedback.setProgress, is_canceled=feedback.isCanceled, **kwargs)
    except OperationCanceled as exc:
        raise QgsProcessingException(f"Cancelled by the user; partial outputs were removed. ({exc})") from exc
    except RtsFusionError as exc:
        raise QgsProcessingException(str(exc)) from exc


def optional_number(alg: QgsProcessingAlgorithm, parameters, name: str, context, integer: bool = False):
    """A number parameter's value, or None when it was left empty."""
    value = parameters.get(name)
    if value is None or value == "":
        return None
    return (
        alg.parameterAsInt(parameters, name, context) if integer else alg.parameterAsDouble(parameters, name, context)
    )


def map_options(alg: QgsProcessingAlgorithm, parameters, context) -> MapOptions:
    """The detection settings of an algorithm that maps slumps (its DEVICE, THRESHOLD and MIN_AREA parameters).

    Raises:
        QgsProcessingException: a value the pipeline refuses, with its reason.

    """
    try:
        return MapOptions(
            device=device_choice(alg, parameters, context, alg.DEVICE),
            threshold=optional_number(alg, parameters, alg.THRESHOLD, context),
            min_area_m2=alg.parameterAsDouble(parameters, alg.MIN_AREA, context),
        )
    except RtsFusionError as exc:
        raise QgsProcessingException(str(exc)) from exc


def layer_path(layer, name: str) -> str:
    """File path behind a raster layer parameter, or a clear error for layers that are not files."""
    if layer is None:
        raise QgsProcessingException(f"The {name} layer is missing or invalid.")
    path = layer.source().split("|")[0]
    if not os.path.exists(path):
        raise QgsProcessingException(
            f"The {name} layer '{layer.name()}' is not a local raster file ({layer.source()}); "
            "save it as a GeoTIFF first."
        )
    return path


# Plain words, no "<" or ">": Processing's log shows messages as HTML, where "transformers<5" loses its tail.
DEEP_LEARNING_HINT = (
    "This algorithm needs PyTorch, transformers and safetensors in QGIS's Python. Install them from the menu "
    "Raster → RTS Fusion → Install deep-learning dependencies… (the README's installation section shows the "
    "pip commands), then restart QGIS."
)


def missing_modules(names: Sequence[str]) -> list[str]:
    """Modules that cannot be found, without importing them (cheap at start-up; a hidden module counts as missing)."""
    import importlib.util
    import sys

    missing = []
    for name in names:
        if name in sys.modules and sys.modules[name] is None:
            missing.append(name)
            continue
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    return missing


def require_deep_learning() -> None:
    """Raise a QgsProcessingException naming what to install when torch/transformers are missing."""
    missing = missing_modules(("torch", "transformers", "safetensors"))
    if missing:
        raise QgsProcessingException(f"Missing Python package(s): {', '.join(missing)}. {DEEP_LEARNING_HINT}")
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except Exception as exc:  # a broken install raises all sorts of errors
        raise QgsProcessingException(f"PyTorch or transformers failed to import ({exc}). {DEEP_LEARNING_HINT}") from exc


def require_model_runtime(model_path: str) -> None:
    """Raise a QgsProcessingException naming what to install for mapping with this model file.

    An exported .onnx model needs onnxruntime only; a model package needs PyTorch and transformers.
    """
    from ..models.onnx_runtime import ORT_HINT, is_onnx

    if not is_onnx(model_path):
        require_deep_learning()
        return
    if missing_modules(("onnxruntime",)):
        raise QgsProcessingException(f"Missing Python package: onnxruntime. {ORT_HINT}")


STYLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "styles")


class _StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Applies a QML style (and optionally a name) to an output layer when Processing loads it."""

    def __init__(self, qml: str) -> None:
        super().__init__()
        self.qml = qml

    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802 - QGIS API name
        layer.loadNamedStyle(self.qml)
        layer.triggerRepaint()


# Post-processors must outlive the algorithm run; Processing does not keep the Python objects alive.
_KEEP_ALIVE: list[_StylePostProcessor] = []


def style_on_load(context: QgsProcessingContext, output: str, style: str) -> None:
    """Style an output layer with resources/styles/<style>.qml when Processing loads it into the project."""
    if not output or not context.willLoadLayerOnCompletion(output):
        return
    proc = _StylePostProcessor(os.path.join(STYLES, f"{style}.qml"))
    _KEEP_ALIVE.append(proc)
    context.layerToLoadOnCompletionDetails(output).setPostProcessor(proc)


def field_type(name: str):
    """A QgsField type on Qt5 and Qt6: QVariant.Type.<name> (QGIS 3) or QMetaType.Type.<name> (QGIS 4).

    Args:
        name: Bool, Int, LongLong, Double or String.

    """
    from qgis.PyQt.QtCore import QT_VERSION_STR

    if int(QT_VERSION_STR.split(".")[0]) >= 6:
        from qgis.PyQt.QtCore import QMetaType

        return getattr(QMetaType.Type, "QString" if name == "String" else name)
    from qgis.PyQt.QtCore import QVariant

    return getattr(QVariant.Type, name)  # noqa: QGS402 - the Qt5 (QGIS 3) branch


def write_table(alg: QgsProcessingAlgorithm, parameters, name: str, context, rows: list[dict], columns=None) -> str:
    """Write dict rows to a geometry-less feature sink; field types from the first value that is not None."""
    from qgis.core import QgsFeature, QgsFeatureSink, QgsField, QgsFields, QgsWkbTypes

    columns = list(columns or (rows[0].keys() if rows else []))
    fields = QgsFields()
    for col in columns:
        example = next((r.get(col) for r in rows if r.get(col) is not None), "")
        kind = (
            "Bool"
            if isinstance(example, bool)
            else "LongLong"
            if isinstance(example, int)
            else "Double"
            if isinstance(example, float)
            else "String"
        )
        fields.append(QgsField(col, field_type(kind)))
    sink, dest = alg.parameterAsSink(parameters, name, context, fields, QgsWkbTypes.Type.NoGeometry)
    if sink is None:
        raise QgsProcessingException(alg.invalidSinkError(parameters, name))
    for row in rows:
        f = QgsFeature(fields)
        f.setAttributes([row.get(col) for col in columns])
        sink.addFeature(f, QgsFeatureSink.Flag.FastInsert)
    return dest
