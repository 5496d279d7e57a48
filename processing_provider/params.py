"""Parameter definitions and helpers the algorithms share: devices, model choices, vector inputs, safe outputs.

Algorithms import these from here, never from a sibling algorithm module. Kept free of torch: the choices come
from models/registry.py, which imports without it.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator

from qgis.core import (
    Qgis,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProperty,
    QgsWkbTypes,
)

from ..core.errors import RtsFusionError
from ..core.outputs import atomic_output, check_distinct, check_not_input, check_writable
from ..models.config import MIT_VARIANTS
from ..models.registry import ARCHITECTURES, MIT_BASED

DEVICES = ("auto", "cpu", "cuda")

# The order of the Train algorithm's architecture choices: saved models and scripts use these indexes, so the
# first fourteen keep their places and architectures added to the registry later are appended in its order.
_TRAIN_FIRST = (
    "fusion_sa_segformer",
    "sa_segformer",
    "ca_segformer",
    "segformer",
    "fusion_sa_segformer_ds",
    "cnn3",
    "unet_resnet34",
    "unetpp_resnet34",
    "deeplabv3plus_resnet34",
    "fcn_resnet50",
    "unet_convnext",
    "unet_swin",
    "sa_convnext",
    "ca_convnext",
)
TRAIN_ARCHITECTURE_IDS = _TRAIN_FIRST + tuple(a for a in ARCHITECTURES if a not in _TRAIN_FIRST)
TRAIN_ARCHITECTURES = tuple((a, ARCHITECTURES[a][0]) for a in TRAIN_ARCHITECTURE_IDS)
# MiT variants b0–b5 in order, then the tiny test size (indexes are the Train algorithm's ENCODER choices).
ENCODERS = (*sorted(v for v in MIT_VARIANTS if v.startswith("b")), "tiny")


def add_device_parameter(alg: QgsProcessingAlgorithm, name: str = "DEVICE") -> None:
    """The device choice (auto, cpu, cuda), default auto."""
    alg.addParameter(QgsProcessingParameterEnum(name, "Device", list(DEVICES), defaultValue=0))


MODEL_FILTER = "RTS Fusion model (*.safetensors *.onnx);;Model package (*.safetensors);;Exported ONNX model (*.onnx)"
MODEL_HELP = (
    "<b>Model</b>: a model package (.safetensors, from 'Train RTS model'; runs with PyTorch) or a model exported "
    "with 'Export model to ONNX' (.onnx; runs with ONNX Runtime, no PyTorch needed, same tiles, normalisation and "
    "outputs). "
)


def add_model_file_parameter(alg: QgsProcessingAlgorithm, name: str = "MODEL") -> None:
    """The model file for mapping: a .safetensors package or an exported .onnx model."""
    alg.addParameter(
        QgsProcessingParameterFile(name, "Model (.safetensors package or exported .onnx)", fileFilter=MODEL_FILTER)
    )


def add_threshold_parameter(alg: QgsProcessingAlgorithm, name: str = "THRESHOLD") -> None:
    """The optional decision threshold (0–1); empty uses the model card's."""
    alg.addParameter(
        QgsProcessingParameterNumber(
            name, "Threshold (empty: the model's)", QgsProcessingParameterNumber.Type.Double, None, True, 0.0, 1.0
        )
    )


def add_min_area_parameter(alg: QgsProcessingAlgorithm, name: str = "MIN_AREA") -> None:
    """The minimum slump area in m², default 1000."""
    param = QgsProcessingParameterNumber(
        name, "Minimum slump area (m²)", QgsProcessingParameterNumber.Type.Double, 1000.0, False, 0.0
    )
    param.setMetadata({"widget_wrapper": {"decimals": 0}})  # whole square metres: "1000", not "1000.000000"
    alg.addParameter(param)


def device_choice(alg: QgsProcessingAlgorithm, parameters, context, name: str = "DEVICE") -> str:
    """The device name chosen in a device parameter."""
    return DEVICES[alg.parameterAsEnum(parameters, name, context)]


