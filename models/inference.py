"""Tiled inference over a fused stack: overlapping windows, smooth blending, bounded memory.

Tiles of the card's size step over the raster with the card's overlap; each tile's probabilities are
weighted by a separable sine² (Hann) window whose outer half is flat on sides that touch the raster edge, so
borders are not darkened, and the weighted sums are divided by the summed weights. Work proceeds by strips of
tile rows: only one strip of input and a (tile + stride)-row band of accumulators live in memory, and finished
rows are written as soon as no later tile can touch them. Nodata pixels get no weight and come out as nodata.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from ..core.errors import OperationCanceled, RtsFusionError
from ..core.grid import TargetGrid, bounded_gdal_cache
from ..core.stack import read_stack_info
from .card import ModelCard
from .normalize import normalize
from .train import amp_dtype, resolve_device

PROB_NODATA = -1.0
MASK_NODATA = 255
UINT8_SCALE = 250  # probability p is stored as round(p × 250); 255 = nodata


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

    """

    device: str = "auto"
    batch_size: int = 4
    tile_size: int | None = None
    overlap: int | None = None
    threshold: float | None = None
    tta: bool = False
    window: tuple[int, int, int, int] | None = None
    probability_dtype: str = "float32"


@dataclass(frozen=True)
class InferenceResult:
    """Paths and summary of a detection run."""

    probability: str
    mask: str | None
    tiles: int
    device: str
    slump_pixels: int
    valid_pixels: int


