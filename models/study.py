"""Reproducible experiments: compare architectures under one budget, and test spatial and temporal transfer.

- **Model study**: every (architecture, band preset) run is trained with the same settings, split and seed(s) on
  one stack + inventory (or a chip manifest) and scored on the held-out test split, pooled and per chip.
- **Spatial transfer**: leave one region out — train on the other regions, test on the held-out one, in turn.
- **Temporal transfer**: train on one year's stack and inventory, test on another year's at the same places.

Held-out areas are scored by predicting them whole with the tiled engine's blending (models.importance) and
comparing with the ground truth, pooled over pixels and averaged over chips holding a true or predicted slump.

Score columns: precision/recall/f1/iou pooled over all pixels; "*_per_chip" averaged over chips (a chip with no
slump and no prediction counts 1); "overall_accuracy" pooled; "f1_study" and "macro_f1_study" the study's
per-chip convention (an empty chip counts 0; macro = mean of the slump and background F1, the paper's "F1");
"object_f1_chips" the study's object F1 (objects 8-connected and cut at chip edges, any overlap a hit, counts
summed over chips).
"""

from __future__ import annotations

import csv
import os
import statistics
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from osgeo import ogr

from ..core import report
from ..core.errors import OperationCanceled, RtsFusionError
from ..core.evaluation import per_chip_confusions, per_chip_objects
from ..core.labels import require_overlap
from ..core.metrics import confusion, object_scores, summarize
from ..core.vector import open_layer
from .card import ModelCard
from .data import (
    MANIFEST_FIXED,
    _resolve,
    auto_blocked_split,
    chip_cover,
    load_manifest,
    load_scene,
    random_split,
)
from .device import resolve_device
from .importance import predict_area, read_area
from .package import load_package
from .registry import ARCHITECTURES, differs_from_study
from .train import TrainConfig, _Chips, evaluate, train_from_manifest, train_from_stack

METRICS = ("precision", "recall", "f1", "iou")
# Beside METRICS and their per-chip means: pooled overall accuracy and the study's per-chip convention.
STUDY_COLUMNS = ("overall_accuracy", "f1_study", "macro_f1_study", "object_f1_chips")
ProgressFn = Callable[[float], None]


@dataclass(frozen=True)
class StudyRun:
    """One model of a study: a label, an architecture and the bands it gets (None: all of the stack)."""

    label: str
    architecture: str
    bands: tuple[str, ...] | None = None


def _sub_progress(progress: ProgressFn, k: int, n: int) -> ProgressFn:
    return lambda p: progress(100.0 * (k + p / 100.0) / n)


def _score_row(summary: dict) -> dict:
    row = {}
    for k in METRICS:
        row[k] = round(float(summary.get("pooled", {}).get(k, float("nan"))), 4)
        row[f"{k}_per_chip"] = round(float(summary.get("per_chip", {}).get(k, float("nan"))), 4)
    study = summary.get("study", {})
    row["overall_accuracy"] = round(float(summary.get("pooled", {}).get("overall_accuracy", float("nan"))), 4)
    row["f1_study"] = round(float(study.get("f1", float("nan"))), 4)
    row["macro_f1_study"] = round(float(study.get("macro_f1", float("nan"))), 4)
    row["object_f1_chips"] = round(float(summary.get("objects", {}).get("f1", float("nan"))), 4)
    return row


