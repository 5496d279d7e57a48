"""Map one unit: align and fuse the sources, detect slumps, threshold once, polygonise the mask.

This is the one implementation behind the "Map thaw slumps" algorithm, the panel's worker process and region
mapping (pipeline/region.py runs it once per unit, with a UnitWindow): everything a run needs comes in as frozen
dataclasses, progress and cancel go through plain callables, and the result is a frozen dataclass. No QGIS here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.errors import OperationCanceled, RtsFusionError
from ..core.grid import TargetGrid
from ..core.outputs import AtomicOutput, AtomicOutputs
from ..core.polygons import PolygonizeOptions, polygonize
from ..core.stack import FusionInputs, GridOptions, build_fused_stack

if TYPE_CHECKING:
    from ..models.card import ModelCard

ProgressFn = Callable[[float], None]
CancelFn = Callable[[], bool]
LogFn = Callable[[str], None]

# Share of the overall progress given to each stage (fusing, detection, polygonising).
STAGES = (("Align and fuse", 35.0), ("Detect", 55.0), ("Polygonise", 10.0))


@dataclass(frozen=True)
class MapInputs:
    """The source layers of one unit and the grid they are aligned onto.

    Attributes:
        fusion: optical, thermal, DEM (and optional series, FTI, valid mask) and how to read them.
        grid: target CRS, pixel size and extent overrides (default: the optical layer's grid, common area).
        terrain_radius_m: neighbourhood radius of the TPI/TRI features, in metres.

    """

    fusion: FusionInputs
    grid: GridOptions = field(default_factory=GridOptions)
    terrain_radius_m: float = 100.0


@dataclass(frozen=True)
class MapOutputs:
    """Where one run writes: the fused stack, probability and mask GeoTIFFs and the polygon layer.

    The polygon layer is written as a GeoPackage; any other extension (.shp, .geojson …) is converted from it.
    """

    stack: str
    probability: str
    mask: str
    polygons: str
    layer_name: str = "thaw_slumps"

    def paths(self) -> tuple[str, ...]:
        """Every output file path (the polygons' only when there are polygons to write)."""
        return (self.stack, self.probability, self.mask, *((self.polygons,) if self.polygons else ()))


@dataclass(frozen=True)
class UnitWindow:
    """Where one unit of a region lies on the region's grid (all windows in region pixels).

    Attributes:
        grid: the region's grid; its tile lattice is the one every unit uses.
        halo: (col_off, row_off, width, height) of the unit's fused stack: the core grown by the halo.
        core: (col_off, row_off, width, height) of the unit's own pixels: its probability and mask.

    """

    grid: TargetGrid
    halo: tuple[int, int, int, int]
    core: tuple[int, int, int, int]

    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the halo window in the region's CRS."""
        return self.grid.window_bounds(self.halo)


@dataclass(frozen=True)
class MapOptions:
    """Detection and cleaning settings (None = from the model card).

    Attributes:
        device: "auto", "cpu" or "cuda".
        threshold: probability at or above which a pixel is a slump; None uses the model's.
        min_area_m2: drop slumps smaller than this.
        fill_holes_m2: fill holes smaller than this inside slumps; None is half the minimum area.
        batch_size: tiles per forward pass.
        tta: average over flips (test-time augmentation, 4× the compute).

    """

    device: str = "auto"
    threshold: float | None = None
    min_area_m2: float = 1000.0
    fill_holes_m2: float | None = None
    batch_size: int = 4
    tta: bool = False

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise RtsFusionError(f"The device must be auto, cpu or cuda, not {self.device!r}.")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise RtsFusionError(f"The threshold must lie between 0 and 1, not {self.threshold:g}.")
        if self.min_area_m2 < 0:
            raise RtsFusionError(f"The minimum slump area cannot be negative ({self.min_area_m2:g} m²).")


@dataclass(frozen=True)
class LoadedModel:
    """A model already loaded (reused across units instead of reading the file each time).

    Attributes:
        model: a PyTorch module (from a .safetensors package) or an OnnxModel (an exported .onnx, run with ONNX
            Runtime; no torch needed).
        card: the model card.
        path: the file it came from.
        backend: "torch" or "onnxruntime".

    """

    model: Any
    card: ModelCard
    path: str = ""
    backend: str = "torch"


@dataclass(frozen=True)
class MapResult:
    """What a run wrote and found.

    Attributes:
        stack, probability, mask, polygons: the output paths.
        count: number of slump polygons (0 when no polygons were asked for).
        threshold: the decision threshold the mask was made with.
        bands: the stack's bands (the model's, in its order).
        tiles: number of detection tiles.
        device: the device detection ran on.
        slump_pixels, valid_pixels: mask pixels that are slumps, and that hold data.
        warnings: anything that makes the result less trustworthy (e.g. a pixel size unlike the model's).

    """

    stack: str
    probability: str
    mask: str
    polygons: str
    count: int
    threshold: float
    bands: tuple[str, ...]
    tiles: int
    device: str
    slump_pixels: int
    valid_pixels: int
    warnings: tuple[str, ...] = ()


def load_model(path: str, device: str = "cpu") -> LoadedModel:
    """Load a model package (.safetensors, PyTorch) or an exported .onnx (ONNX Runtime), problems naming the file.

    Raises:
        RtsFusionError: unreadable, altered or invalid model file; its runtime not installed.

    """
    from ..models.onnx_runtime import is_onnx, load_onnx

    if is_onnx(path):
        onnx_model = load_onnx(path)
        return LoadedModel(onnx_model, onnx_model.card, path, "onnxruntime")
    from ..models.package import load_package

    try:
        model, card = load_package(path, device=device)
    except ValueError as exc:  # ModelPackageError and card validation
        raise RtsFusionError(str(exc)) from exc
    return LoadedModel(model, card, path)


class _Stages:
    """Maps each stage's 0–100 progress onto its share of the whole run, and checks cancellation between."""

    def __init__(self, progress: ProgressFn, is_canceled: CancelFn, log: LogFn) -> None:
        self.progress, self.is_canceled, self.log = progress, is_canceled, log
        self.base = 0.0
        self.share = 0.0

    def start(self, index: int) -> ProgressFn:
        if self.is_canceled():
            raise OperationCanceled("Cancelled by the user.")
        self.base = sum(s for _, s in STAGES[:index])
        self.share = STAGES[index][1]
        self.log(f"{STAGES[index][0]}…")
        self.progress(self.base)
        return lambda p: self.progress(self.base + self.share * min(max(p, 0.0), 100.0) / 100.0)


def write_vector(gpkg: str, destination: str, target: str, driver: str | None = None) -> None:
    """Convert the GeoPackage of slump polygons into `destination` (the temporary file of `target`, named in errors).

    `driver`: the OGR format; None: GDAL's guess from the file extension.
    """
    from osgeo import gdal

    gdal.UseExceptions()
    try:
        if gdal.VectorTranslate(destination, gpkg, **({"format": driver} if driver else {})) is None:
            raise RtsFusionError(f"Cannot write the slump polygons to '{target}' (format not supported).")
    except RuntimeError as exc:
        raise RtsFusionError(f"Cannot write the slump polygons to '{target}': {exc}") from exc


def polygonize_options(options: MapOptions) -> PolygonizeOptions:
    """The cleaning a run applies to its mask (holes default to half the minimum area)."""
    holes = options.min_area_m2 / 2 if options.fill_holes_m2 is None else options.fill_holes_m2
    return PolygonizeOptions(min_area_m2=options.min_area_m2, fill_holes_m2=holes)


def _check_unit_grid(grid: TargetGrid, unit: UnitWindow) -> None:
    """Refuse a unit stack that is not exactly its halo window of the region's grid (a shifted lattice)."""
    expected = unit.grid.window_transform(unit.halo[1], unit.halo[0])
    size = abs(unit.grid.transform[0])
    same = (grid.width, grid.height) == tuple(unit.halo[2:]) and all(
        abs(a - b) <= 1e-6 * size for a, b in zip(grid.transform, tuple(expected)[:6])
    )
    if not same:
        raise RtsFusionError(
            f"The unit at column {unit.halo[0]}, row {unit.halo[1]} of the region's grid was aligned onto a "
            f"{grid.width} × {grid.height} px grid at {grid.transform[2]:.3f}, {grid.transform[5]:.3f} instead of its "
            f"{unit.halo[2]} × {unit.halo[3]} px window: the layers do not cover the unit's halo."
        )


def map_slumps(
    inputs: MapInputs,
    package: str | LoadedModel,
    outputs: MapOutputs,
    options: MapOptions = MapOptions(),
    progress: ProgressFn | None = None,
    is_canceled: CancelFn | None = None,
    log: LogFn | None = None,
    unit: UnitWindow | None = None,
) -> MapResult:
    """Map thaw slumps in one unit: fused stack → probability → mask (thresholded once) → polygons.

    The stack holds exactly the features the model's card asks for, in its order. The mask is the only
    thresholding: the polygons are made from it, with the probability used for their prob_mean/prob_max
    attributes and the stack for the terrain and thermal ones.

    With `unit`, the stack covers the unit's halo window of a region's grid (the grid options' CRS and pixel
    size, the halo as extent), the probability and mask only its core, on the region's tile lattice: the same
    values a single run over the whole region gives there. Without `outputs.polygons` nothing is polygonised
    (region mapping polygonises across units once their masks exist).

    Args:
        inputs: the source layers and target grid.
        package: a model package path, or a LoadedModel to reuse.
        outputs: where to write.
        options: detection and cleaning settings.
        progress: called with the overall 0–100.
        is_canceled: polled inside every stage; a cancelled run writes nothing.
        log: receives progress messages and warnings.
        unit: the unit's place in a region's grid, or None for a run over the inputs' own grid.

    Returns:
        The outputs and what was found.

    Raises:
        RtsFusionError: inputs or a model that cannot produce the map, explained.
        OperationCanceled: cancelled by the user; nothing is written (files already at the outputs stay as they were).

    """
    progress = progress or (lambda _p: None)
    is_canceled = is_canceled or (lambda: False)
    log = log or (lambda _m: None)
    warnings: list[str] = []

    def note(message: str) -> None:
        if message.lower().startswith("warning"):
            warnings.append(message)
        log(message)

    stages = _Stages(progress, is_canceled, log)
    loaded = package if isinstance(package, LoadedModel) else load_model(package)
    card = loaded.card
    log(f"Model needs {len(card.bands)} bands: {', '.join(card.bands)}")
    log(f"From the inputs: {'; '.join(card.needed_inputs())}")
    # Every output is written beside its target and all are moved into place together at the end: a failed or
    # cancelled run leaves files already at the targets untouched and none of its own (a partial set would look
    # like a result).
    rasters = AtomicOutputs(
        [(outputs.stack, "fused stack"), (outputs.probability, "probability raster"), (outputs.mask, "mask raster")]
    )
    stack, probability, mask = rasters.paths
    try:
        vector = AtomicOutput(outputs.polygons, "slump polygons") if outputs.polygons else None
    except BaseException:
        rasters.discard()
        raise
    work = tempfile.mkdtemp(prefix="rts_fusion_map_")
    count = 0
    try:
        step = stages.start(0)
        grid_options = inputs.grid
        if unit is not None:
            grid_options = GridOptions(inputs.grid.crs, inputs.grid.pixel_size, unit.bounds())
        info = build_fused_stack(
            inputs.fusion,
            card.bands,
            stack,
            grid_options=grid_options,
            terrain_radius_m=inputs.terrain_radius_m,
            progress=step,
            is_canceled=is_canceled,
            log=note,
        )
        if unit is not None:
            _check_unit_grid(info.grid, unit)
        step = stages.start(1)
        from ..models.inference import InferenceOptions, predict_stack

        frame = None
        if unit is not None:
            frame = (unit.halo[0], unit.halo[1], unit.grid.width, unit.grid.height)
        detected = predict_stack(
            loaded.model,
            card,
            stack,
            probability,
            mask,
            InferenceOptions(
                device=options.device,
                batch_size=options.batch_size,
                threshold=options.threshold,
                tta=options.tta,
                frame=frame,
                window=unit.core if unit is not None else None,
            ),
            progress=step,
            is_canceled=is_canceled,
            log=note,
        )
        threshold = card.threshold if options.threshold is None else options.threshold
        if vector is not None:
            step = stages.start(2)
            gpkg = vector.path if outputs.polygons.lower().endswith(".gpkg") else os.path.join(work, "slumps.gpkg")
            count = polygonize(
                mask,
                gpkg,
                polygonize_options(options),
                stack_path=stack,
                layer_name=outputs.layer_name,
                probability_path=probability,
                progress=step,
                is_canceled=is_canceled,
            )
            if gpkg != vector.path:
                write_vector(gpkg, vector.path, outputs.polygons)
    except BaseException:
        if vector is not None:
            vector.discard()
        rasters.discard()
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rasters.commit()
    if vector is not None:
        vector.commit()
        log(f"{count} thaw slumps mapped.")
    progress(100.0)
    return MapResult(
        stack=outputs.stack,
        probability=outputs.probability,
        mask=outputs.mask,
        polygons=outputs.polygons,
        count=count,
        threshold=float(threshold),
        bands=tuple(card.bands),
        tiles=detected.tiles,
        device=detected.device,
        slump_pixels=detected.slump_pixels,
        valid_pixels=detected.valid_pixels,
        warnings=tuple(warnings),
    )
