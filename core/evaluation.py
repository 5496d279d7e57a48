"""Evaluation of detections against ground-truth polygons: pixel, per-chip and object-level scores."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.features import rasterize, shapes
from scipy import ndimage

from .errors import RtsFusionError
from .grid import TargetGrid
from .labels import rasterize_polygons
from .metrics import Confusion, chip_objects, confusion, object_scores, scores, summarize
from .outputs import atomic_output
from .polygons import FOUR, read_detections
from .vector import PolygonRecord, layer_crs_wkt, read_polygons, write_polygons


@dataclass(frozen=True)
class Objects:
    """Objects as a label raster (0 = none, i = object i) and their outlines (exterior + holes)."""

    labels: np.ndarray
    rings: list[list[list[tuple[float, float]]]]


@dataclass(frozen=True)
class Evaluation:
    """Scores of one evaluation, the per-object match table and the warnings to carry into every output."""

    pixel: dict
    objects: dict
    predicted: list[dict] = field(default_factory=list)
    truth: list[dict] = field(default_factory=list)
    chips: int = 0
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvaluationResult:
    """What `evaluate_detections` returns: the scores, the objects compared (inside the evaluated area) and the grid.

    Attributes:
        evaluation: the scores and match tables.
        predicted: predicted objects, numbered 1..n in the order of `evaluation.predicted`.
        truth: ground-truth objects, numbered 1..n in the order of `evaluation.truth`.
        grid: the grid both were compared on.

    """

    evaluation: Evaluation
    predicted: Objects
    truth: Objects
    grid: TargetGrid


# A pixel-size grid larger than this is refused: it cannot be meant for an evaluation (≈ 1.6 GB of labels).
MAX_GRID_PIXELS = 400_000_000


def _polygons(path: str, crs_wkt: str, what: str) -> list:
    try:
        return read_polygons(path, crs_wkt or None)
    except (ValueError, RuntimeError) as exc:
        raise RtsFusionError(f"Cannot read the {what} polygons from '{path}': {exc}") from exc


def _objects_from_polygons(polys: list, grid: TargetGrid) -> Objects:
    if not polys:
        return Objects(np.zeros((grid.height, grid.width), np.int32), [])
    shp = [({"type": "Polygon", "coordinates": rings}, i + 1) for i, rings in enumerate(polys)]
    labels = rasterize(shp, out_shape=(grid.height, grid.width), transform=grid.affine, fill=0, dtype="int32")
    return Objects(labels, polys)


def _objects_from_mask(binary: np.ndarray, grid: TargetGrid) -> Objects:
    labels, n = ndimage.label(binary, structure=FOUR)
    rings: list = [None] * n
    for geom, value in shapes(labels.astype(np.int32), mask=labels > 0, connectivity=4, transform=grid.affine):
        rings[int(value) - 1] = geom["coordinates"]
    return Objects(labels.astype(np.int32), rings)


def _inside(objs: Objects, valid: np.ndarray) -> tuple[Objects, int]:
    """The objects with at least one pixel in the valid area, renumbered 1..k in file order; and how many were dropped.

    Objects wholly outside the evaluated area (or wholly hidden under later polygons) never count, wherever
    they sit in the file.
    """
    labels = np.where(valid, objs.labels, 0)
    present = np.unique(labels[labels > 0])
    lut = np.zeros(len(objs.rings) + 1, np.int32)
    lut[present] = np.arange(1, len(present) + 1, dtype=np.int32)
    return Objects(lut[labels], [objs.rings[i - 1] for i in present.tolist()]), len(objs.rings) - len(present)


def _bounds(polys: list) -> tuple[float, float, float, float] | None:
    pts = np.array([pt[:2] for rings in polys for ring in rings for pt in ring], dtype=np.float64)
    if not len(pts):
        return None
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def _units(crs_wkt: str) -> str:
    if not crs_wkt:
        return "map units (the layers have no CRS)"
    crs = CRS.from_wkt(crs_wkt)
    if crs.is_geographic:
        return "degrees"
    return str(crs.linear_units or "map units")


def polygon_grid(
    polygons: list[list], crs_wkt: str, pixel_size: float, clip: tuple[float, float, float, float] | None = None
) -> TargetGrid:
    """A grid of `pixel_size` (in the CRS's units) covering polygon sets, optionally clipped to a box.

    Raises:
        RtsFusionError: no polygon, a non-positive pixel size, or a grid too large to be meant (names the pixel
            size and the CRS's units).

    """
    if not pixel_size > 0:
        raise RtsFusionError(f"The pixel size must be positive, not {pixel_size}.")
    boxes = [b for b in (_bounds(p) for p in polygons) if b is not None]
    if not boxes:
        raise RtsFusionError("There is no polygon to set the evaluation grid from.")
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    if clip is not None:
        x0, y0, x1, y1 = max(x0, clip[0]), max(y0, clip[1]), min(x1, clip[2]), min(y1, clip[3])
        if x0 >= x1 or y0 >= y1:
            raise RtsFusionError("The area of interest does not overlap the detections or the ground truth.")
    x0, y0 = np.floor(x0 / pixel_size) * pixel_size, np.floor(y0 / pixel_size) * pixel_size
    width = max(1, int(np.ceil((x1 - x0) / pixel_size)))
    height = max(1, int(np.ceil((y1 - y0) / pixel_size)))
    units = _units(crs_wkt)
    if width * height > MAX_GRID_PIXELS:
        hint = (
            " The layers are in a geographic CRS: give the pixel size in degrees (10 m ≈ 0.0001°)."
            if units == "degrees"
            else ""
        )
        raise RtsFusionError(
            f"A pixel size of {pixel_size:g} {units} gives a {width} × {height} px evaluation grid, far too large; "
            f"use a coarser pixel size.{hint}"
        )
    top = y0 + height * pixel_size
    return TargetGrid(crs_wkt, (pixel_size, 0.0, float(x0), 0.0, -pixel_size, float(top)), width, height)


def match_objects(pred: np.ndarray, truth: np.ndarray, iou_threshold: float) -> tuple[dict, list[dict], list[dict]]:
    """Object-level precision, recall and F1 under two rules, and the per-object matches.

    One-to-one: predicted and true objects are paired greedily by decreasing IoU, pairs with IoU ≥ the
    threshold count as true positives. Any-overlap (the study's looser rule): a prediction is correct when it
    overlaps any true object, a true object is found when any prediction overlaps it.
    """
    n_p, n_t = int(pred.max(initial=0)), int(truth.max(initial=0))
    area_p = np.bincount(pred.ravel(), minlength=n_p + 1)
    area_t = np.bincount(truth.ravel(), minlength=n_t + 1)
    both = (pred > 0) & (truth > 0)
    pairs, inter = np.unique(pred[both].astype(np.int64) * (n_t + 1) + truth[both], return_counts=True)
    pi, ti = pairs // (n_t + 1), pairs % (n_t + 1)
    iou = inter / (area_p[pi] + area_t[ti] - inter)
    matched_p: dict[int, tuple[int, float]] = {}
    matched_t: dict[int, tuple[int, float]] = {}
    for k in np.argsort(-iou):
        if iou[k] < iou_threshold:
            break
        p, t = int(pi[k]), int(ti[k])
        if p not in matched_p and t not in matched_t:
            matched_p[p] = (t, float(iou[k]))
            matched_t[t] = (p, float(iou[k]))
    overlap_p, overlap_t = set(pi.tolist()), set(ti.tolist())

    def prf(tp_p: int, tp_t: int) -> dict[str, float]:
        p = tp_p / n_p if n_p else (1.0 if n_t == 0 else 0.0)
        r = tp_t / n_t if n_t else 1.0
        return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}

    one = prf(len(matched_p), len(matched_t))
    anyo = prf(len(overlap_p), len(overlap_t))
    summary = {
        "predicted_objects": n_p,
        "true_objects": n_t,
        "iou_threshold": iou_threshold,
        "one_to_one": {**one, "tp": len(matched_p), "fp": n_p - len(matched_p), "fn": n_t - len(matched_t)},
        "any_overlap": anyo,
    }
    best_iou_p: dict[int, float] = {}
    for p, v in zip(pi.tolist(), iou.tolist()):
        best_iou_p[p] = max(best_iou_p.get(p, 0.0), v)
    best_iou_t: dict[int, float] = {}
    for t, v in zip(ti.tolist(), iou.tolist()):
        best_iou_t[t] = max(best_iou_t.get(t, 0.0), v)
    pred_rows = [
        {
            "id": p,
            "status": "TP" if p in matched_p else "FP",
            "match_id": matched_p.get(p, (0, 0))[0],
            "iou": round(matched_p[p][1] if p in matched_p else best_iou_p.get(p, 0.0), 4),
            "overlaps_truth": int(p in overlap_p),
            "area_px": int(area_p[p]),
        }
        for p in range(1, n_p + 1)
    ]
    truth_rows = [
        {
            "id": t,
            "status": "TP" if t in matched_t else "FN",
            "match_id": matched_t.get(t, (0, 0))[0],
            "iou": round(matched_t[t][1] if t in matched_t else best_iou_t.get(t, 0.0), 4),
            "overlapped": int(t in overlap_t),
            "area_px": int(area_t[t]),
        }
        for t in range(1, n_t + 1)
    ]
    return summary, pred_rows, truth_rows


def per_chip_confusions(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray, chip: int) -> list[Confusion]:
    """Confusions of the chips (tiling the grid) that hold a true or a predicted slump pixel.

    Chips with neither are left out: the study's chips were drawn around slumps, and empty chips would
    otherwise dominate the average with perfect scores.
    """
    return [confusion(pred[sl], truth[sl], valid[sl]) for sl in _slump_chips(pred, truth, valid, chip)]


def per_chip_objects(
    pred: np.ndarray, truth: np.ndarray, valid: np.ndarray, chip: int, connectivity: int = 8
) -> list[tuple[int, int, int]]:
    """Object counts (tp, fp, fn) of the same chips as per_chip_confusions, as the study counts them.

    Objects are cut at the chip edges and joined by `connectivity` (8: diagonal neighbours join, the study's
    rule; 4: edge neighbours only); see core.metrics.chip_objects. Pixels outside `valid` hold no object.
    """
    return [
        chip_objects(pred[sl] & valid[sl], truth[sl] & valid[sl], connectivity)
        for sl in _slump_chips(pred, truth, valid, chip)
    ]


def _slump_chips(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray, chip: int) -> list[tuple[slice, slice]]:
    """The windows of a chip lattice over the grid that hold a valid true or predicted slump pixel."""
    out = []
    h, w = pred.shape
    for r in range(0, h, chip):
        for c in range(0, w, chip):
            sl = np.s_[r : r + chip, c : c + chip]
            v = valid[sl]
            if (pred[sl] & v).any() or (truth[sl] & v).any():
                out.append(sl)
    return out


def _is_raster(path: str) -> bool:
    try:
        with rasterio.open(path.split("|")[0]):
            return True
    except rasterio.errors.RasterioIOError:
        return False


def _name(path: str) -> str:
    base, _, suffix = path.partition("|")
    return os.path.basename(base) + (f" ({suffix.split('=', 1)[1]})" if suffix.startswith("layername=") else "")


def _require(truth_polys: list, truth_name: str) -> None:
    if not truth_polys:
        raise RtsFusionError(
            f"The ground truth '{truth_name}' holds no polygon: there is nothing to score the detections against."
        )


def evaluate_detections(
    prediction: str,
    truth_path: str,
    reference: str | None = None,
    aoi: str | None = None,
    threshold: float = 0.5,
    chip_size: int = 256,
    iou_threshold: float = 0.5,
    pixel_size: float | None = None,
    connectivity: int = 8,
) -> EvaluationResult:
    """Score predictions (a probability/mask raster, or polygons) against ground-truth polygons.

    Only objects with a pixel inside the evaluated area (valid pixels of the detections or reference, and the
    AOI) count, so any layer scored against itself gives 1.0 at pixel and object level, with or without an AOI.

    Args:
        prediction: raster (probability or 0/1 mask) or polygon file (a path may carry '|layername=').
        truth_path: ground-truth slump polygons.
        reference: a raster giving the grid when the prediction is polygons (e.g. the fused stack).
        aoi: optional polygons; only pixels inside count.
        threshold: probability threshold (probability rasters only).
        chip_size: chip side for the per-chip average, in pixels.
        iou_threshold: IoU for one-to-one object matches.
        pixel_size: grid pixel size (in the prediction layer's CRS units) for polygon predictions without a
            reference raster; the grid covers both layers (clipped to the AOI).
        connectivity: 8 or 4, how pixels join into objects for the study's per-chip object counts
            (objects["per_chip"]); the scene-wide object rules always use the polygon outlines.

    Raises:
        RtsFusionError: inputs that cannot be compared: an empty ground truth, ground truth that does not overlap
            the detections, polygon predictions without a grid, an AOI that misses everything.

    """
    if connectivity not in (4, 8):
        raise RtsFusionError(f"The object connectivity must be 4 or 8 (neighbouring pixels), not {connectivity}.")
    truth_name = _name(truth_path)
    if _is_raster(prediction):
        det = read_detections(prediction.split("|")[0], threshold)
        grid, data_valid = det.grid, det.valid
        pred_all = _objects_from_mask(det.binary, grid)
        truth_polys = _polygons(truth_path, grid.crs_wkt, "ground-truth")
        area = f"the valid pixels of the detections '{_name(prediction)}'"
    else:
        if reference:
            with rasterio.open(reference) as ds:
                grid = TargetGrid(ds.crs.to_wkt() if ds.crs else "", tuple(ds.transform)[:6], ds.width, ds.height)
                data_valid = ds.read_masks(1) > 0
            pred_polys = _polygons(prediction, grid.crs_wkt, "predicted")
            truth_polys = _polygons(truth_path, grid.crs_wkt, "ground-truth")
            area = f"the valid pixels of the reference raster '{_name(reference)}'"
        elif pixel_size:
            crs_wkt = layer_crs_wkt(prediction) or layer_crs_wkt(truth_path)
            pred_polys = _polygons(prediction, crs_wkt, "predicted")
            truth_polys = _polygons(truth_path, crs_wkt, "ground-truth")
            clip = _bounds(_polygons(aoi, crs_wkt, "area-of-interest")) if aoi else None
            if aoi and clip is None:
                raise RtsFusionError(f"The area of interest '{_name(aoi)}' holds no polygon.")
            _require(truth_polys, truth_name)
            grid = polygon_grid([pred_polys, truth_polys], crs_wkt, float(pixel_size), clip)
            data_valid = np.ones((grid.height, grid.width), bool)
            area = f"the extent of the detections '{_name(prediction)}' and the ground truth"
        else:
            raise RtsFusionError(
                "Polygon detections need a grid to be scored on: give a reference raster (e.g. the fused stack) "
                "or a pixel size."
            )
        pred_all = _objects_from_polygons(pred_polys, grid)
        if pred_polys and not _inside(pred_all, data_valid)[0].rings:
            raise RtsFusionError(
                f"None of the {len(pred_polys)} predicted polygons of '{_name(prediction)}' lies on {area}: the "
                "layers do not overlap (check their CRS and extent)."
            )
    _require(truth_polys, truth_name)
    warnings: list[str] = []
    truth_all = _objects_from_polygons(truth_polys, grid)
    on_data, off_data = _inside(truth_all, data_valid)
    if not on_data.rings:
        raise RtsFusionError(
            f"None of the {len(truth_polys)} ground-truth polygons of '{truth_name}' lies on {area}: the layers do "
            "not overlap (check their CRS and extent)."
        )
    if off_data:
        warnings.append(
            f"{off_data} of the {len(truth_polys)} ground-truth polygons of '{truth_name}' lie outside {area} (or "
            "cover no pixel centre) and were not scored."
        )
    valid = data_valid
    if aoi:
        valid = valid & rasterize_polygons(aoi, grid).astype(bool)
        if not valid.any():
            raise RtsFusionError(f"The area of interest '{_name(aoi)}' does not overlap {area}.")
    truth_objects, _ = _inside(truth_all, valid)
    pred_objects, _ = _inside(pred_all, valid)
    if not truth_objects.rings:
        raise RtsFusionError(
            f"None of the ground-truth polygons of '{truth_name}' lies inside the area of interest '{_name(aoi)}'."
        )
    pred_mask, truth_mask = pred_objects.labels > 0, truth_objects.labels > 0
    if not pred_objects.rings:
        warnings.append("The detections hold no slump inside the evaluated area: every score below is 0.")
    elif not (pred_mask & truth_mask).any():
        warnings.append(
            "No detection overlaps any ground-truth polygon: check that both layers show the same place and time."
        )
    total = confusion(pred_mask, truth_mask, valid)
    chips = per_chip_confusions(pred_mask, truth_mask, valid, chip_size)
    pixel = {
        "pooled": scores(total),
        "per_chip": summarize(chips)["per_chip"] if chips else {},
        "counts": total.__dict__,
    }
    objects, pred_rows, truth_rows = match_objects(pred_objects.labels, truth_objects.labels, iou_threshold)
    counts = per_chip_objects(pred_mask, truth_mask, valid, chip_size, connectivity)
    objects["per_chip"] = {**object_scores(counts), "connectivity": connectivity}
    ev = Evaluation(pixel, objects, pred_rows, truth_rows, len(chips), tuple(warnings))
    return EvaluationResult(ev, pred_objects, truth_objects, grid)


def metric_rows(ev: Evaluation) -> list[dict]:
    """The evaluation as (metric, pooled, per_chip, note) rows for a table layer and CSV; warnings come first."""
    nan = float("nan")
    rows = [{"metric": "warning", "pooled": nan, "per_chip": nan, "note": w} for w in ev.warnings]
    for k, v in ev.pixel["pooled"].items():
        rows.append({"metric": f"pixel_{k}", "pooled": v, "per_chip": ev.pixel["per_chip"].get(k, nan), "note": ""})
    for rule in ("one_to_one", "any_overlap"):
        for k in ("precision", "recall", "f1"):
            rows.append({"metric": f"object_{rule}_{k}", "pooled": ev.objects[rule][k], "per_chip": nan, "note": ""})
    chips = ev.objects.get("per_chip")
    if chips:  # the study's count: objects cut at chip edges, any overlap, counts summed over chips
        for k in ("precision", "recall", "f1"):
            name = f"object_chips_{chips['connectivity']}_connected_{k}"
            rows.append({"metric": name, "pooled": nan, "per_chip": chips[k], "note": ""})
    for name, value in (
        ("predicted_objects", ev.objects["predicted_objects"]),
        ("true_objects", ev.objects["true_objects"]),
        ("chips_scored", ev.chips),
    ):
        rows.append({"metric": name, "pooled": float(value), "per_chip": nan, "note": ""})
    return rows


def write_csv(path: str, rows: list[dict]) -> str:
    """Write dict rows as CSV; returns the path."""
    with atomic_output(path, "metrics CSV") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_matches(path: str, result: EvaluationResult) -> None:
    """GeoPackage with layers 'predictions' and 'ground_truth', each polygon carrying its match status."""
    example = {"id": 0, "status": "", "match_id": 0, "iou": 0.0, "area_px": 0}
    with atomic_output(path, "match layers") as tmp:  # both layers, or nothing
        _write_match_layers(tmp, result, example)


def _write_match_layers(path: str, result: EvaluationResult, example: dict) -> None:
    ev = result.evaluation
    layers = (("predictions", result.predicted, ev.predicted), ("ground_truth", result.truth, ev.truth))
    for i, (name, objs, rows) in enumerate(layers):
        records = []
        for row, rings in zip(rows, objs.rings):
            if rings:
                attrs = {k: row[k] for k in example}
                records.append(PolygonRecord(rings[0], attrs, tuple(rings[1:])))
        write_polygons(path, name, result.grid.crs_wkt, records, append=i > 0, fields=list(example.items()))
