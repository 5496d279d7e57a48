"""Training data: the scene in memory, spatially blocked splits, chip sampling, augmentation, manifests."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio

from ..core.errors import RtsFusionError
from ..core.labels import rasterize_polygons
from ..core.stack import read_stack_info

SPLITS = ("train", "val", "test")
MAX_SCENE_BYTES = 4 * 2**30


@dataclass
class Scene:
    """A labelled raster in memory.

    Attributes:
        image: (C, H, W) float32, NaN where nodata.
        label: (H, W) uint8, 1 = thaw slump.
        valid: (H, W) bool, pixels usable for training and scoring (data present, inside the AOI).
        bands: band names of the C channels.
        groups: band groups.
        pixel_size: ground pixel size.

    """

    image: np.ndarray
    label: np.ndarray
    valid: np.ndarray
    bands: tuple[str, ...]
    groups: tuple[str, ...]
    pixel_size: float


def load_scene(
    stack_path: str, inventory_path: str, bands: tuple[str, ...] | None = None, aoi_path: str | None = None
) -> Scene:
    """Read a fused stack and rasterise the inventory (and AOI) on its grid.

    Args:
        stack_path: fused stack GeoTIFF.
        inventory_path: slump polygons (any CRS, any OGR format).
        bands: band names to use, in order; None = all bands of the stack.
        aoi_path: optional polygons limiting where chips are drawn and scored.

    Raises:
        RtsFusionError: missing bands, a stack too large to hold in memory, or no slump in the area.

    """
    info = read_stack_info(stack_path)
    bands = tuple(bands or info.band_names)
    missing = [b for b in bands if b not in info.band_names]
    if missing:
        raise RtsFusionError(f"The stack lacks band(s) {', '.join(missing)}; it has {', '.join(info.band_names)}.")
    size = len(bands) * info.grid.width * info.grid.height * 4
    if size > MAX_SCENE_BYTES:
        raise RtsFusionError(
            f"The stack needs {size / 2**30:.1f} GiB in memory for training (limit {MAX_SCENE_BYTES / 2**30:.0f} GiB);"
            " give an area of interest or a smaller stack."
        )
    idx = [info.band_index(b) for b in bands]
    with rasterio.open(stack_path) as ds:
        image = ds.read(idx).astype(np.float32)
    image[image == info.nodata] = np.nan
    valid = np.isfinite(image).all(axis=0)
    label = rasterize_polygons(inventory_path, info.grid)
    if aoi_path:
        valid &= rasterize_polygons(aoi_path, info.grid).astype(bool)
    if not (label.astype(bool) & valid).any():
        raise RtsFusionError("No slump polygon of the inventory falls on valid pixels of the stack (and AOI).")
    groups = tuple(info.groups[info.band_names.index(b)] for b in bands)
    return Scene(image, label, valid, bands, groups, info.grid.pixel_size[0])


@dataclass
class Split:
    """Chip windows (row, col) of each split, and a report of how the split was made."""

    chips: dict[str, list[tuple[int, int]]]
    train_region: np.ndarray
    report: dict = field(default_factory=dict)


def _fits(region: np.ndarray, chip: int) -> np.ndarray:
    """Boolean (H-chip+1, W-chip+1): True where a chip with that top-left corner lies wholly in region."""
    ii = np.pad(region.astype(np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    s = ii[chip:, chip:] - ii[:-chip, chip:] - ii[chip:, :-chip] + ii[:-chip, :-chip]
    return s == chip * chip


def _tile_positions(region: np.ndarray, chip: int, stride: int) -> list[tuple[int, int]]:
    """Chip corners on a stride lattice whose chips lie wholly in region."""
    if region.shape[0] < chip or region.shape[1] < chip:
        return []
    fits = _fits(region, chip)
    return [
        (int(r), int(c)) for r in range(0, fits.shape[0], stride) for c in range(0, fits.shape[1], stride) if fits[r, c]
    ]


def blocked_split(scene: Scene, chip: int, block: int, fractions: tuple[float, float], seed: int) -> Split:
    """Assign square blocks of the scene to train/val/test, stratified by whether they hold slumps.

    Chips of one split lie wholly inside that split's blocks, so no two chips of different splits share
    a pixel. Validation and test chips tile their blocks without overlap; training chips are drawn anywhere
    inside the training blocks.

    Args:
        scene: the labelled scene.
        chip: chip side in pixels.
        block: block side in pixels (≥ chip).
        fractions: (val, test) fractions of the blocks.
        seed: random seed.

    """
    if block < chip:
        raise RtsFusionError(f"The split block ({block} px) must be at least the chip size ({chip} px).")
    h, w = scene.label.shape
    rng = np.random.default_rng(seed)
    nby, nbx = -(-h // block), -(-w // block)
    has_rts = np.zeros((nby, nbx), dtype=bool)
    usable = np.zeros((nby, nbx), dtype=bool)
    for by in range(nby):
        for bx in range(nbx):
            sl = np.s_[by * block : (by + 1) * block, bx * block : (bx + 1) * block]
            has_rts[by, bx] = bool((scene.label[sl].astype(bool) & scene.valid[sl]).any())
            usable[by, bx] = scene.valid[sl].mean() > 0.5
    assign = np.full((nby, nbx), -1, dtype=np.int8)
    for stratum in (has_rts & usable, ~has_rts & usable):
        cells = np.argwhere(stratum)
        rng.shuffle(cells)
        n = len(cells)
        n_val = int(round(fractions[0] * n))
        n_test = int(round(fractions[1] * n))
        if n >= 3:  # every split gets at least one block of each stratum when there are enough
            n_val, n_test = max(1, n_val), max(1, n_test)
        for i, (by, bx) in enumerate(cells):
            assign[by, bx] = 1 if i < n_val else 2 if i < n_val + n_test else 0
    pixel_assign = np.kron(assign, np.ones((block, block), dtype=np.int8))[:h, :w]
    regions = {name: (pixel_assign == k) & scene.valid for k, name in enumerate(SPLITS)}
    chips = {
        "train": _tile_positions(regions["train"], chip, max(1, chip // 4)),
        "val": _tile_positions(regions["val"], chip, chip),
        "test": _tile_positions(regions["test"], chip, chip),
    }
    report = {
        "method": "blocked",
        "block_px": block,
        "blocks": {name: int((assign == k).sum()) for k, name in enumerate(SPLITS)},
        "chips": {k: len(v) for k, v in chips.items()},
        "rts_pixels": {name: int((scene.label.astype(bool) & regions[name]).sum()) for name in SPLITS},
        "overlap_px_between_splits": split_overlap(chips, chip, (h, w)),
    }
    return Split(chips, regions["train"], report)


def _split_shortfalls(split: Split) -> list[str]:
    """What a split lacks: a split without chips, or validation/test chips without a slump pixel."""
    chips, rts = split.report["chips"], split.report.get("rts_pixels", {})
    missing = [f"no {name} chip" for name in SPLITS if not chips.get(name)]
    missing += [
        f"no slump pixel in the {name} blocks" for name in ("val", "test") if chips.get(name) and not rts.get(name)
    ]
    return missing


def auto_blocked_split(
    scene: Scene, chip: int, block: int, fractions: tuple[float, float], seed: int
) -> tuple[Split, list[str]]:
    """A blocked split with a given block size, or (block 0) the largest block size that works for the scene.

    Block sides of two, one and a half and one tile are tried in that order; the first whose training,
    validation and test splits all hold chips, and whose validation and test chips hold slump pixels, is
    taken. When none does, the split with the fewest shortfalls is returned (the larger block on a tie).

    Returns:
        The split (its report says the block size and whether it was chosen automatically) and its
        shortfalls ("no val chip", "no slump pixel in the test blocks" ...), empty when the split is complete.

    """
    if block:
        split = blocked_split(scene, chip, block, fractions, seed)
        split.report["block_chosen"] = "given"
        return split, _split_shortfalls(split)
    best: tuple[Split, list[str]] | None = None
    for size in dict.fromkeys((2 * chip, (3 * chip) // 2, chip)):
        split = blocked_split(scene, chip, size, fractions, seed)
        short = _split_shortfalls(split)
        if best is None or len(short) < len(best[1]):
            best = (split, short)
        if not short:
            break
    split, short = best
    split.report["block_chosen"] = "automatic"
    return split, short


def random_split(scene: Scene, chip: int, fractions: tuple[float, float], seed: int) -> Split:
    """The study's chip-level random split: overlapping chips (stride chip/2) assigned at random.

    Chips of different splits overlap, so validation and test scores leak training pixels; the report
    says how many pixels are shared.
    """
    rng = np.random.default_rng(seed)
    h, w = scene.label.shape
    positions = _tile_positions(scene.valid, chip, max(1, chip // 2))
    order = rng.permutation(len(positions))
    n_val = int(round(fractions[0] * len(positions)))
    n_test = int(round(fractions[1] * len(positions)))
    chips = {
        "val": [positions[i] for i in order[:n_val]],
        "test": [positions[i] for i in order[n_val : n_val + n_test]],
        "train": [positions[i] for i in order[n_val + n_test :]],
    }
    region = chip_cover(chips["train"], chip, (h, w))
    report = {
        "method": "random",
        "chips": {k: len(v) for k, v in chips.items()},
        "rts_pixels": {},
        "overlap_px_between_splits": split_overlap(chips, chip, (h, w)),
    }
    return Split(chips, region & scene.valid, report)


def chip_cover(corners: list[tuple[int, int]], chip: int, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of shape: True on every pixel of a chip with one of these top-left corners."""
    cover = np.zeros(shape, dtype=bool)
    for r, c in corners:
        cover[r : r + chip, c : c + chip] = True
    return cover