def blend_weights(size: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D sine² window of `size`, flat (1) on the half facing a raster edge; never exactly 0."""
    i = np.arange(size, dtype=np.float64)
    w = np.sin(np.pi * (i + 0.5) / size) ** 2
    half = size // 2
    if at_start:
        w[:half] = 1.0
    if at_end:
        w[half:] = 1.0
    return np.maximum(w, 1e-3).astype(np.float32)


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Tile offsets covering [0, length): regular steps, the last one flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return sorted(set(starts))


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
    flips = [(), (-1,), (-2,), (-2, -1)] if tta else [()]
    out = None
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        for dims in flips:
            xi = x.flip(dims) if dims else x
            p = torch.sigmoid(model(xi).float())
            p = p.flip(dims) if dims else p
            out = p if out is None else out + p
    return (out / len(flips))[:, 0]


def predict_stack(
    model: torch.nn.Module,
    card: ModelCard,
    stack_path: str,
    probability_path: str,
    mask_path: str | None = None,
    options: InferenceOptions = InferenceOptions(),
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> InferenceResult:
    """Run a model over a fused stack and write the probability raster (and the thresholded mask).

    Raises:
        RtsFusionError: bands missing from the stack, bad options, no valid pixel.
        OperationCanceled: cancelled; partial outputs are removed.

    """
    progress, is_canceled, log = progress or (lambda _p: None), is_canceled or (lambda: False), log or (lambda _m: None)
    info = read_stack_info(stack_path)
    idx = match_bands(card, info.band_names)
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
    col0, row0, width, height = options.window or (0, 0, info.grid.width, info.grid.height)
    if (
        col0 < 0
        or row0 < 0
        or width < 1
        or height < 1
        or col0 + width > info.grid.width
        or row0 + height > info.grid.height
    ):
        raise RtsFusionError("The requested extent does not lie within the fused stack.")
    device = resolve_device(options.device)
    if device.type == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    dtype = amp_dtype(device)
    model = model.to(device).eval()
    stride = tile - overlap
    rows = tile_starts(height, tile, stride)
    cols = tile_starts(width, tile, stride)
    th, tw = min(tile, height), min(tile, width)
    total_tiles = len(rows) * len(cols)
    log(f"{total_tiles} tiles of {tile} px (overlap {overlap}) on {device}, batch {options.batch_size}")

    transform = info.grid.affine * rasterio.Affine.translation(col0, row0)
    base = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "crs": info.grid.crs,
        "transform": transform,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    prob_profile = {
        **base,
        "dtype": options.probability_dtype,
        "nodata": PROB_NODATA if options.probability_dtype == "float32" else MASK_NODATA,
    }
    outputs = [p for p in (probability_path, mask_path) if p]
    for p in outputs:
        if os.path.exists(p):
            os.remove(p)
    batch_size = max(1, options.batch_size)
    done = 0
    slump = valid_count = 0
    # Accumulators for rows [buf_row, buf_row + buf.shape[0]) of the output window.
    acc = np.zeros((0, width), np.float32)
    wsum = np.zeros((0, width), np.float32)
    buf_row = 0

    def flush(upto: int, dst_p, dst_m) -> None:
        nonlocal acc, wsum, buf_row, slump, valid_count
        n = upto - buf_row
        if n <= 0:
            return
        a, w = acc[:n], wsum[:n]
        ok = w > 0
        prob = np.where(ok, a / np.where(ok, w, 1), np.nan)
        win = Window(0, buf_row, width, n)
        if options.probability_dtype == "float32":
            dst_p.write(np.where(ok, prob, PROB_NODATA).astype(np.float32)[None], window=win)
        else:
            dst_p.write(np.where(ok, np.round(prob * UINT8_SCALE), MASK_NODATA).astype(np.uint8)[None], window=win)
        if dst_m is not None:
            m = np.where(ok, (prob >= threshold).astype(np.uint8), MASK_NODATA).astype(np.uint8)
            dst_m.write(m[None], window=win)
        slump += int(np.count_nonzero(ok & (prob >= threshold)))
        valid_count += int(ok.sum())
        acc, wsum = acc[n:], wsum[n:]
        buf_row = upto

    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(bounded_gdal_cache())
            src = stack.enter_context(rasterio.open(stack_path))
            dst_p = stack.enter_context(rasterio.open(probability_path, "w", **prob_profile))
            dst_m = (
                stack.enter_context(rasterio.open(mask_path, "w", **{**base, "dtype": "uint8", "nodata": MASK_NODATA}))
                if mask_path
                else None
            )
            for ri, r in enumerate(rows):
                # One strip of input: rows [r, r + th) of the window, all needed bands. (C, th, width)
                strip = src.read(idx, window=Window(col0, row0 + r, width, th)).astype(np.float32)
                strip[strip == info.nodata] = np.nan
                strip_valid = np.isfinite(strip).all(axis=0)
                need = r + th - buf_row
                if acc.shape[0] < need:
                    grow = need - acc.shape[0]
                    acc = np.concatenate([acc, np.zeros((grow, width), np.float32)])
                    wsum = np.concatenate([wsum, np.zeros((grow, width), np.float32)])
                wy = blend_weights(th, r == 0, r + th >= height)
                jobs = [c for c in cols if strip_valid[:, c : c + tw].any()]
                done += len(cols) - len(jobs)
                k = 0
                while k < len(jobs):
                    if is_canceled():
                        raise OperationCanceled("Detection cancelled.")
                    batch_cols = jobs[k : k + batch_size]
                    x = np.stack([strip[:, :, c : c + tw] for c in batch_cols])  # (B, C, th, tw)
                    xt = torch.from_numpy(normalize(x, card.normalization, card.bands)).to(device)
                    try:
                        with torch.no_grad():
                            probs = predict_batch(model, xt, options.tta, dtype).cpu().numpy()  # (B, th, tw)
                    except torch.OutOfMemoryError as exc:
                        if batch_size == 1:
                            raise RtsFusionError(
                                "The GPU ran out of memory even at batch size 1; use a smaller tile."
                            ) from exc
                        batch_size = max(1, batch_size // 2)
                        torch.cuda.empty_cache()
                        log(f"GPU out of memory: batch size lowered to {batch_size}.")
                        continue
                    for c, p in zip(batch_cols, probs):
                        wx = blend_weights(tw, c == 0, c + tw >= width)
                        w = (wy[:, None] * wx[None, :]) * strip_valid[:, c : c + tw]
                        off = r - buf_row
                        acc[off : off + th, c : c + tw] += np.nan_to_num(p) * w
                        wsum[off : off + th, c : c + tw] += w
                    k += len(batch_cols)
                    done += len(batch_cols)
                    progress(100.0 * done / total_tiles)
                next_row = rows[ri + 1] if ri + 1 < len(rows) else height
                flush(next_row, dst_p, dst_m)
            dst_p.update_tags(
                RTSFUSION_PROBABILITY="float 0-1"
                if options.probability_dtype == "float32"
                else f"uint8 = round(p * {UINT8_SCALE}), 255 = nodata",
                RTSFUSION_THRESHOLD=str(threshold),
                RTSFUSION_MODEL=card.config.architecture,
            )
    except BaseException:
        for p in outputs:
            with contextlib.suppress(OSError):
                os.remove(p)
        raise
    if valid_count == 0:
        for p in outputs:
            os.remove(p)
        raise RtsFusionError("The fused stack has no valid pixel in the processed extent (all nodata).")
    progress(100.0)
    return InferenceResult(probability_path, mask_path, total_tiles, str(device), slump, valid_count)


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
