"""Training: chips from a fused stack + inventory (or a chip manifest) → a model package with its card."""

from __future__ import annotations

import copy
import csv
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..core.errors import OperationCanceled, RtsFusionError
from ..core.metrics import Confusion, chips_objects, confusion, object_scores, summarize
from ..core.outputs import atomic_output
from .augment import augment
from .card import CardMetrics, ModelCard, Normalization, TrainingInfo
from .config import ModelConfig
from .data import (
    ChipSet,
    Scene,
    auto_blocked_split,
    band_statistics,
    chip_at,
    load_manifest,
    load_scene,
    random_split,
    training_positions,
)
from .device import amp_dtype, resolve_device
from .losses import combined_loss
from .normalize import normalize
from .package import save_package
from .protocol import STUDY_EPOCHS_BASELINE, STUDY_EPOCHS_FUSED
from .registry import build_model, count_parameters
from .weights import load_encoder_weights

ProgressFn = Callable[[float], None]
LogFn = Callable[[str], None]


@dataclass(frozen=True)
class TrainConfig:
    """Training settings: our defaults; study_preset() gives the study's protocol.

    Where the defaults differ from the study (see study_preset and STUDY_DIFFERENCES): 50 epochs with early
    stopping instead of 400/200 fixed; the one-cycle schedule starts at `lr` (not max_lr/25), warms up for 30 %
    and anneals by cosine (not 10 %, linear); the best epoch by pooled validation F1 (not the study's per-chip
    F1); crop aspect 3/4–4/3 and a quarter turn on every chip (not 0.9–1.1, p 0.5); a smoothed Dice that
    also acts on batches without slumps; a blocked spatial split; per-band standardisation with training
    statistics (not per-chip min–max).

    Attributes:
        architecture: registry name (models.registry.ARCHITECTURES).
        encoder: MiT size ("b0"–"b5", "tiny").
        decoder_dim: decoder width (256 in the study).
        tile_size: chip side in pixels (256 in the study).
        epochs: maximum epochs.
        batch_size: chips per batch (8).
        lr: AdamW base learning rate (3e-4); the one-cycle schedule peaks at max_lr (1e-3).
        weight_decay: AdamW weight decay (1e-4).
        chips_per_epoch: training chips drawn per epoch; 0 = as many as tile-size steps fit the train area.
        split: "blocked" (spatial blocks, no leakage) or "random" (the study's chip-level split, leaks).
        block_size: block side of the blocked split in pixels; 0 = automatic (2, 1.5 or 1 tile, the first that
            gives validation and test chips holding slumps).
        val_fraction, test_fraction: shares of blocks (or chips) held out.
        threshold: decision threshold on the slump probability (0.4).
        patience: epochs without a better validation F1 before stopping early; 0 = never stop early.
        seed: random seed (split, sampling, initialisation).
        device: "auto", "cpu" or "cuda".
        normalization: "standardize", "chip_minmax" or "study" (models.card.Normalization).
        augment: random resized crop, flips and rotations.
        encoder_weights: optional local safetensors file with MiT weights to start from.
        warmup_fraction: share of the steps the one-cycle schedule rises to max_lr (study 0.1).
        anneal: "cos" or "linear" (study) annealing of the one-cycle schedule.
        div_factor: the schedule starts at max_lr / div_factor (study: 25, PyTorch's default); 0 = start at lr.
        select_by: best epoch by "f1" (pooled validation F1) or "study_f1" (the study's per-chip F1, ties
            broken by the lower validation loss as in the study's scripts).
        dice: "smoothed" or "study" (models.losses).
        crop_ratio: aspect-ratio range of the random resized crop (study 0.9–1.1).
        rot90_p: probability of a random quarter turn (study 0.5).

    """

    architecture: str = "fusion_sa_segformer"
    encoder: str = "b0"
    decoder_dim: int = 256
    tile_size: int = 256
    epochs: int = 50
    batch_size: int = 8
    lr: float = 3e-4
    max_lr: float = 1e-3
    weight_decay: float = 1e-4
    chips_per_epoch: int = 0
    split: str = "blocked"
    block_size: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    threshold: float = 0.4
    patience: int = 10
    seed: int = 20250917
    device: str = "auto"
    normalization: str = "standardize"
    augment: bool = True
    encoder_weights: str | None = None
    warmup_fraction: float = 0.3
    anneal: str = "cos"
    div_factor: float = 0.0
    select_by: str = "f1"
    dice: str = "smoothed"
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    rot90_p: float = 1.0


