"""Evaluation of detections against ground-truth polygons: pixel, per-chip and object-level scores."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field

import numpy as np
import rasterio
from rasterio.features import rasterize, shapes
from scipy import ndimage

from .errors import RtsFusionError
from .grid import TargetGrid
from .labels import rasterize_polygons
from .metrics import Confusion, confusion, scores, summarize
from .polygons import FOUR, read_detections
from .vector import PolygonRecord, read_polygons, write_polygons


@dataclass
class Objects:
    """Objects as a label raster (0 = none, i = object i) and their outlines (exterior + holes)."""

    labels: np.ndarray
    rings: list[list[list[tuple[float, float]]]]


@dataclass
class Evaluation:
    """Scores of one evaluation and the per-object match table."""

    pixel: dict
    objects: dict
    predicted: list[dict] = field(default_factory=list)
    truth: list[dict] = field(default_factory=list)
    chips: int = 0


def _objects_from_polygons(path: str, grid: TargetGrid) -> Objects:
    polys = read_polygons(path, grid.crs_wkt)
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
    out = []
    h, w = pred.shape
    for r in range(0, h, chip):
        for c in range(0, w, chip):
            sl = np.s_[r : r + chip, c : c + chip]
            v = valid[sl]
            if (pred[sl] & v).any() or (truth[sl] & v).any():
                out.append(confusion(pred[sl], truth[sl], v))
    return out


def evaluate_detections(
    prediction: str,
    truth_path: str,
    reference: str | None = None,
    aoi: str | None = None,
    threshold: float = 0.5,
    chip_size: int = 256,
    iou_threshold: float = 0.5,
) -> tuple[Evaluation, Objects, Objects, TargetGrid]:
    """Score predictions (a probability/mask raster, or polygons) against ground-truth polygons.

    Args:
        prediction: raster (probability or 0/1 mask) or polygon file.
        truth_path: ground-truth slump polygons.
        reference: a raster giving the grid when the prediction is polygons (e.g. the fused stack).
        aoi: optional polygons; only pixels inside count.
        threshold: probability threshold (probability rasters only).
        chip_size: chip side for the per-chip average, in pixels.
        iou_threshold: IoU for one-to-one object matches.

    Raises:
        RtsFusionError: inputs that cannot be compared.

    """
    is_raster = True
    try:
        with rasterio.open(prediction.split("|")[0]):
            pass
    except rasterio.errors.RasterioIOError:
        is_raster = False
    if is_raster:
        det = read_detections(prediction, threshold)
        grid, valid, pred_mask = det.grid, det.valid, det.binary
        pred_objects = _objects_from_mask(pred_mask, grid)
    else:
        if not reference:
            raise RtsFusionError("Polygon predictions need a reference raster (e.g. the fused stack) to set the grid.")
        with rasterio.open(reference) as ds:
            grid = TargetGrid(ds.crs.to_wkt(), tuple(ds.transform)[:6], ds.width, ds.height)
            valid = ds.read_masks(1) > 0
        pred_objects = _objects_from_polygons(prediction, grid)
        pred_mask = pred_objects.labels > 0
    if aoi:
        valid = valid & rasterize_polygons(aoi, grid).astype(bool)
    if not valid.any():
        raise RtsFusionError("No valid pixel to evaluate (nodata everywhere, or the AOI misses the raster).")
    truth_objects = _objects_from_polygons(truth_path, grid)
    truth_mask = truth_objects.labels > 0
    total = confusion(pred_mask, truth_mask, valid)
    chips = per_chip_confusions(pred_mask, truth_mask, valid, chip_size)
    pixel = {
        "pooled": scores(total),
        "per_chip": summarize(chips)["per_chip"] if chips else {},
        "counts": total.__dict__,
    }
    pred_in = np.where(valid, pred_objects.labels, 0)
    truth_in = np.where(valid, truth_objects.labels, 0)
    objects, pred_rows, truth_rows = match_objects(pred_in, truth_in, iou_threshold)
    return Evaluation(pixel, objects, pred_rows, truth_rows, len(chips)), pred_objects, truth_objects, grid


def metric_rows(ev: Evaluation) -> list[dict]:
    """The evaluation as (metric, value) rows for a table layer and CSV."""
    rows = []
    for k, v in ev.pixel["pooled"].items():
        rows.append({"metric": f"pixel_{k}", "pooled": v, "per_chip": ev.pixel["per_chip"].get(k, float("nan"))})
    for rule in ("one_to_one", "any_overlap"):
        for k in ("precision", "recall", "f1"):
            v = ev.objects[rule][k]
            rows.append({"metric": f"object_{rule}_{k}", "pooled": v, "per_chip": float("nan")})
    rows.append(
        {"metric": "predicted_objects", "pooled": float(ev.objects["predicted_objects"]), "per_chip": float("nan")}
    )
    rows.append({"metric": "true_objects", "pooled": float(ev.objects["true_objects"]), "per_chip": float("nan")})
    rows.append({"metric": "chips_scored", "pooled": float(ev.chips), "per_chip": float("nan")})
    return rows


def write_csv(path: str, rows: list[dict]) -> str:
    """Write dict rows as CSV; returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_matches(path: str, ev: Evaluation, pred: Objects, truth: Objects, grid: TargetGrid) -> None:
    """GeoPackage with layers 'predictions' and 'ground_truth', each polygon carrying its match status."""
    example = {"id": 0, "status": "", "match_id": 0, "iou": 0.0, "area_px": 0}
    for i, (name, objs, rows) in enumerate((("predictions", pred, ev.predicted), ("ground_truth", truth, ev.truth))):
        records = []
        for row, rings in zip(rows, objs.rings):
            if rings:
                attrs = {k: row[k] for k in example}
                records.append(PolygonRecord(rings[0], attrs, tuple(rings[1:])))
        write_polygons(path, name, grid.crs_wkt, records, append=i > 0, fields=list(example.items()))