def train_encoder(architecture: str, encoder: str) -> str:
    """The encoder a Train choice means: MiT variants for the SegFormer family, else tiny or the standard size."""
    if architecture not in MIT_BASED and encoder != "tiny":
        return "standard"
    return encoder


def _polygon_geometry_type():
    # Qgis.WkbType from QGIS 3.30 (the only spelling on QGIS 4), QgsWkbTypes.Type before.
    wkb = Qgis.WkbType.Polygon if hasattr(Qgis, "WkbType") else QgsWkbTypes.Type.Polygon
    return QgsWkbTypes.geometryType(wkb)


def _static_property_type():
    # Qgis.PropertyType from QGIS 3.36 (the only spelling on QGIS 4), QgsProperty.Type before.
    return Qgis.PropertyType.Static if hasattr(Qgis, "PropertyType") else QgsProperty.Type.StaticProperty


def vector_path(layer, name: str, polygons: bool = True) -> str:
    """The source of a vector layer parameter for the core readers, keeping the layer chosen inside the file.

    Returns 'path' or 'path|layername=NAME' (also '|layerid=N', '|subset=FILTER'), which core.vector reads as
    that layer, filtered.

    Args:
        layer: The QgsVectorLayer from parameterAsVectorLayer (None when missing).
        name: The parameter's name for messages ("inventory", "ground truth", ...).
        polygons: Refuse a point, line or geometry-less layer (slump outlines and areas need polygons).

    Raises:
        QgsProcessingException: Missing, not a local file, or not polygons; the message names the layer.

    """
    if layer is None or not layer.isValid():
        raise QgsProcessingException(f"The {name} layer is missing or invalid.")
    path, *parts = layer.source().split("|")
    if layer.providerType() != "ogr" or not os.path.isfile(path):
        raise QgsProcessingException(
            f"The {name} layer '{layer.name()}' is not a local vector file ({layer.source()}); "
            "save it as a GeoPackage first."
        )
    if polygons and layer.geometryType() != _polygon_geometry_type():
        kind = QgsWkbTypes.geometryDisplayString(layer.geometryType()).lower()
        raise QgsProcessingException(
            f"The {name} layer '{layer.name()}' holds {kind} features; polygons are needed (slump outlines or "
            "areas). Give a polygon layer, or buffer the features into polygons first."
        )
    keep = [p for p in parts if p.split("=", 1)[0].strip().lower() in ("layername", "layerid", "subset")]
    return "|".join([path, *keep])


@contextlib.contextmanager
def vector_output(destination: str, what: str) -> Iterator[str]:
    """Yield a GeoPackage path to write; when the block succeeds the destination holds the layer.

    A .gpkg destination is written beside itself and moved into place; any other format (shapefile, GeoJSON,
    ...) is converted from a GeoPackage in a temporary folder that is always removed. A failure leaves a file
    already at the destination untouched and no partial file.
    """
    try:
        if destination.lower().endswith(".gpkg"):
            with atomic_output(destination, what) as tmp:
                yield tmp
            return
        with tempfile.TemporaryDirectory(prefix="rts_fusion_") as work:
            gpkg = os.path.join(work, "layer.gpkg")
            yield gpkg
            from osgeo import gdal

            gdal.UseExceptions()
            with atomic_output(destination, what) as tmp:
                try:
                    ok = gdal.VectorTranslate(tmp, gpkg)
                except RuntimeError as exc:
                    raise QgsProcessingException(f"Cannot write the {what} to '{destination}': {exc}") from exc
                if ok is None:
                    raise QgsProcessingException(f"Cannot write the {what} to '{destination}' (format not supported).")
                ok = None  # closing the dataset flushes it before the move
    except RtsFusionError as exc:  # an output folder that cannot be created or written
        raise QgsProcessingException(str(exc)) from exc


# ----- data safety: outputs never replace inputs ------------------------------------------------------------------
_INPUT_TYPES = ("raster", "vector", "layer", "source", "multilayer", "file")
_DESTINATION_TYPES = ("rasterDestination", "vectorDestination", "fileDestination", "folderDestination", "sink")