def split_overlap(chips: dict[str, list[tuple[int, int]]], chip: int, shape: tuple[int, int]) -> int:
    """Number of pixels covered by chips of more than one split."""
    owners = np.zeros(shape, dtype=np.uint8)
    for bit, name in enumerate(SPLITS):
        owners += chip_cover(chips.get(name, []), chip, shape).astype(np.uint8) << bit
    shared = (owners != 0) & (owners & (owners - 1) != 0)  # more than one bit set
    return int(shared.sum())


def training_positions(scene: Scene, split: Split, chip: int) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Training chip corners and their sampling weights: chips holding slump pixels drawn twice as often."""
    positions = split.chips["train"]
    weights = np.ones(len(positions))
    for i, (r, c) in enumerate(positions):
        if scene.label[r : r + chip, c : c + chip].any():
            weights[i] = 2.0
    return positions, weights / weights.sum() if len(weights) else weights


def band_statistics(scene: Scene, region: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-band mean and std over valid pixels of a region (the training blocks)."""
    mask = region & scene.valid
    if not mask.any():
        raise RtsFusionError("The training split holds no valid pixel.")
    means, stds = [], []
    for band in scene.image:
        v = band[mask].astype(np.float64)
        means.append(float(v.mean()))
        stds.append(float(max(v.std(), 1e-6)))
    return tuple(means), tuple(stds)


