"""Per-band importance of a trained model: gradient × input saliency and permutation importance.

Both work on one area of a fused stack (the whole stack, or the bounding box of an area of interest) held in
memory, with the ground truth rasterised on the same grid:

- **Saliency** (the study's method): for every tile holding ground-truth slump pixels, the gradient of the mean
  predicted slump probability inside the slump mask with respect to the normalised input, times the input;
  the mean of |gradient × input| per channel, averaged over tiles and given as a share of the total.
- **Permutation**: the drop of F1 and IoU (against the ground truth) when one band's valid pixels are shuffled
  within the area, repeated with different permutations; the same for each band group (optical / auxiliary),
  whose bands are shuffled with one shared permutation so the group's internal structure stays intact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from ..core.errors import OperationCanceled, RtsFusionError
from ..core.grid import TargetGrid
from ..core.labels import rasterize_polygons
from ..core.metrics import confusion, scores
from ..core.outputs import atomic_output
from ..core.stack import read_stack_info
from ..core.tiling import PredictFn, TileLayout, TileRow, blend_tiles, cut_row
from ..core.vector import read_polygons
from .card import ModelCard
from .device import resolve_device
from .inference import TorchPredictor, card_prepare, grid_window, match_bands

METHODS = ("both", "permutation", "saliency")
MAX_AREA_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class ImportanceOptions:
    """Settings of a band-importance run.

    Attributes:
        method: "both", "permutation" or "saliency".
        repeats: permutations per band (and per group).
        seed: seed of the permutations (results are deterministic for a seed).
        device: "auto", "cpu" or "cuda".
        batch_size: tiles per forward pass.
        threshold: decision threshold (None: the model card's).
        max_pixels: largest area, in pixels, held in memory.

    """

    method: str = "both"
    repeats: int = 3
    seed: int = 0
    device: str = "auto"
    batch_size: int = 4
    threshold: float | None = None
    max_pixels: int = MAX_AREA_PIXELS


@dataclass
class ImportanceResult:
    """Importance rows (sorted, most important first per method and kind) and the baseline scores."""

    rows: list[dict]
    baseline: dict[str, float]
    area: tuple[int, int, int, int]  # col, row, width, height in the stack
    tiles: int


def _area_window(grid: TargetGrid, aoi_path: str | None) -> tuple[int, int, int, int]:
    if not aoi_path:
        return 0, 0, grid.width, grid.height
    polys = read_polygons(aoi_path, grid.crs_wkt)
    if not polys:
        raise RtsFusionError(f"The area of interest '{aoi_path}' holds no polygon.")
    xs = [x for p in polys for x, _ in p[0]]
    ys = [y for p in polys for _, y in p[0]]
    try:
        return grid_window(grid, (min(xs), min(ys), max(xs), max(ys)))
    except RtsFusionError as exc:
        raise RtsFusionError("The area of interest does not overlap the fused stack.") from exc


def read_area(
    card: ModelCard,
    stack_path: str,
    truth_path: str,
    aoi_path: str | None = None,
    max_pixels: int = MAX_AREA_PIXELS,
    require_truth: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """The model's bands of an area (the stack, or the bounding box of the AOI), with its masks.

    Returns:
        (input (C, H, W) with NaN for nodata, valid pixels (inside the AOI, no nodata), ground truth, window).

    Raises:
        RtsFusionError: bands missing, an area too large or off the stack, nodata only, no slump on valid pixels
            (when require_truth).

    """
    info = read_stack_info(stack_path)
    idx = match_bands(card, info.band_names)
    col0, row0, width, height = _area_window(info.grid, aoi_path)
    if width * height > max_pixels:
        raise RtsFusionError(
            f"The area is {width} × {height} px, more than the {max_pixels:,} px held in memory; give a smaller "
            "area of interest."
        )
    with rasterio.open(stack_path) as ds:
        raw = ds.read(idx, window=Window(col0, row0, width, height)).astype(np.float32)
    raw[raw == info.nodata] = np.nan
    valid = np.isfinite(raw).all(axis=0)
    if not valid.any():
        raise RtsFusionError("The area holds only nodata in the model's bands.")
    grid = TargetGrid(
        info.grid.crs_wkt, tuple(info.grid.affine * rasterio.Affine.translation(col0, row0))[:6], width, height
    )
    truth = rasterize_polygons(truth_path, grid).astype(bool)
    if aoi_path:
        valid &= rasterize_polygons(aoi_path, grid).astype(bool)
    if require_truth and not (truth & valid).any():
        raise RtsFusionError("No ground-truth slump polygon falls on valid pixels of the area.")
    return raw, valid, truth, (col0, row0, width, height)


def area_rows(card: ModelCard, layout: TileLayout, x: np.ndarray, valid: np.ndarray) -> list[TileRow]:
    """The lattice rows of an in-memory area (C, H, W) (NaN = nodata), normalised; pixels off `valid` get no weight."""
    prepare = card_prepare(card)
    th = layout.tile_height
    return [cut_row(layout, r, x[:, r : r + th], prepare, valid[r : r + th]) for r in layout.rows]


def predict_area(
    model: torch.nn.Module | PredictFn,
    card: ModelCard,
    x: np.ndarray,
    valid: np.ndarray,
    device: torch.device,
    batch_size: int,
    is_canceled: Callable[[], bool] = lambda: False,
) -> np.ndarray:
    """Slump probability of an in-memory area (C, H, W) with NaN for nodata, blended over the card's tiles.

    Returns:
        Probabilities (H, W); NaN where the input is nodata or off `valid`.

    """
    _, height, width = x.shape
    layout = TileLayout(height, width, card.tile_size, card.overlap)
    predictor = TorchPredictor(model, device) if isinstance(model, torch.nn.Module) else model
    out = np.full((height, width), np.nan, np.float32)

    def emit(top: int, prob: np.ndarray) -> None:
        out[top : top + len(prob)] = prob

    blend_tiles(
        layout, area_rows(card, layout, x, valid), predictor, emit, batch_size, is_canceled,
        cancel_message="Band importance cancelled.",
    )  # fmt: skip
    return out


def _scores(prob: np.ndarray, truth: np.ndarray, valid: np.ndarray, threshold: float) -> dict[str, float]:
    ok = valid & np.isfinite(prob)
    return scores(confusion(np.nan_to_num(prob) >= threshold, truth, ok))


def saliency(
    model: torch.nn.Module,
    card: ModelCard,
    x: np.ndarray,
    valid: np.ndarray,
    truth: np.ndarray,
    device: torch.device,
    is_canceled: Callable[[], bool] = lambda: False,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-channel mean |gradient × input| over tiles with slump pixels: (mean share, std share, tiles used).

    The gradient is taken with respect to the normalised tile, on the card's tile lattice (a tile smaller than
    the card's size, in an area smaller than one tile, is padded with 0 = nodata).
    """
    _, height, width = x.shape
    layout = TileLayout(height, width, card.tile_size, card.overlap)
    th, tw, tile = layout.tile_height, layout.tile_width, card.tile_size
    per_tile = []
    for row in area_rows(card, layout, x, valid):
        for c, tile_x, keep_np in zip(row.cols, row.data, row.valid):
            if is_canceled():
                raise OperationCanceled("Band importance cancelled.")
            target = truth[row.row : row.row + th, c : c + tw].astype(bool) & keep_np
            if not target.any():
                continue
            padded = np.zeros((1, tile_x.shape[0], tile, tile), np.float32)
            padded[0, :, :th, :tw] = tile_x
            xt = torch.from_numpy(padded).to(device)
            xt.requires_grad_(True)
            prob = torch.sigmoid(model(xt).float())[0, 0, :th, :tw]
            prob[torch.from_numpy(target).to(device)].mean().backward()
            gx = (xt.grad * xt).abs()[0, :, :th, :tw]  # (C, th, tw)
            keep = torch.from_numpy(keep_np).to(device)
            per_tile.append(gx[:, keep].mean(dim=1).detach().cpu().numpy())
    if not per_tile:
        raise RtsFusionError("No ground-truth slump pixel lies on valid pixels of the area: nothing to explain.")
    values = np.stack(per_tile)  # (tiles, C)
    shares = values / np.maximum(values.sum(axis=1, keepdims=True), 1e-12)
    return shares.mean(axis=0), shares.std(axis=0), len(per_tile)


def band_importance(
    model: torch.nn.Module,
    card: ModelCard,
    stack_path: str,
    truth_path: str,
    aoi_path: str | None = None,
    options: ImportanceOptions = ImportanceOptions(),
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
) -> ImportanceResult:
    """Rank the model's input bands by importance on an area of the stack.

    Raises:
        RtsFusionError: bands missing, an area too large, no valid or no slump pixel, a bad option.
        OperationCanceled: cancelled.

    """
    progress, is_canceled = progress or (lambda _p: None), is_canceled or (lambda: False)
    if options.method not in METHODS:
        raise RtsFusionError(f"Unknown importance method {options.method!r}; use one of {', '.join(METHODS)}.")
    if options.repeats < 1:
        raise RtsFusionError("The number of permutations must be at least 1.")
    x, valid, truth, (col0, row0, width, height) = read_area(card, stack_path, truth_path, aoi_path, options.max_pixels)
    device = resolve_device(options.device)
    model = model.to(device).eval()
    threshold = card.threshold if options.threshold is None else options.threshold
    rows: list[dict] = []
    groups = dict(zip(card.bands, card.groups))

    predictor = TorchPredictor(model, device)
    base_prob = predict_area(predictor, card, x, valid, device, options.batch_size, is_canceled)
    baseline = _scores(base_prob, truth, valid, threshold)
    tiles = TileLayout(height, width, card.tile_size, card.overlap).count
    progress(5)

    if options.method in ("both", "saliency"):
        mean, std, used = saliency(model, card, x, valid, truth, device, is_canceled)
        sal_rows = [
            {"band": b, "group": groups[b], "kind": "band", "method": "saliency", "importance": float(m),
             "std": float(s), "f1_drop": None, "iou_drop": None, "iou_std": None, "samples": used}
            for b, m, s in zip(card.bands, mean, std)
        ]  # fmt: skip
        for g in sorted(set(card.groups)):
            members = [i for i, b in enumerate(card.bands) if groups[b] == g]
            sal_rows.append(
                {"band": g, "group": g, "kind": "group", "method": "saliency", "importance": float(mean[members].sum()),
                 "std": None, "f1_drop": None, "iou_drop": None, "iou_std": None, "samples": used}
            )  # fmt: skip
        rows += sal_rows
        progress(20)

    if options.method in ("both", "permutation"):
        rng = np.random.default_rng(options.seed)
        where = np.flatnonzero(valid.ravel())
        units = [(b, [i]) for i, b in enumerate(card.bands)]
        units += [(g, [i for i, b in enumerate(card.bands) if groups[b] == g]) for g in sorted(set(card.groups))]
        total = len(units) * options.repeats
        done = 0
        for name, members in units:
            f1_drops, iou_drops = [], []
            for _ in range(options.repeats):
                perm = rng.permutation(where)
                xp = x.copy()
                for i in members:
                    flat = xp[i].reshape(-1)
                    flat[where] = x[i].reshape(-1)[perm]
                prob = predict_area(predictor, card, xp, valid, device, options.batch_size, is_canceled)
                s = _scores(prob, truth, valid, threshold)
                f1_drops.append(baseline["f1"] - s["f1"])
                iou_drops.append(baseline["iou"] - s["iou"])
                done += 1
                progress(20 + 80 * done / total)
            kind = "band" if len(members) == 1 and name in groups else "group"
            rows.append(
                {"band": name, "group": groups.get(name, name), "kind": kind, "method": "permutation",
                 "importance": float(np.mean(f1_drops)), "std": float(np.std(f1_drops)),
                 "f1_drop": float(np.mean(f1_drops)), "iou_drop": float(np.mean(iou_drops)),
                 "iou_std": float(np.std(iou_drops)), "samples": options.repeats}
            )  # fmt: skip
    rows.sort(key=lambda r: (METHODS.index(r["method"]), r["kind"] != "band", -r["importance"]))
    rank: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (r["method"], r["kind"])
        rank[key] = rank.get(key, 0) + 1
        r["rank"] = rank[key]
    progress(100)
    return ImportanceResult(rows, baseline, (col0, row0, width, height), tiles)


def write_csv(path: str, result: ImportanceResult) -> None:
    """The importance table as CSV (one row per band or group and method)."""
    import csv

    keys = ["rank", "method", "kind", "band", "group", "importance", "std", "f1_drop", "iou_drop", "iou_std", "samples"]
    with atomic_output(path, "importance CSV") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in result.rows:
            w.writerow({k: "" if r.get(k) is None else r[k] for k in keys})