def study_preset(architecture: str = "fusion_sa_segformer", fused: bool | None = None, **overrides) -> TrainConfig:
    """The study's training protocol (the authors' train scripts), with any field overridden.

    AdamW lr 3e-4, weight decay 1e-4; OneCycle to max 1e-3 from 1e-3/25, 10 % warm-up, linear annealing;
    400 epochs for the fused model and 200 for baselines, no early stopping; batch 8, 256 px chips; best
    epoch by validation per-chip F1 (their convention; ties to the lower validation loss); crop scale 0.5–1,
    aspect 0.9–1.1, flips, quarter turns with p 0.5; their Dice; threshold 0.4; random chip split; per-chip
    min–max input scaling.

    Args:
        architecture: registry name.
        fused: whether the model takes the fused stack (400 epochs) or is a baseline (200); None = the
            FusionSA-SegFormer architectures are fused.
        overrides: TrainConfig fields to set instead (e.g. epochs for a quick run).

    """
    if fused is None:
        fused = architecture.startswith("fusion_")
    values = {
        "architecture": architecture,
        "encoder": "b0",
        "decoder_dim": 256,
        "tile_size": 256,
        "epochs": STUDY_EPOCHS_FUSED if fused else STUDY_EPOCHS_BASELINE,
        "batch_size": 8,
        "lr": 3e-4,
        "max_lr": 1e-3,
        "weight_decay": 1e-4,
        "split": "random",
        "threshold": 0.4,
        "patience": 0,
        "normalization": "study",
        "augment": True,
        "warmup_fraction": 0.1,
        "anneal": "linear",
        "div_factor": 25.0,
        "select_by": "study_f1",
        "dice": "study",
        "crop_ratio": (0.9, 1.1),
        "rot90_p": 0.5,
    }
    values.update(overrides)
    return TrainConfig(**values)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    """The one-cycle learning-rate schedule of a config (the curve study_lr_curve draws)."""
    return torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=cfg.max_lr,
        total_steps=total_steps,
        pct_start=cfg.warmup_fraction,
        anneal_strategy=cfg.anneal,
        div_factor=cfg.div_factor if cfg.div_factor > 0 else cfg.max_lr / cfg.lr,
    )