# --- Chip datasets described by a manifest (the study's published layout) ------------------------------


@dataclass
class ChipSet:
    """Chips read from files: image (N, C, h, w) float32 (NaN nodata), label (N, h, w) uint8, split names."""

    image: np.ndarray
    label: np.ndarray
    split: list[str]
    bands: tuple[str, ...]
    groups: tuple[str, ...]
    pixel_size: float
    rgb_8bit: bool = False


# Split names as the authors' code accepts them (their train.split_from_manifest_column).
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test", "testing": "test"}  # fmt: skip
MANIFEST_FIXED = {"year", "region", "stem", "optical_path", "mask_path", "split"}


def _resolve(path: str, base: Path) -> str:
    """A manifest path: absolute, or relative to the manifest's folder or one of its parents."""
    if not path.strip():
        raise RtsFusionError("A manifest row has an empty file path; every chip needs all its files.")
    if os.path.isabs(path):
        return path
    for folder in (base, *base.parents):
        candidate = folder / path
        if candidate.exists():
            return str(candidate)
    raise RtsFusionError(f"Manifest file '{path}' not found next to the manifest or in its parent folders.")


def load_manifest(manifest: str, seed: int = 0, fractions: tuple[float, float] = (0.15, 0.15)) -> ChipSet:
    """Read a chip dataset: optical chip (RGB) + mask + one single-band raster per factor column.

    Columns: optical_path, mask_path, then one column per factor (DEM, EVI, FTI, LST, NBR, NDMI, NDVI, TCB,
    TCG, TCW in the study) and optionally split (train/val/test); other columns (year, region, stem) are
    kept aside. Without a split column, chips are assigned at random with `fractions` for val and test.
    """
    from ..core.features import FEATURES

    base = Path(manifest).resolve().parent
    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise RtsFusionError(f"The manifest '{manifest}' has no rows.")
    for col in ("optical_path", "mask_path"):
        if col not in rows[0]:
            raise RtsFusionError(f"The manifest lacks the column '{col}'.")
    factors = [c for c in rows[0] if c not in MANIFEST_FIXED]
    unknown = [f for f in factors if f.upper() not in FEATURES]
    if unknown:
        raise RtsFusionError(f"Manifest columns {unknown} are not known feature names.")
    bands = ("RED", "GREEN", "BLUE", *(f.upper() for f in factors))
    images, labels, splits, pixel, eight_bit = [], [], [], None, True
    for row in rows:
        empty = [c for c in ("optical_path", "mask_path", *factors) if not (row.get(c) or "").strip()]
        if empty:
            where = f"{row.get('region', '')} {row.get('stem', '')}".strip() or row.get("optical_path", "")
            raise RtsFusionError(f"The manifest row '{where}' has no file for {', '.join(empty)}.")
        with rasterio.open(_resolve(row["optical_path"], base)) as ds:
            eight_bit = eight_bit and ds.dtypes[0] == "uint8"
            rgb = ds.read([1, 2, 3], masked=True).astype(np.float32).filled(np.nan)
            pixel = pixel or abs(ds.transform.a) or 1.0
            shape = rgb.shape[1:]
        layers = [rgb]
        for f in factors:
            with rasterio.open(_resolve(row[f], base)) as ds:
                arr = ds.read(1, masked=True, out_shape=shape).astype(np.float32).filled(np.nan)
            layers.append(arr[None])
        with rasterio.open(_resolve(row["mask_path"], base)) as ds:
            mask = (ds.read(1, out_shape=shape) > 0).astype(np.uint8)
        images.append(np.concatenate(layers))
        labels.append(mask)
        raw = (row.get("split") or "").strip().lower()
        if raw and raw not in SPLIT_ALIASES:
            raise RtsFusionError(f"The manifest's split column has the value '{raw}'; use train, val or test.")
        splits.append(SPLIT_ALIASES.get(raw, ""))
    if any(splits) and not all(splits):
        raise RtsFusionError(f"{splits.count('')} manifest rows have no split while the others have one.")
    if not all(s in SPLITS for s in splits):
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(rows))
        n_val, n_test = int(round(fractions[0] * len(rows))), int(round(fractions[1] * len(rows)))
        splits = ["train"] * len(rows)
        for i in order[:n_val]:
            splits[i] = "val"
        for i in order[n_val : n_val + n_test]:
            splits[i] = "test"
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise RtsFusionError(f"Manifest chips differ in size: {sorted(shapes)}.")
    groups = tuple(FEATURES[b].group for b in bands)
    return ChipSet(np.stack(images), np.stack(labels), splits, bands, groups, float(pixel), eight_bit)


def chip_at(scene: Scene, r: int, c: int, chip: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image (C, chip, chip), label and valid mask of the chip with top-left corner (r, c)."""
    sl = np.s_[r : r + chip, c : c + chip]
    return scene.image[:, r : r + chip, c : c + chip], scene.label[sl], scene.valid[sl]