def _layer_file(layer) -> str | None:
    source = layer.source()
    if source.upper().startswith("GPKG:"):  # a raster table inside a GeoPackage: GPKG:path:table
        source = source[5:].rsplit(":", 1)[0]
    return source if os.path.exists(source.split("|")[0]) else None


def _input_files(alg: QgsProcessingAlgorithm, parameters, context) -> dict[str, str]:
    """Label → file of every input given (layer files keep their '|layername=' part)."""
    files: dict[str, str] = {}
    for d in alg.parameterDefinitions():
        if d.isDestination() or d.type() not in _INPUT_TYPES or parameters.get(d.name()) in (None, ""):
            continue
        label = f"'{d.description()}' ({d.name()})"
        if d.type() == "file":
            path = alg.parameterAsFile(parameters, d.name(), context)
            if path and os.path.isfile(path):
                files[label] = path
            continue
        if d.type() == "multilayer":
            layers = alg.parameterAsLayerList(parameters, d.name(), context)
        elif d.type() == "raster":
            layers = [alg.parameterAsRasterLayer(parameters, d.name(), context)]
        elif d.type() == "vector":
            layers = [alg.parameterAsVectorLayer(parameters, d.name(), context)]
        else:
            layers = [alg.parameterAsLayer(parameters, d.name(), context)]
        for i, layer in enumerate(x for x in layers if x is not None):
            path = _layer_file(layer)
            if path:
                files[label if len(layers) == 1 else f"{label[:-1]} #{i + 1})"] = path
    return files


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9_]+:")  # "memory:", "ogr:…", "postgres:…" (not a drive letter "C:")


def _static_value(value):
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink
    if isinstance(value, QgsProperty):
        return value.staticValue() if value.propertyType() == _static_property_type() else None
    return value


def _output_files(alg: QgsProcessingAlgorithm, parameters, context) -> dict[str, tuple[str, str]]:
    """Label → (path, type) of every file output the user named (temporary outputs are skipped)."""
    outputs = {}
    for d in alg.parameterDefinitions():
        if not d.isDestination() or d.type() not in _DESTINATION_TYPES:
            continue
        raw = _static_value(parameters.get(d.name()))
        if not isinstance(raw, str) or not raw or raw == QgsProcessing.TEMPORARY_OUTPUT or _URI.match(raw):
            continue  # empty, temporary, memory:, ogr:/postgres: URIs: not a file the user named
        if d.type() in ("rasterDestination", "vectorDestination"):
            path = alg.parameterAsOutputLayer(parameters, d.name(), context)
        elif d.type() == "sink":
            path = raw
        else:
            path = alg.parameterAsFileOutput(parameters, d.name(), context)
        if path:
            outputs[f"output '{d.description()}' ({d.name()})"] = (path.split("|")[0], d.type())
    return outputs


def check_outputs(alg: QgsProcessingAlgorithm, parameters, context, create_folders: bool = False) -> None:
    """Refuse, before any work, outputs that would replace an input, collide, or cannot be written.

    With create_folders, the missing folders of the tables QGIS writes itself (feature sinks) are created; the
    other outputs create theirs when they are written (core.outputs), and remove them again when the run fails.

    Raises:
        QgsProcessingException: Naming the output parameter (and the input it would destroy).

    """
    outputs = _output_files(alg, parameters, context)
    if not outputs:
        return
    inputs = _input_files(alg, parameters, context)
    try:
        check_distinct({label: path for label, (path, kind) in outputs.items() if kind != "folderDestination"})
        for label, (path, kind) in outputs.items():
            if kind == "folderDestination":
                if os.path.exists(path) and not os.path.isdir(path):
                    raise QgsProcessingException(f"The {label} '{path}' is a file, not a folder.")
                check_writable(os.path.join(path, "x"), label)
                continue
            check_not_input(path, inputs, label)
            check_writable(path, label)
            if create_folders and kind == "sink":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    except RtsFusionError as exc:
        raise QgsProcessingException(str(exc)) from exc
