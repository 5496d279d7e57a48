"""Streaming detection over a fused stack on the shared tiling engine (core/tiling.py), with bounded memory.

Work proceeds row of tiles by row of tiles: a reader thread reads and normalises the next strip of input while
the model predicts, the engine blends the tiles and hands over finished rows as soon as no later tile can touch
them, and a writer thread compresses and writes them. Only a few strips of input and a (tile + stride)-row band
of accumulators live in memory. Nodata pixels get no weight and come out as nodata.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from rasterio.windows import Window

from ..core.errors import EmptyExtentError, RtsFusionError
from ..core.grid import TargetGrid, bounded_gdal_cache
from ..core.outputs import AtomicOutputs, check_distinct, check_not_input
from ..core.polygons import UINT8_SCALE  # probability p is stored as round(p × 250); 255 = nodata
from ..core.stack import StackInfo, read_stack_info
from ..core.tiling import BackgroundWriter, PredictFn, PrepareFn, TileLayout, TileRow, blend_tiles, cut_row, prefetch
from .card import ModelCard
from .device import amp_dtype, resolve_device, use_all_cpu_cores
from .normalize import normalize

if TYPE_CHECKING:  # torch is imported only on the PyTorch path: ONNX Runtime mapping runs without it
    import torch

PROB_NODATA = -1.0
# With the model on an accelerator, GDAL decodes the stack's compressed blocks and encodes the outputs' on all
# cores (GTiff NUM_THREADS; reading is multi-threaded from GDAL 3.6, older GDAL ignores it). On the CPU the model
# already uses every core and more threads only contend with it, so GDAL keeps to one (its default).
CODEC_THREADS = {"cpu": None, "accelerator": "ALL_CPUS"}
MASK_NODATA = 255


@dataclass(frozen=True)
class InferenceOptions:
    """Settings of a detection run (None = from the model card).

    Attributes:
        device: "auto", "cpu" or "cuda".
        batch_size: tiles per forward pass (halved automatically on CUDA out-of-memory).
        tile_size: tile side in pixels.
        overlap: overlap between neighbouring tiles in pixels.
        threshold: decision threshold for the mask.
        tta: average over flips (test-time augmentation, 4× the compute).
        window: (col_off, row_off, width, height) of the stack to process, or None for all of it.
        probability_dtype: "float32" (0–1, nodata −1) or "uint8" (p × 250, nodata 255).
        frame: (col_off, row_off, width, height) of the stack inside a larger grid whose tile lattice applies
            (region mapping: a unit's stack is a window of the region's grid), or None for the stack's own.
            With a frame, `window` is in the larger grid's pixels and every tile touching it must lie inside
            the stack (the unit's halo).

    """

    device: str = "auto"
    batch_size: int = 4
    tile_size: int | None = None
    overlap: int | None = None
    threshold: float | None = None
    tta: bool = False
    window: tuple[int, int, int, int] | None = None
    probability_dtype: str = "float32"
    frame: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class InferenceResult:
    """Paths and summary of a detection run."""

    probability: str
    mask: str | None
    tiles: int
    device: str
    slump_pixels: int
    valid_pixels: int


def match_bands(card: ModelCard, stack_bands: tuple[str, ...]) -> list[int]:
    """1-based stack band indexes in the card's order.

    Raises:
        RtsFusionError: naming the bands the stack lacks.

    """
    missing = card.missing_bands(stack_bands)
    if missing:
        raise RtsFusionError(
            f"The fused stack lacks band(s) {', '.join(missing)} that the model needs (model bands: "
            f"{', '.join(card.bands)}; stack bands: {', '.join(stack_bands)}). Rebuild the stack with these features."
        )
    return [stack_bands.index(b) + 1 for b in card.bands]


def predict_batch(model: torch.nn.Module, x: torch.Tensor, tta: bool, dtype: torch.dtype | None) -> torch.Tensor:
    """Slump probability (B, H, W) of a normalised batch, optionally averaged over flips."""
    import torch

    flips = [(), (-1,), (-2,), (-2, -1)] if tta else [()]
    out = None
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        for dims in flips:
            xi = x.flip(dims) if dims else x
            p = torch.sigmoid(model(xi).float())
            p = p.flip(dims) if dims else p
            out = p if out is None else out + p
    return (out / len(flips))[:, 0]


class TorchPredictor:
    """The engine's PredictFn for a PyTorch model: normalised numpy tiles in, probabilities out.

    On CUDA out-of-memory it halves the number of tiles per forward pass and goes on.
    """

    def __init__(
        self, model: torch.nn.Module, device: torch.device, tta: bool = False, log: Callable[[str], None] | None = None
    ) -> None:
        """Move the model to the device in evaluation mode; mixed precision on CUDA."""
        self.model = model.to(device).eval()
        self.device = device
        self.dtype = amp_dtype(device)
        self.tta = tta
        self.max_batch: int | None = None
        self.log = log or (lambda _m: None)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (B, t, t) of normalised tiles (B, C, t, t)."""
        import torch

        out, i = [], 0
        while i < len(x):
            n = len(x) - i if self.max_batch is None else min(self.max_batch, len(x) - i)
            xt = torch.from_numpy(np.ascontiguousarray(x[i : i + n], dtype=np.float32)).to(self.device)
            try:
                with torch.inference_mode():
                    out.append(predict_batch(self.model, xt, self.tta, self.dtype).cpu().numpy())
            except torch.OutOfMemoryError as exc:
                if n == 1:
                    raise RtsFusionError("The GPU ran out of memory even at batch size 1; use a smaller tile.") from exc
                self.max_batch = max(1, n // 2)
                torch.cuda.empty_cache()
                self.log(f"GPU out of memory: batch size lowered to {self.max_batch}.")
                continue
            i += n
        return np.concatenate(out)


def card_prepare(card: ModelCard) -> PrepareFn:
    """The model card's normalisation as the engine's PrepareFn (raw tiles with NaN → normalised tiles)."""
    return partial(normalize, norm=card.normalization, bands=card.bands, inplace=True)  # cut_row's tiles are fresh


def read_strips(
    src: rasterio.DatasetReader, info: StackInfo, bands: list[int], layout: TileLayout, offset: tuple[int, int] = (0, 0)
) -> Iterator[tuple[int, np.ndarray]]:
    """The lattice rows' strips of a stack (the card's bands as float32, nodata → NaN), as (row, strip).

    `offset` is the stack's (col, row) in the layout's grid (non-zero when the stack is a window of it).
    """
    first, end = layout.span
    col_off, row_off = offset
    for r in layout.rows:
        win = Window(first - col_off, r - row_off, end - first, layout.tile_height)
        strip = src.read(bands, window=win, out_dtype=np.float32)
        strip[strip == info.nodata] = np.nan
        yield r, strip


def read_rows(
    src: rasterio.DatasetReader,
    info: StackInfo,
    bands: list[int],
    layout: TileLayout,
    prepare: PrepareFn,
    offset: tuple[int, int] = (0, 0),
) -> Iterator[TileRow]:
    """The lattice rows of a stack, cut into tiles and normalised.

    Reading (GDAL decompresses on its own threads) runs one strip ahead on a thread of its own, so reading,
    cutting and normalising overlap: on a GPU the model is faster than any one of them.
    """
    strips = prefetch(read_strips(src, info, bands, layout, offset), depth=1)
    try:
        for r, strip in strips:
            yield cut_row(layout, r, strip, prepare)
    finally:
        strips.close()


class _RasterSink:
    """Writes finished rows as probability (and mask) raster rows, counting valid and slump pixels."""

    def __init__(self, dst_p, dst_m, threshold: float, probability_dtype: str) -> None:
        self.dst_p, self.dst_m, self.threshold, self.dtype = dst_p, dst_m, threshold, probability_dtype
        self.slump = self.valid = 0

    def __call__(self, top: int, prob: np.ndarray) -> None:
        ok = np.isfinite(prob)
        win = Window(0, top, prob.shape[1], prob.shape[0])
        if self.dtype == "float32":
            self.dst_p.write(np.where(ok, prob, PROB_NODATA).astype(np.float32)[None], window=win)
        else:
            scaled = np.round(np.nan_to_num(prob) * UINT8_SCALE)
            self.dst_p.write(np.where(ok, scaled, MASK_NODATA).astype(np.uint8)[None], window=win)
        slump = ok & (np.nan_to_num(prob) >= self.threshold)
        if self.dst_m is not None:
            self.dst_m.write(np.where(ok, slump, MASK_NODATA).astype(np.uint8)[None], window=win)
        self.slump += int(np.count_nonzero(slump))
        self.valid += int(np.count_nonzero(ok))


def _settings(
    card: ModelCard, options: InferenceOptions, info: StackInfo, log: Callable[[str], None]
) -> tuple[int, int, float, tuple[int, int, int, int]]:
    """Tile size, overlap, threshold and window of a run, checked.

    Raises:
        RtsFusionError: naming the option that is out of range.

    """
    tile = options.tile_size or card.tile_size
    overlap = card.overlap if options.overlap is None else options.overlap
    threshold = card.threshold if options.threshold is None else options.threshold
    if tile % 32 or tile < 32:
        raise RtsFusionError(f"The tile size must be a multiple of 32, not {tile}.")
    if not 0 <= overlap < tile:
        raise RtsFusionError(f"The overlap ({overlap}) must be between 0 and the tile size ({tile}).")
    if options.probability_dtype not in ("float32", "uint8"):
        raise RtsFusionError("The probability type must be float32 or uint8.")
    px = info.grid.pixel_size[0]
    if card.pixel_size and abs(px - card.pixel_size) > 0.25 * card.pixel_size:
        log(f"Warning: the stack's pixel size ({px:g}) differs from the model's ({card.pixel_size:g}).")
    frame = options.frame or (0, 0, info.grid.width, info.grid.height)
    window = options.window or frame
    col0, row0, width, height = window
    if col0 < 0 or row0 < 0 or width < 1 or height < 1 or col0 + width > frame[2] or row0 + height > frame[3]:
        raise RtsFusionError("The requested extent does not lie within the fused stack.")
    return tile, overlap, threshold, window


def _frame_layout(
    info: StackInfo, options: InferenceOptions, tile: int, overlap: int, window: tuple[int, int, int, int]
) -> TileLayout:
    """The tile layout on the frame's lattice; with a frame, its tiles must lie inside the stack.

    Raises:
        RtsFusionError: a tile touching the window reaches beyond the stack (a unit's halo too small).

    """
    if options.frame is None:
        return TileLayout(info.grid.height, info.grid.width, tile, overlap, window)
    col_off, row_off, frame_width, frame_height = options.frame
    layout = TileLayout(frame_height, frame_width, tile, overlap, window)
    first, end = layout.span
    if (
        first < col_off
        or layout.rows[0] < row_off
        or end > col_off + info.grid.width
        or layout.rows[-1] + layout.tile_height > row_off + info.grid.height
    ):
        raise RtsFusionError(
            f"The fused stack ({info.grid.width} × {info.grid.height} px at column {col_off}, row {row_off}) does "
            f"not hold every {tile} px tile that touches the extent to detect: its halo is too small."
        )
    return layout


def _profiles(
    info: StackInfo,
    window: tuple[int, int, int, int],
    probability_dtype: str,
    offset: tuple[int, int] = (0, 0),
    codec_threads: str | None = None,
) -> tuple[dict, dict]:
    """GeoTIFF profiles of the probability and mask rasters on the window (offset: the stack's place in the frame).

    `codec_threads`: GDAL's compression threads (GTiff NUM_THREADS); None = GDAL's default, one.
    """
    col0, row0, width, height = window
    col0, row0 = col0 - offset[0], row0 - offset[1]
    base = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "crs": info.grid.crs,
        "transform": info.grid.affine * rasterio.Affine.translation(col0, row0),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        **({"num_threads": codec_threads} if codec_threads else {}),
    }
    prob = {
        **base,
        "dtype": probability_dtype,
        "nodata": PROB_NODATA if probability_dtype == "float32" else MASK_NODATA,
    }
    return prob, {**base, "dtype": "uint8", "nodata": MASK_NODATA}


def make_predictor(model: Any, device: str, tta: bool, log: Callable[[str], None]) -> tuple[PredictFn, str]:
    """The engine's PredictFn for a loaded model, and the name of the device it runs on.

    `model` is a PyTorch module or an exported model with its own backend (models.onnx_runtime.OnnxModel, which
    has a `predictor` method): only the PyTorch path imports torch.
    """
    if hasattr(model, "predictor"):
        return model.predictor(device, tta, log)
    torch_device = resolve_device(device)
    if torch_device.type == "cpu":
        use_all_cpu_cores()
    return TorchPredictor(model, torch_device, tta, log), str(torch_device)


def predict_stack(
    model: Any,
    card: ModelCard,
    stack_path: str,
    probability_path: str,
    mask_path: str | None = None,
    options: InferenceOptions = InferenceOptions(),
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
    predictor: PredictFn | None = None,
) -> InferenceResult:
    """Run a model over a fused stack and write the probability raster (and the thresholded mask).

    A window of the stack gets the probabilities the whole stack gets there (one global tile lattice); a stack
    smaller than one tile is padded for the prediction and its outputs keep the stack's size. `model` is a PyTorch
    module or an OnnxModel (ONNX Runtime, no torch needed); `predictor`, when given, is a PredictFn used instead.

    Raises:
        RtsFusionError: bands missing from the stack, bad options, no valid pixel.
        OperationCanceled: cancelled; nothing is written (files already at the outputs stay as they were).

    """
    progress, is_canceled, log = progress or (lambda _p: None), is_canceled or (lambda: False), log or (lambda _m: None)
    check_distinct({"probability raster": probability_path, "mask raster": mask_path})
    for path, what in ((probability_path, "probability raster"), (mask_path, "mask raster")):
        if path:
            check_not_input(path, {"fused stack": stack_path}, what)
    info = read_stack_info(stack_path)
    bands = match_bands(card, info.band_names)
    tile, overlap, threshold, window = _settings(card, options, info, log)
    if predictor is None:
        predictor, device = make_predictor(model, options.device, options.tta, log)
    else:
        device = options.device
    layout = _frame_layout(info, options, tile, overlap, window)
    offset = (options.frame[0], options.frame[1]) if options.frame else (0, 0)
    log(f"{layout.count} tiles of {tile} px (overlap {overlap}) on {device}, batch {options.batch_size}")
    if layout.tile_height < tile or layout.tile_width < tile:
        log(f"The stack ({info.grid.width} × {info.grid.height} px) is smaller than one tile: padded to {tile} px.")
    codec_threads = CODEC_THREADS["cpu" if str(device).startswith("cpu") else "accelerator"]
    prob_profile, mask_profile = _profiles(info, window, options.probability_dtype, offset, codec_threads)
    # Written beside the targets and moved into place together only when detection succeeds.
    outputs = AtomicOutputs([(probability_path, "probability raster"), (mask_path, "mask raster")])
    tmp_probability, tmp_mask = outputs.paths
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(bounded_gdal_cache())
            threads = {"num_threads": codec_threads} if codec_threads else {}
            src = stack.enter_context(rasterio.open(stack_path, **threads))
            dst_p = stack.enter_context(rasterio.open(tmp_probability, "w", **prob_profile))
            dst_m = stack.enter_context(rasterio.open(tmp_mask, "w", **mask_profile)) if mask_path else None
            sink = _RasterSink(dst_p, dst_m, threshold, options.probability_dtype)
            rows = prefetch(read_rows(src, info, bands, layout, card_prepare(card), offset))
            stack.callback(rows.close)  # stops the reader before the stack closes
            writer = BackgroundWriter()
            try:
                blend_tiles(
                    layout,
                    rows,
                    predictor,
                    lambda top, prob: writer.submit(partial(sink, top, prob)),
                    options.batch_size,
                    is_canceled,
                    progress,
                    "Detection cancelled.",
                )
            except BaseException:
                with contextlib.suppress(BaseException):
                    writer.close()
                raise
            writer.close()
            dst_p.update_tags(
                RTSFUSION_PROBABILITY="float 0-1"
                if options.probability_dtype == "float32"
                else f"uint8 = round(p * {UINT8_SCALE}), 255 = nodata",
                RTSFUSION_THRESHOLD=str(threshold),
                RTSFUSION_MODEL=card.config.architecture,
            )
    except BaseException:
        outputs.discard()
        raise
    if sink.valid == 0:
        outputs.discard()
        raise EmptyExtentError("The fused stack has no valid pixel in the processed extent (all nodata).")
    outputs.commit()
    progress(100.0)
    return InferenceResult(probability_path, mask_path, layout.count, device, sink.slump, sink.valid)


def grid_window(grid: TargetGrid, bounds: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """Pixel window (col_off, row_off, width, height) of a grid covering bounds (grid CRS), clipped.

    Raises:
        RtsFusionError: the bounds miss the grid.

    """
    inv = ~grid.affine
    xmin, ymin, xmax, ymax = bounds
    c0, r0 = inv * (xmin, ymax)
    c1, r1 = inv * (xmax, ymin)
    c0, r0 = max(0, math.floor(c0)), max(0, math.floor(r0))
    c1, r1 = min(grid.width, math.ceil(c1)), min(grid.height, math.ceil(r1))
    if c1 <= c0 or r1 <= r0:
        raise RtsFusionError("The requested extent does not overlap the fused stack.")
    return c0, r0, c1 - c0, r1 - r0


def bounds_to_window(stack_path: str, bounds: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """Pixel window (col_off, row_off, width, height) of the stack covering bounds (stack CRS), clipped.

    Raises:
        RtsFusionError: the bounds miss the stack.

    """
    return grid_window(read_stack_info(stack_path).grid, bounds)