def evaluate_area(
    model: torch.nn.Module,
    card: ModelCard,
    stack_path: str,
    truth_path: str,
    aoi_path: str | None = None,
    device: str = "auto",
    batch_size: int = 4,
    is_canceled: Callable[[], bool] = lambda: False,
    keep: np.ndarray | None = None,
) -> dict:
    """Pooled and per-chip scores of a model on an area (the stack or the AOI's box, AOI pixels only).

    `keep`, a boolean mask of the area, limits the scoring to its pixels (e.g. locations held out from training).
    """
    x, valid, truth, _ = read_area(card, stack_path, truth_path, aoi_path, require_truth=False)
    if keep is not None:
        if keep.shape != valid.shape:
            raise RtsFusionError(
                f"'{os.path.basename(stack_path)}' is {valid.shape[1]} × {valid.shape[0]} px but the training "
                f"stack {keep.shape[1]} × {keep.shape[0]} px: temporal transfer needs the years on one grid."
            )
        valid = valid & keep
    dev = resolve_device(device)
    prob = predict_area(model, card, x, valid, dev, batch_size, is_canceled)
    pred = (prob >= card.threshold) & valid
    pooled = summarize([confusion(pred, truth, valid)])
    chips = per_chip_confusions(pred, truth, valid, card.tile_size)
    chip_summary = summarize(chips) if chips else {}
    objects = per_chip_objects(pred, truth.astype(bool), valid, card.tile_size, 8)
    return {
        "pooled": pooled["pooled"],
        "per_chip": chip_summary.get("per_chip", {}),
        "study": chip_summary.get("study", {}),
        "objects": object_scores(objects) if objects else {},
        "chips": len(chips),
    }


@dataclass
class StudyResult:
    """Rows per run and seed, rows averaged over seeds, learning curves, and whether it was cancelled."""

    rows: list[dict]
    summary: list[dict]
    histories: dict[str, list[dict]]
    canceled: bool = False