def lr_curve(cfg: TrainConfig, steps_per_epoch: int) -> list[float]:
    """The learning rate of every optimiser step of a run (no model needed)."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = steps_per_epoch * cfg.epochs
    sched = make_scheduler(opt, cfg, total)
    rates = []
    for _ in range(total):
        rates.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return rates


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    package: str
    card: ModelCard
    history: list[dict] = field(default_factory=list)
    split_report: dict = field(default_factory=dict)
    history_csv: str = ""
    stopped_early: bool = False
    canceled: bool = False


@dataclass(frozen=True)
class FitResult:
    """What the training loop produced: the kept weights and how they were chosen and scored.

    Attributes:
        model: the network with the kept weights loaded.
        history: one row per epoch (losses, validation scores, learning rate, time).
        best_epoch: the epoch whose weights were kept; None when the validation split could not choose one.
        selected_by: how the weights were chosen.
        stopped_early: early stopping ended the run.
        canceled: the run was cancelled.
        val: validation scores {"pooled", "per_chip", "counts"} (NaN when the split is empty).
        test: test scores, likewise; never the validation scores.
        seconds: training wall time.
        device: the torch device used.
        warnings: what the card must carry (empty validation or test split ...).

    """

    model: torch.nn.Module
    history: list[dict]
    best_epoch: int | None
    selected_by: str
    stopped_early: bool
    canceled: bool
    val: dict
    test: dict
    seconds: float
    device: torch.device
    warnings: tuple[str, ...] = ()


@dataclass
class _Chips:
    """Fixed chips: image (N, C, h, w) with NaN nodata, label (N, h, w), valid (N, h, w)."""

    image: np.ndarray
    label: np.ndarray
    valid: np.ndarray


def _gather(scene: Scene, positions: list[tuple[int, int]], chip: int) -> _Chips:
    parts = [chip_at(scene, r, c, chip) for r, c in positions]
    if not parts:
        shape = (0, scene.image.shape[0], chip, chip)
        return _Chips(np.zeros(shape, np.float32), np.zeros((0, chip, chip), np.uint8), np.zeros((0, chip, chip), bool))
    return _Chips(*(np.stack(p) for p in zip(*parts)))


def _to_tensors(chips: _Chips, norm: Normalization, bands, device) -> tuple[torch.Tensor, ...]:
    x = torch.from_numpy(normalize(chips.image, norm, bands)).to(device)
    y = torch.from_numpy(chips.label[:, None].astype(np.float32)).to(device)
    v = torch.from_numpy(chips.valid[:, None].astype(np.float32)).to(device)
    return x, y, v


def evaluate(
    model: torch.nn.Module,
    chips: _Chips,
    norm: Normalization,
    bands: tuple[str, ...],
    threshold: float,
    device: torch.device,
    batch_size: int = 8,
    dice: str = "smoothed",
    objects: bool = False,
) -> tuple[dict, float]:
    """Pooled and per-chip scores of a model on fixed chips, and the mean loss.

    With `objects`, the summary also holds "objects": the study's object counts per chip (8-connected, any
    overlap, summed over chips; core.metrics.chip_objects), left out of the per-epoch validation for speed.
    """
    model.eval()
    confs: list[Confusion] = []
    counts: list[tuple[int, int, int]] = []
    losses = []
    dtype = amp_dtype(device)
    with torch.no_grad():
        for i in range(0, len(chips.image), batch_size):
            part = _Chips(
                chips.image[i : i + batch_size], chips.label[i : i + batch_size], chips.valid[i : i + batch_size]
            )
            x, y, v = _to_tensors(part, norm, bands, device)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(x)
            losses.append(float(combined_loss(logits, y, v, dice=dice)) * len(x))
            pred = (torch.sigmoid(logits.float()) > threshold).cpu().numpy()[:, 0]
            for p, t, m in zip(pred, part.label, part.valid):
                confs.append(confusion(p, t, m))
            if objects:
                counts.extend(chips_objects(pred, part.label, part.valid, 8))
    n = len(chips.image)
    summary = split_scores(confs)
    if objects:
        summary["objects"] = {**object_scores(counts), "connectivity": 8}
    summary["chips"] = [[c.tp, c.fp, c.fn, c.tn] for c in confs]  # per-chip counts, for bootstrap intervals
    return summary, (sum(losses) / n if n else float("nan"))


def split_scores(confs: list[Confusion]) -> dict:
    """Pooled and per-chip scores of a split's chips; NaN scores when the split holds no slump pixel.

    A split without chips, or without a true slump pixel, cannot say how well slumps are found: scored the
    usual way it would give 1.0 to a model that finds nothing, so it gets NaN instead.
    """
    out = summarize(confs)
    total = out["counts"]
    if total["tp"] + total["fn"] == 0:
        nan = float("nan")
        keys = ("precision", "recall", "f1", "iou", "overall_accuracy", "kappa")
        out["pooled"] = {k: nan for k in keys}
        out["per_chip"] = {k: nan for k in keys}
        out["study"] = {k: nan for k in out.get("study") or keys}
    return out


def improves(score: float, loss: float, best: float, best_loss: float, tie_break_by_loss: bool) -> bool:
    """Whether an epoch's validation F1 `score` (and `loss`) beats the best so far.

    A higher F1 wins; with `tie_break_by_loss` (the study's rule in its train scripts) the same F1 (within
    1e-12) and a lower validation loss wins too, e.g. among early epochs that all score 0.
    """
    if not tie_break_by_loss:
        return score > best
    return score > best + 1e-12 or (abs(score - best) <= 1e-12 and loss < best_loss)


def _fit(
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    bands: tuple[str, ...],
    norm: Normalization,
    sample_train: Callable[[np.random.Generator, int], _Chips],
    n_train_positions: int,
    val: _Chips,
    test: _Chips,
    progress: ProgressFn,
    is_canceled: Callable[[], bool],
    log: LogFn,
) -> FitResult:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    try:
        model = build_model(model_cfg)
    except ValueError as exc:  # unknown architecture or encoder, bands a model cannot take: explained
        raise RtsFusionError(str(exc)) from exc
    if cfg.encoder_weights:
        counts = load_encoder_weights(model, cfg.encoder_weights)
        log(f"Encoder weights from {cfg.encoder_weights}: {counts}")
    model.to(device)
    log(f"{model_cfg.architecture} ({count_parameters(model):,} parameters) on {device}")
    chips_per_epoch = cfg.chips_per_epoch or max(cfg.batch_size * 2, n_train_positions)
    steps = max(1, -(-chips_per_epoch // cfg.batch_size))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = make_scheduler(opt, cfg, steps * cfg.epochs)
    dtype = amp_dtype(device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    history: list[dict] = []
    best_f1, best_loss, best_state, best_epoch, since_best = -1.0, float("inf"), None, 0, 0
    canceled = stopped = False
    warnings = [
        f"The {name} split holds no slump pixel{'' if len(part.image) else ' (it has no chip)'}: its scores are NaN"
        + (
            "; no best epoch could be chosen, so the last epoch's weights were kept and early stopping was off."
            if name == "validation"
            else "; the model has no independent test score."
        )
        for name, part in (("validation", val), ("test", test))
        if not (part.label.astype(bool) & part.valid).any()
    ]
    val_empty = bool(warnings) and warnings[0].startswith("The validation")
    for w in warnings:
        log(f"Warning: {w}")
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for step in range(steps):
            if is_canceled():
                canceled = True
                break
            x, y, v = _to_tensors(sample_train(rng, cfg.batch_size), norm, bands, device)
            if cfg.augment:
                x, y, v = augment(x, y, v, gen, ratio=cfg.crop_ratio, rot90_p=cfg.rot90_p)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = combined_loss(model(x), y, v, dice=cfg.dice)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            total += float(loss.detach()) * len(x)
            seen += len(x)
            progress(100.0 * ((epoch - 1) * steps + step + 1) / (steps * cfg.epochs))
        if canceled and seen == 0:
            break
        scores, val_loss = evaluate(model, val, norm, bands, cfg.threshold, device, cfg.batch_size, cfg.dice)
        pooled = scores["pooled"]
        study_f1 = scores["study"].get("f1", 0.0)
        row = {
            "epoch": epoch,
            "train_loss": total / max(seen, 1),
            "val_loss": val_loss,
            "precision": pooled["precision"],
            "recall": pooled["recall"],
            "f1": pooled["f1"],
            "iou": pooled["iou"],
            "study_f1": study_f1,
            "lr": sched.get_last_lr()[0],
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        log(
            f"epoch {epoch}: loss {row['train_loss']:.4f}, val loss {val_loss:.4f}, "
            f"P {row['precision']:.3f} R {row['recall']:.3f} F1 {row['f1']:.3f} IoU {row['iou']:.3f}"
        )
        selected = study_f1 if cfg.select_by == "study_f1" else pooled["f1"]
        if val_empty:
            best_state = None  # nothing to choose by: the last epoch's weights are kept
        elif improves(selected, val_loss, best_f1, best_loss, cfg.select_by == "study_f1"):
            best_f1, best_loss, best_epoch, since_best = selected, val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
        if canceled:
            break
        if cfg.patience and since_best >= cfg.patience:
            stopped = True
            log(f"Early stop: no better validation F1 for {cfg.patience} epochs.")
            break
    if not history or (best_state is None and not val_empty):
        raise OperationCanceled("Training was cancelled before the first epoch finished; no model was written.")
    if best_state is not None:
        model.load_state_dict(best_state)
    val_scores, _ = evaluate(model, val, norm, bands, cfg.threshold, device, cfg.batch_size)
    test_scores, _ = evaluate(model, test, norm, bands, cfg.threshold, device, cfg.batch_size, objects=True)
    return FitResult(
        model=model,
        history=history,
        best_epoch=None if val_empty else best_epoch,
        selected_by=f"last epoch ({len(history)}): empty validation split"
        if val_empty
        else ("best validation F1" if cfg.select_by == "f1" else "best validation per-chip F1 (the study's)"),
        stopped_early=stopped,
        canceled=canceled,
        val=val_scores,
        test=test_scores,
        seconds=time.perf_counter() - t0,
        device=device,
        warnings=tuple(warnings),
    )


def _write_history(path: str, history: list[dict]) -> None:
    with atomic_output(path, "training history CSV") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def _model_config(cfg: TrainConfig, bands: tuple[str, ...], groups: tuple[str, ...]) -> ModelConfig:
    optical = tuple(i for i, g in enumerate(groups) if g == "optical")
    aux = tuple(i for i, g in enumerate(groups) if g != "optical")
    ds = cfg.architecture == "fusion_sa_segformer_ds"
    return ModelConfig(
        architecture=cfg.architecture,
        in_channels=len(bands),
        encoder=cfg.encoder,
        decoder_dim=cfg.decoder_dim,
        optical_channels=optical if ds else (),
        auxiliary_channels=aux if ds else (),
    )


def _finish(
    output: str,
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    bands,
    groups,
    norm,
    pixel_size: float,
    split_report: dict,
    source: str,
    fitted: FitResult,
    log: LogFn,
) -> TrainResult:
    card = ModelCard(
        config=model_cfg,
        bands=tuple(bands),
        groups=tuple(groups),
        normalization=norm,
        pixel_size=pixel_size,
        tile_size=cfg.tile_size,
        overlap=cfg.tile_size // 4,
        threshold=cfg.threshold,
        training=TrainingInfo(
            source=source,
            split=split_report,
            epochs_run=len(fitted.history),
            best_epoch=fitted.best_epoch,
            selected_by=fitted.selected_by,
            stopped_early=fitted.stopped_early,
            canceled=fitted.canceled,
            seed=cfg.seed,
            device=str(fitted.device),
            train_seconds=round(fitted.seconds, 1),
            parameters=count_parameters(fitted.model),
            config=asdict(cfg),
            warnings=fitted.warnings,
        ),
        metrics=CardMetrics(
            val=fitted.val["pooled"],
            val_per_chip=fitted.val["per_chip"],
            test=fitted.test["pooled"],
            test_per_chip=fitted.test["per_chip"],
            val_study=fitted.val.get("study", {}),
            test_study=fitted.test.get("study", {}),
            test_chips=fitted.test.get("chips", []),
            test_objects=fitted.test.get("objects", {}),
        ),
    )
    save_package(output, fitted.model.cpu(), card)
    history_csv = os.path.splitext(output)[0] + "_history.csv"
    _write_history(history_csv, fitted.history)
    log(f"Model package written to {output} ({fitted.selected_by}, epoch {fitted.best_epoch or len(fitted.history)}).")
    return TrainResult(output, card, fitted.history, split_report, history_csv, fitted.stopped_early, fitted.canceled)


def _check_config(cfg: TrainConfig) -> None:
    if cfg.split not in ("blocked", "random"):
        raise RtsFusionError(f"Unknown split {cfg.split!r}; use 'blocked' or 'random'.")
    if cfg.tile_size < 32 or cfg.tile_size % 32:
        raise RtsFusionError(f"The tile size must be a multiple of 32 (the encoder's stride), not {cfg.tile_size}.")
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise RtsFusionError("Epochs and batch size must be at least 1.")
    if (
        cfg.anneal not in ("cos", "linear")
        or cfg.select_by not in ("f1", "study_f1")
        or cfg.dice
        not in (
            "smoothed",
            "study",
        )
    ):
        raise RtsFusionError(
            f"Unknown schedule annealing {cfg.anneal!r}, best-epoch rule {cfg.select_by!r} or Dice {cfg.dice!r}."
        )


def train_from_stack(
    stack_path: str,
    inventory_path: str,
    output: str,
    cfg: TrainConfig = TrainConfig(),
    bands: tuple[str, ...] | None = None,
    aoi_path: str | None = None,
    progress: ProgressFn | None = None,
    is_canceled: Callable[[], bool] | None = None,
    log: LogFn | None = None,
) -> TrainResult:
    """Train on a fused stack labelled by slump polygons and write the model package.

    Args:
        stack_path: fused stack GeoTIFF.
        inventory_path: slump polygons.
        output: model package path (.safetensors); the epoch history goes beside it as *_history.csv.
        cfg: training settings.
        bands: stack bands to use (default: all).
        aoi_path: optional area of interest polygons.
        progress: called with 0–100.
        is_canceled: polled between batches; on cancel the best checkpoint so far is written.
        log: receives one line per epoch.

    Raises:
        RtsFusionError: unusable inputs or settings, explained.
        OperationCanceled: cancelled before any epoch finished.

    """
    progress, is_canceled, log = progress or (lambda _p: None), is_canceled or (lambda: False), log or (lambda _m: None)
    _check_config(cfg)
    scene = load_scene(stack_path, inventory_path, bands, aoi_path)
    chip = cfg.tile_size
    if min(scene.label.shape) < chip:
        raise RtsFusionError(
            f"The stack ({scene.label.shape[1]} × {scene.label.shape[0]} px) is smaller than a tile ({chip} px)."
        )
    fractions = (cfg.val_fraction, cfg.test_fraction)
    shortfalls: list[str] = []
    if cfg.split == "blocked":
        split, shortfalls = auto_blocked_split(scene, chip, cfg.block_size, fractions, cfg.seed)
    else:
        split = random_split(scene, chip, fractions, cfg.seed)
    log(f"Split: {split.report}")
    positions, weights = training_positions(scene, split, chip)
    if shortfalls or not positions:
        h, w = scene.label.shape
        hint = (
            f"On this {w} × {h} px scene with {chip} px tiles, "
            + ("no block size gave" if split.report.get("block_chosen") == "automatic" else "the split gave")
            + f" {', '.join(shortfalls) or 'no training chip'} (blocks of {split.report.get('block_px', '–')} px). "
            "Use a smaller tile size, "
            + ("a smaller block size, " if split.report.get("block_chosen") == "given" else "")
            + "other validation/test fractions or seed, a larger area, or the random split."
        )
        if not positions:
            raise RtsFusionError(f"The split left no training chip. {hint}")
        log(f"Warning: {hint}")
    mean, std = band_statistics(scene, split.train_region)
    norm = (
        Normalization(cfg.normalization, mean, std)
        if cfg.normalization == "standardize"
        else Normalization(cfg.normalization)
    )

    def sample(rng: np.random.Generator, k: int) -> _Chips:
        picks = rng.choice(len(positions), size=k, p=weights)
        return _gather(scene, [positions[i] for i in picks], chip)

    model_cfg = _model_config(cfg, scene.bands, scene.groups)
    fitted = _fit(
        cfg,
        model_cfg,
        scene.bands,
        norm,
        sample,
        len(positions) // 16 or 1,
        _gather(scene, split.chips["val"], chip),
        _gather(scene, split.chips["test"], chip),
        progress,
        is_canceled,
        log,
    )
    return _finish(
        output,
        cfg,
        model_cfg,
        scene.bands,
        scene.groups,
        norm,
        scene.pixel_size,
        split.report,
        f"stack {os.path.basename(stack_path)} + {os.path.basename(inventory_path)}",
        fitted,
        log,
    )


def train_from_manifest(
    manifest: str,
    output: str,
    cfg: TrainConfig = TrainConfig(),
    progress: ProgressFn | None = None,
    is_canceled: Callable[[], bool] | None = None,
    log: LogFn | None = None,
) -> TrainResult:
    """Train on a chip dataset described by a manifest CSV (the study's layout); see data.load_manifest."""
    progress, is_canceled, log = progress or (lambda _p: None), is_canceled or (lambda: False), log or (lambda _m: None)
    _check_config(cfg)
    chips: ChipSet = load_manifest(manifest, cfg.seed, (cfg.val_fraction, cfg.test_fraction))
    if chips.image.shape[-1] != cfg.tile_size or chips.image.shape[-2] != cfg.tile_size:
        cfg = TrainConfig(**{**asdict(cfg), "tile_size": int(chips.image.shape[-1])})
        log(f"Tile size set to the chips' size, {cfg.tile_size} px.")
    idx = {s: [i for i, x in enumerate(chips.split) if x == s] for s in ("train", "val", "test")}
    if not idx["train"]:
        raise RtsFusionError("The manifest has no training chip (split column 'train').")
    valid = np.isfinite(chips.image).all(axis=1)

    def subset(ids: list[int]) -> _Chips:
        return _Chips(chips.image[ids], chips.label[ids], valid[ids])

    train = subset(idx["train"])
    region_vals = train.image.transpose(1, 0, 2, 3)[:, train.valid]
    mean = tuple(float(v.mean()) for v in region_vals)
    std = tuple(float(max(v.std(), 1e-6)) for v in region_vals)
    norm = (
        Normalization(cfg.normalization, mean, std)
        if cfg.normalization == "standardize"
        # 8-bit optical chips are divided by 255 as the study's loader does; others scaled per chip
        else Normalization(cfg.normalization, rgb_divisor=255.0 if chips.rgb_8bit else 0.0)
    )
    weights = np.where(train.label.reshape(len(train.label), -1).any(axis=1), 2.0, 1.0)
    weights /= weights.sum()

    def sample(rng: np.random.Generator, k: int) -> _Chips:
        picks = rng.choice(len(train.image), size=k, p=weights)
        return _Chips(train.image[picks], train.label[picks], train.valid[picks])

    report = {"method": "manifest", "chips": {k: len(v) for k, v in idx.items()}}
    model_cfg = _model_config(cfg, chips.bands, chips.groups)
    fitted = _fit(
        cfg,
        model_cfg,
        chips.bands,
        norm,
        sample,
        len(train.image),
        subset(idx["val"]),
        subset(idx["test"]),
        progress,
        is_canceled,
        log,
    )
    return _finish(
        output,
        cfg,
        model_cfg,
        chips.bands,
        chips.groups,
        norm,
        chips.pixel_size,
        report,
        f"manifest {os.path.basename(manifest)}",
        fitted,
        log,
    )