def run_model_study(
    runs: Sequence[StudyRun],
    base: TrainConfig,
    seeds: Sequence[int],
    workdir: str,
    stack_path: str | None = None,
    inventory_path: str | None = None,
    manifest: str | None = None,
    progress: ProgressFn | None = None,
    is_canceled: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> StudyResult:
    """Train and test every run with every seed under the same settings.

    A stack + inventory or a chip manifest is required. On cancel the finished runs are kept (canceled=True).

    Raises:
        RtsFusionError: no data, an unknown architecture, or a run that cannot train (explained).

    """
    progress, is_canceled, log = progress or (lambda _p: None), is_canceled or (lambda: False), log or (lambda _m: None)
    if not manifest and not (stack_path and inventory_path):
        raise RtsFusionError("A model study needs a stack and an inventory, or a chip manifest.")
    unknown = [r.architecture for r in runs if r.architecture not in ARCHITECTURES]
    if unknown:
        raise RtsFusionError(f"Unknown architecture(s) {', '.join(unknown)}; known: {', '.join(ARCHITECTURES)}.")
    if not runs or not seeds:
        raise RtsFusionError("Give at least one architecture and one seed.")
    os.makedirs(workdir, exist_ok=True)
    rows, histories, canceled = [], {}, False
    total = len(runs) * len(seeds)
    k = 0
    for run in runs:
        for seed in seeds:
            if is_canceled():
                canceled = True
                break
            cfg = replace(base, architecture=run.architecture, seed=seed, encoder=_encoder(run.architecture, base))
            out = os.path.join(workdir, f"{run.architecture}_{k}_{seed}.safetensors")
            sub = _sub_progress(progress, k, total)
            log(f"[{k + 1}/{total}] {run.label}, seed {seed}")
            try:
                if manifest:
                    result = train_from_manifest(manifest, out, cfg, progress=sub, is_canceled=is_canceled)
                else:
                    result = train_from_stack(
                        stack_path, inventory_path, out, cfg, bands=run.bands, progress=sub, is_canceled=is_canceled
                    )
            except OperationCanceled:
                canceled = True
                break
            if result.canceled:
                canceled = True
                break
            metrics = result.card.metrics
            row = {
                "model": run.label,
                "architecture": run.architecture,
                "bands": len(result.card.bands),
                "vs_study": differs_from_study(run.architecture, len(result.card.bands)),
                "seed": seed,
                "params": int(result.card.training.parameters),
                "train_seconds": float(result.card.training.train_seconds),
                "epochs": int(result.card.training.epochs_run),
                **_score_row(
                    {
                        "pooled": metrics.test,
                        "per_chip": metrics.test_per_chip,
                        "study": metrics.test_study,
                        "objects": metrics.test_objects,
                    }
                ),
            }
            rows.append(row)
            histories[f"{run.label} (seed {seed})"] = result.history
            log(f"    test F1 {row['f1']:.3f} (per chip {row['f1_per_chip']:.3f}), IoU {row['iou']:.3f}")
            k += 1
        if canceled:
            break
    return StudyResult(rows, summarize_rows(rows), histories, canceled)


def _encoder(architecture: str, base: TrainConfig) -> str:
    from .registry import encoder_for, encoder_sizes

    if base.encoder in encoder_sizes(architecture):
        return base.encoder
    return encoder_for(architecture, "tiny" if base.encoder == "tiny" else "standard")


def summarize_rows(rows: list[dict]) -> list[dict]:
    """Mean (and std over seeds) of each model's scores, best F1 first, with its rank."""
    out = []
    for label in dict.fromkeys(r["model"] for r in rows):
        group = [r for r in rows if r["model"] == label]
        s = {"model": label, "architecture": group[0]["architecture"], "bands": group[0]["bands"]}
        s["vs_study"] = differs_from_study(s["architecture"], s["bands"])
        s["params"] = group[0]["params"]
        s["seeds"] = len(group)
        for key in (*METRICS, *(f"{m}_per_chip" for m in METRICS), *STUDY_COLUMNS, "train_seconds"):
            values = [r[key] for r in group]
            s[key] = round(statistics.mean(values), 4)
            if key in ("f1", "iou"):
                s[f"{key}_std"] = round(statistics.stdev(values), 4) if len(values) > 1 else 0.0
        out.append(s)
    out.sort(key=lambda s: -s["f1"])
    for i, s in enumerate(out, 1):
        s["rank"] = i
    return out


# ----- transfer -----------------------------------------------------------------------------------------------------
def split_regions(regions_path: str, field: str | None, folder: str) -> list[tuple[str, str, str]]:
    """One (name, held-out region file, other regions file) per region: a distinct field value, or a feature.

    Raises:
        RtsFusionError: unreadable layer, unknown field, fewer than two regions.

    """
    _ds, layer = open_layer(regions_path)  # the layer chosen inside a GeoPackage; keep the data source open
    defn = layer.GetLayerDefn()
    names = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    if field and field not in names:
        raise RtsFusionError(f"The regions layer has no field '{field}'; fields: {', '.join(names)}.")
    groups: dict[str, list[ogr.Geometry]] = {}
    for feat in layer:
        geom = feat.GetGeometryRef()
        if geom is None:
            continue
        key = str(feat.GetField(field)) if field else str(feat.GetFID())
        groups.setdefault(key, []).append(geom.Clone())
    if len(groups) < 2:
        raise RtsFusionError("Spatial transfer needs at least two regions.")
    srs = layer.GetSpatialRef()
    driver = ogr.GetDriverByName("GPKG")

    def write(name: str, geoms: list[ogr.Geometry]) -> str:
        out = os.path.join(folder, f"{name}.gpkg")
        if os.path.exists(out):
            driver.DeleteDataSource(out)
        dst = driver.CreateDataSource(out)
        lyr = dst.CreateLayer("region", srs, ogr.wkbMultiPolygon)
        for g in geoms:
            f = ogr.Feature(lyr.GetLayerDefn())
            f.SetGeometry(ogr.ForceToMultiPolygon(g))
            lyr.CreateFeature(f)
            f = None
        dst = None
        return out

    folds = []
    for i, (key, geoms) in enumerate(groups.items()):
        others = [g for k, gs in groups.items() if k != key for g in gs]
        folds.append((key, write(f"region_{i}", geoms), write(f"others_{i}", others)))
    return folds


@dataclass
class TransferResult:
    """Rows per fold (and an overall row) with pooled and per-chip scores."""

    rows: list[dict]
    canceled: bool = False


def _workdir(workdir: str | None, prefix: str) -> str:
    workdir = workdir or tempfile.mkdtemp(prefix=prefix)
    os.makedirs(workdir, exist_ok=True)
    return workdir


def _fold_row(fold: str, train: str, test: str, in_sample_f1: float, scores: dict, log) -> dict:
    """One transfer row: names, the training run's own test F1, pooled and per-chip scores, chips; logged."""
    row = {"fold": fold, "train": train, "test": test, "in_sample_f1": in_sample_f1, **_score_row(scores)}
    row["chips"] = scores.get("chips", 0)
    log(f"    {test}: F1 {row['f1']:.3f}, IoU {row['iou']:.3f}")
    return row


def spatial_transfer(
    stack_path: str,
    inventory_path: str,
    regions_path: str,
    region_field: str | None,
    cfg: TrainConfig,
    bands: tuple[str, ...] | None = None,
    workdir: str | None = None,
    progress: ProgressFn | None = None,
    is_canceled: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> TransferResult:
    """Leave one region out: train on the others (their own split picks the best epoch), test on the held-out one."""
    progress, is_canceled, log = progress or (lambda _p: None), is_canceled or (lambda: False), log or (lambda _m: None)
    workdir = _workdir(workdir, "rts_spatial_")
    folds = split_regions(regions_path, region_field, workdir)
    for name, held_out, _ in folds:
        require_overlap(held_out, stack_path, f"the region {name} of the regions layer", "the stack")
    rows = []
    canceled = False
    for k, (name, held_out, others) in enumerate(folds):
        if is_canceled():
            canceled = True
            break
        log(f"[{k + 1}/{len(folds)}] train on all regions but {name}, test on {name}")
        out = os.path.join(workdir, f"fold_{k}.safetensors")
        try:
            result = train_from_stack(
                stack_path,
                inventory_path,
                out,
                cfg,
                bands=bands,
                aoi_path=others,
                progress=_sub_progress(progress, k, len(folds)),
                is_canceled=is_canceled,
            )
        except OperationCanceled:
            canceled = True
            break
        model, card = load_package(out)
        scores = evaluate_area(model, card, stack_path, inventory_path, held_out, cfg.device)
        rows.append(_fold_row(f"held out: {name}", "other regions", name, _in_sample_f1(result.card), scores, log))
    if rows:
        rows.append(_overall(rows))
    return TransferResult(rows, canceled)


def _held_out_has_slumps(card: ModelCard) -> bool:
    """Whether the training run's own test split held slump pixels (else its scores say nothing)."""
    return bool(card.training) and int(card.training.split.get("rts_pixels", {}).get("test", 1)) > 0


def _in_sample_f1(card: ModelCard) -> float:
    if not _held_out_has_slumps(card):
        return float("nan")
    return round(float(card.metrics.test.get("f1", float("nan"))), 4)


def _overall(rows: list[dict]) -> dict:
    """Mean over folds of each score (folds weigh equally)."""
    out = {"fold": "mean over folds", "train": "", "test": "", "chips": sum(r["chips"] for r in rows)}
    keys = ["in_sample_f1", *METRICS, *(f"{m}_per_chip" for m in METRICS), *STUDY_COLUMNS]
    for k in keys:
        vals = [r[k] for r in rows if r.get(k) == r.get(k)]  # NaN-free
        out[k] = round(statistics.mean(vals), 4) if vals else float("nan")
    return out


def held_out_locations(
    stack_path: str, inventory_path: str, cfg: TrainConfig, bands: tuple[str, ...] | None = None
) -> tuple[np.ndarray, int]:
    """The pixels a training run on this stack never sees: its test chips less any training or validation chip.

    Validation chips are left out as well: they pick the best epoch, so scoring them would flatter the run. The
    split is recomputed with the run's settings and seed (it is deterministic), so it is the run's own.

    Returns:
        (mask over the whole stack, number of held-out chips).

    Raises:
        RtsFusionError: no pixel is held out (a split that held out nothing).

    """
    scene = load_scene(stack_path, inventory_path, bands)
    chip = cfg.tile_size
    fractions = (cfg.val_fraction, cfg.test_fraction)
    if cfg.split == "blocked":
        split, _ = auto_blocked_split(scene, chip, cfg.block_size, fractions, cfg.seed)  # as train_from_stack
    else:
        split = random_split(scene, chip, fractions, cfg.seed)

    def cover(*names: str) -> np.ndarray:
        return chip_cover([rc for name in names for rc in split.chips[name]], chip, scene.label.shape)

    mask = cover("test") & ~cover("train", "val") & scene.valid
    if not mask.any():
        raise RtsFusionError(
            "The training split holds out no location that no training chip covers, so the other years cannot "
            "be scored on unseen ground; use the blocked split or a larger area."
        )
    return mask, len(split.chips["test"])


def temporal_transfer(
    train: tuple[str, str],
    tests: Sequence[tuple[str, str, str]],
    cfg: TrainConfig,
    bands: tuple[str, ...] | None = None,
    workdir: str | None = None,
    train_label: str = "train year",
    progress: ProgressFn | None = None,
    is_canceled: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> TransferResult:
    """Train on one year's (stack, inventory), test on other years' (label, stack, inventory) at the same places.

    As in the study, the other years are scored only at locations held out from training: the training run's
    test chips, less any pixel a training or validation chip covers (unlike the study's script, whose validation
    chips, which pick the best epoch, are the scored ones). The years' stacks must share one grid.
    """
    progress, is_canceled, log = progress or (lambda _p: None), is_canceled or (lambda: False), log or (lambda _m: None)
    require_overlap(train[1], train[0], f"the {train_label} inventory", f"the {train_label} stack")
    for label, stack, inventory in tests:
        require_overlap(inventory, stack, f"the {label} inventory", f"the {label} stack")
        require_overlap(inventory, train[0], f"the {label} inventory", f"the {train_label} stack")
    out = os.path.join(_workdir(workdir, "rts_temporal_"), "temporal.safetensors")
    held_out, n_held = held_out_locations(train[0], train[1], cfg, bands)
    log(f"Other years are scored on {n_held} held-out chips ({int(held_out.sum()):,} px) only.")
    log(f"Training on {train_label}")
    result = train_from_stack(
        train[0], train[1], out, cfg, bands=bands, progress=lambda p: progress(0.8 * p), is_canceled=is_canceled
    )
    model, card = load_package(out)
    own = (
        {
            "pooled": result.card.metrics.test,
            "per_chip": result.card.metrics.test_per_chip,
            "study": result.card.metrics.test_study,
            "objects": result.card.metrics.test_objects,
        }
        if _held_out_has_slumps(result.card)
        else {}  # no slump in the held-out split: scores of 1.0 on empty ground would mislead; NaN instead
    )
    own["chips"] = int(result.card.training.split.get("chips", {}).get("test", 0))
    in_sample = _in_sample_f1(result.card)
    rows = [_fold_row(f"{train_label} (held-out test split)", train_label, train_label, in_sample, own, log)]
    for k, (label, stack, inventory) in enumerate(tests):
        if is_canceled():
            return TransferResult(rows, True)
        scores = evaluate_area(model, card, stack, inventory, None, cfg.device, keep=held_out)
        rows.append(
            _fold_row(f"{train_label} → {label} (held-out locations)", train_label, label, in_sample, scores, log)
        )
        progress(80 + 20 * (k + 1) / len(tests))
    return TransferResult(rows, False)


def study_report(path: str, result: StudyResult, settings: dict) -> str:
    """An HTML report: settings, the summary table, per-seed rows and learning curves (PNGs beside it)."""
    folder = report.assets_folder(path)
    sections = [("Settings", report.table([{"setting": k, "value": str(v)} for k, v in settings.items()]))]
    if result.canceled:
        sections.append(("Cancelled", "<p>The study was cancelled; the finished runs are shown.</p>"))
    sections.append(("Models (mean over seeds, best F1 first)", report.table(result.summary)))
    sections.append(("Every run", report.table(result.rows)))
    curves = []
    for key, ylabel in (("f1", "validation F1"), ("train_loss", "training loss")):
        per_run = {label: [h.get(key, float("nan")) for h in hist] for label, hist in result.histories.items()}
        if not per_run:
            continue
        n = max(len(v) for v in per_run.values())
        # One curve per model: the mean over its seeds (runs are keyed "model (seed s)").
        grouped: dict[str, list[list[float]]] = {}
        for label, values in per_run.items():
            grouped.setdefault(label.rsplit(" (seed ", 1)[0], []).append(values + [float("nan")] * (n - len(values)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # epochs no seed reached (early stop): NaN
            series = {label: np.nanmean(np.array(v, float), axis=0).tolist() for label, v in grouped.items()}
        png = os.path.join(folder, f"{key}.png")
        report.line_chart(png, list(range(1, n + 1)), series, f"Learning curves: {ylabel}", "epoch")
        curves.append(report.image(png, path))
    if curves:
        sections.append(("Learning curves", "".join(curves)))
    return report.write_html(path, "RTS model study", sections)


def settings_of(cfg: TrainConfig, **extra) -> dict:
    """Readable settings of a study (for its report)."""
    d = {k: v for k, v in asdict(cfg).items() if k not in ("architecture", "seed", "encoder_weights")}
    d.update(extra)
    return d


# ----- transfer over a chip manifest (the study's layout: region and year columns) ------------------------------
def _manifest_rows(manifest: str | Sequence[str]) -> tuple[list[dict], list[str]]:
    """The rows of one manifest, or of several joined (the study ships one per year), with absolute paths."""
    rows, fields = [], []
    for path in [manifest] if isinstance(manifest, str) else manifest:
        base = Path(path).resolve().parent
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            these, names = list(reader), list(reader.fieldnames or [])
        if not these:
            raise RtsFusionError(f"The manifest '{path}' has no rows.")
        path_cols = [c for c in names if c not in MANIFEST_FIXED - {"optical_path", "mask_path"}]
        for row in these:  # absolute paths, so subsets written elsewhere still find their files
            for c in path_cols:
                row[c] = _resolve(row[c], base)
        rows += these
        fields += [n for n in names if n not in fields]
    return rows, fields


def _write_manifest(path: str, rows: list[dict], fields: list[str], split: str | None) -> str:
    fields = [f for f in fields if f != "split"] + (["split"] if split else [])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, **({"split": split} if split else {})})
    return path


def _evaluate_manifest(model: torch.nn.Module, card: ModelCard, manifest: str, device: str) -> dict:
    """Pooled and per-chip scores on every chip of a manifest."""
    chips = load_manifest(manifest)
    if chips.bands != card.bands:
        raise RtsFusionError(f"The held-out chips have bands {chips.bands}, the model {card.bands}.")
    valid = np.isfinite(chips.image).all(axis=1)
    dev = resolve_device(device)
    summary, _ = evaluate(model.to(dev), _Chips(chips.image, chips.label, valid), card.normalization, card.bands,
                          card.threshold, dev, objects=True)  # fmt: skip
    return {**summary, "chips": len(chips.image)}


def _location(row: dict) -> tuple[str, str]:
    """A chip's place: (region, stem) as in the study's manifests; else the optical file's name.

    A numeric stem is compared as a number, as the study's pandas reads it: its split file writes 151 where its
    year manifests write 000000000151.
    """
    stem = str(row.get("stem") or Path(row.get("optical_path", "")).stem).strip()
    return str(row.get("region", "")), str(int(stem)) if stem.isdigit() else stem


def held_out_keys(keys: Sequence[tuple[str, str]], seed: int, fraction: float = 0.2) -> set[tuple[str, str]]:
    """The study's temporal split: per region, a seeded `fraction` of the shared locations (at least one)."""
    rng = np.random.default_rng(seed)
    by_region: dict[str, list[tuple[str, str]]] = {}
    for key in keys:
        by_region.setdefault(key[0], []).append(key)
    held: set[tuple[str, str]] = set()
    for region in sorted(by_region):
        group = list(by_region[region])
        rng.shuffle(group)
        n_train = min(max(1, int(round(len(group) * (1 - fraction)))), len(group) - 1)
        held.update(group[n_train:])
    return held


def manifest_transfer(
    manifest: str | Sequence[str],
    column: str,
    cfg: TrainConfig,
    train_value: str | None = None,
    workdir: str | None = None,
    progress: ProgressFn | None = None,
    is_canceled: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> TransferResult:
    """Transfer over a manifest column (the study's chip layout has "region" and "year" columns).

    manifest may be several files, joined row by row (the study ships manifest_2023 and manifest_2024 apart).

    Without train_value, each value is left out in turn (spatial transfer, e.g. column "region"); with it, the
    model trains on that value's chips and is tested on every other value's (temporal, e.g. column "year"), as
    the study did: only at locations (region and stem, as in its manifests; else the optical file's name) that
    both years hold, 20 % of them per region held out from training and scored in every year.

    Raises:
        RtsFusionError: a missing column, fewer than two values, or an unknown train value.

    """
    progress, is_canceled, log = progress or (lambda _p: None), is_canceled or (lambda: False), log or (lambda _m: None)
    rows, fields = _manifest_rows(manifest)
    if column not in fields:
        raise RtsFusionError(f"The manifest has no column '{column}'; columns: {', '.join(fields)}.")
    values = list(dict.fromkeys(r[column] for r in rows))
    if len(values) < 2:
        raise RtsFusionError(f"The column '{column}' has a single value ({values[0]}); transfer needs two or more.")
    if train_value is not None and train_value not in values:
        raise RtsFusionError(f"'{train_value}' is not a value of '{column}' ({', '.join(values)}).")
    workdir = _workdir(workdir, "rts_transfer_")
    folds = [(v, [t for t in values if t != v]) for v in values] if train_value is None else [(None, [train_value])]
    held: set[tuple[str, str]] | None = None
    if train_value is not None:
        src = {_location(r) for r in rows if r[column] == train_value}
        shared = sorted(src & {_location(r) for r in rows if r[column] != train_value})
        if not shared:
            raise RtsFusionError(
                f"No location (region and stem) of {column} = {train_value} appears under another {column}; temporal "
                "transfer scores the same places in another year."
            )
        held = held_out_keys(shared, cfg.seed)
        log(f"{len(held)} of {len(shared)} shared locations held out from training and scored in every {column}.")
    out_rows: list[dict] = []
    for k, (held_out, train_values) in enumerate(folds):
        if is_canceled():
            return TransferResult(out_rows, True)
        train_rows = [r for r in rows if r[column] in train_values and (held is None or _location(r) not in held)]
        train_manifest = _write_manifest(os.path.join(workdir, f"train_{k}.csv"), train_rows, fields, None)
        package = os.path.join(workdir, f"fold_{k}.safetensors")
        log(f"[{k + 1}/{len(folds)}] train on {column} = {', '.join(train_values)}")
        try:
            result = train_from_manifest(train_manifest, package, cfg, progress=_sub_progress(progress, k, len(folds)),
                                         is_canceled=is_canceled)  # fmt: skip
        except OperationCanceled:
            return TransferResult(out_rows, True)
        model, card = load_package(package)
        tests = [held_out] if held_out is not None else [v for v in values if v != train_value]
        for v in tests:
            test_manifest = _write_manifest(
                os.path.join(workdir, f"test_{k}_{len(out_rows)}.csv"),
                [r for r in rows if r[column] == v and (held is None or _location(r) in held)], fields, "test",
            )  # fmt: skip
            scores = _evaluate_manifest(model, card, test_manifest, cfg.device)
            fold = f"held out: {v}" if held_out is not None else f"{train_value} → {v} (held-out locations)"
            out_rows.append(_fold_row(fold, ", ".join(train_values), v, _in_sample_f1(result.card), scores, log))
    if train_value is None and out_rows:
        out_rows.append(_overall(out_rows))
    return TransferResult(out_rows, False)
