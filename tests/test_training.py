import csv

import numpy as np
import pytest
import rasterio
import torch
from conftest import tiny_train_config
from rts_fusion.core.errors import OperationCanceled, RtsFusionError
from rts_fusion.core.features import PAPER
from rts_fusion.core.metrics import Confusion
from rts_fusion.models.data import auto_blocked_split, blocked_split, load_scene, random_split, split_overlap
from rts_fusion.models.package import load_package
from rts_fusion.models.train import TrainConfig, split_scores, train_from_manifest, train_from_stack

torch.set_num_threads(2)
FAST = tiny_train_config()


@pytest.fixture(scope="module")
def scene(training_stack):
    return load_scene(*training_stack)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blocked_split_never_leaks(scene, seed):
    split = blocked_split(scene, 64, 128, (0.15, 0.15), seed)
    assert split.report["overlap_px_between_splits"] == 0
    assert split_overlap(split.chips, 64, scene.label.shape) == 0
    assert all(split.chips[k] for k in ("train", "val", "test"))
    # Every split got slump pixels (stratified by blocks holding slumps).
    assert all(v > 0 for v in split.report["rts_pixels"].values())
    # Training chips lie inside the training region only.
    for r, c in split.chips["train"]:
        assert split.train_region[r : r + 64, c : c + 64].all()


def test_automatic_block_size_fits_small_scenes_or_says_why(scene):
    # 160 px tiles on the 384 px scene: 320 and 240 px blocks leave a split empty, 160 px blocks work.
    split, short = auto_blocked_split(scene, 160, 0, (0.15, 0.15), 0)
    assert not short and split.report["block_chosen"] == "automatic" and split.report["block_px"] == 160
    assert all(split.chips[k] for k in ("train", "val", "test")) and split.report["overlap_px_between_splits"] == 0
    # 64 px tiles: the study-like 2-tile blocks already work and are kept.
    assert auto_blocked_split(scene, 64, 0, (0.15, 0.15), 0)[0].report["block_px"] == 128
    # 352 px tiles: a single whole block fits, so no block size gives all three splits.
    split, short = auto_blocked_split(scene, 352, 0, (0.15, 0.15), 0)
    assert "no val chip" in short and "no test chip" in short
    given, _ = auto_blocked_split(scene, 64, 96, (0.15, 0.15), 0)
    assert given.report["block_px"] == 96 and given.report["block_chosen"] == "given"


def test_split_without_slumps_scores_nan_never_one():
    assert np.isnan(split_scores([])["pooled"]["f1"])
    nothing_found_on_empty_ground = [Confusion(tn=4096)] * 3
    assert np.isnan(split_scores(nothing_found_on_empty_ground)["pooled"]["f1"])
    assert split_scores([Confusion(tp=5, fn=5, tn=10)])["pooled"]["f1"] == pytest.approx(2 / 3)


def test_random_split_leaks_and_says_so(scene):
    split = random_split(scene, 64, (0.15, 0.15), 0)
    assert split.report["overlap_px_between_splits"] > 0


@pytest.fixture(scope="module")
def trained(tiny_training):
    return tiny_training  # the session's tiny model (10 epochs on the paper bands): trained once for every test


@pytest.mark.learning
def test_short_training_learns(trained, scene):
    val = trained.card.metrics.val
    # All-background scores IoU 0; all-foreground scores IoU = slump share of the pixels (about 1 %).
    all_foreground_iou = scene.label[scene.valid].mean()
    assert val["iou"] > 0.3 > 10 * all_foreground_iou
    assert val["f1"] > 0.45
    assert trained.card.training.best_epoch >= 1 and trained.card.training.selected_by == "best validation F1"
    assert trained.card.metrics.test["f1"] == trained.card.metrics.test["f1"]  # a real test score, not NaN
    rows = list(csv.DictReader(open(trained.history_csv)))
    assert len(rows) == trained.card.training.epochs_run and {"f1", "iou", "train_loss"} <= set(rows[0])


@pytest.mark.learning
def test_trained_package_has_a_complete_card(trained):
    model, card = load_package(trained.package)
    assert card.bands == PAPER and card.pixel_size == 10.0 and card.tile_size == 64
    assert len(card.normalization.mean) == 13 and card.threshold == 0.4
    assert card.training.split["overlap_px_between_splits"] == 0 and card.training.split["block_chosen"] == "automatic"
    assert card.metrics.val and card.metrics.test and card.metrics.test != card.metrics.val
    assert sum(p.numel() for p in model.parameters()) == card.training.parameters


@pytest.mark.learning
def test_training_is_reproducible_with_a_seed(training_stack, tmp_path):
    cfg = TrainConfig(**{**FAST.__dict__, "epochs": 2, "chips_per_epoch": 16})
    a = train_from_stack(*training_stack, str(tmp_path / "a.safetensors"), cfg, bands=("RED", "NDVI", "LST"))
    b = train_from_stack(*training_stack, str(tmp_path / "b.safetensors"), cfg, bands=("RED", "NDVI", "LST"))
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]


def test_cancel_keeps_best_checkpoint_or_writes_nothing(training_stack, tmp_path):
    calls = {"n": 0}

    def cancel_after_epoch_one():
        calls["n"] += 1
        return calls["n"] > 2  # 16 chips / batch 8 = 2 steps per epoch (one check a step)

    cfg = TrainConfig(**{**FAST.__dict__, "epochs": 5, "chips_per_epoch": 16})
    result = train_from_stack(
        *training_stack, str(tmp_path / "c.safetensors"), cfg, bands=("RED", "NDVI"), is_canceled=cancel_after_epoch_one
    )
    assert result.canceled and result.card.training.epochs_run == 1
    load_package(result.package)
    with pytest.raises(OperationCanceled):
        train_from_stack(
            *training_stack, str(tmp_path / "d.safetensors"), cfg, bands=("RED",), is_canceled=lambda: True
        )
    assert not (tmp_path / "d.safetensors").exists()


def test_bad_training_input_is_explained(training_stack, tmp_path):
    with pytest.raises(RtsFusionError, match="multiple of 32"):
        train_from_stack(*training_stack, str(tmp_path / "x.safetensors"), TrainConfig(tile_size=50))
    with pytest.raises(RtsFusionError, match="lacks band"):
        train_from_stack(*training_stack, str(tmp_path / "x.safetensors"), FAST, bands=("SLOPE",))


def test_empty_validation_and_test_splits_score_nan(training_stack, tmp_path):
    """No validation chip: NaN scores and a warning, the last epoch kept; the test score is not the validation one."""
    cfg = TrainConfig(
        **{
            **FAST.__dict__,
            "epochs": 2,
            "chips_per_epoch": 16,
            "split": "random",
            "val_fraction": 0.0,
            "test_fraction": 0.0,
        }
    )
    lines = []
    result = train_from_stack(*training_stack, str(tmp_path / "e.safetensors"), cfg, bands=("RED",), log=lines.append)
    training, metrics = result.card.training, result.card.metrics
    assert training.best_epoch is None and training.selected_by.startswith("last epoch (2)")
    assert np.isnan(metrics.val["f1"]) and np.isnan(metrics.test["f1"])
    assert len(training.warnings) == 2 and any("Warning: The validation split" in line for line in lines)
    _, card = load_package(result.package)
    assert np.isnan(card.metrics.val["f1"]) and card.training.warnings == training.warnings


def test_a_split_that_cannot_work_says_what_to_change(training_stack, tmp_path):
    # One 384 px block holds the whole scene: everything trains, nothing validates; the log says what to change.
    cfg = TrainConfig(**{**FAST.__dict__, "epochs": 1, "chips_per_epoch": 8, "block_size": 384})
    lines = []
    result = train_from_stack(*training_stack, str(tmp_path / "x.safetensors"), cfg, bands=("RED",), log=lines.append)
    hint = next(line for line in lines if "no val chip" in line)
    assert "no test chip" in hint and "a smaller block size" in hint and "384 px" in hint
    assert result.card.training.best_epoch is None


def _write_chip(path, data, nodata=None):
    data = np.asarray(data)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[-1],
        height=data.shape[-2],
        count=1 if data.ndim == 2 else data.shape[0],
        dtype=data.dtype.name,
        nodata=nodata,
    ) as dst:
        dst.write(data if data.ndim == 3 else data[None])


def test_training_from_a_chip_manifest(scene, tmp_path, stub_fit):
    # Export the scene as the study's chip layout: optical RGB, mask and one file per factor.
    chip = 64
    factors = ["DEM", "LST", "NDVI"]
    rows = []
    rng = np.random.default_rng(0)
    corners = [(r, c) for r in range(0, 384 - chip + 1, chip) for c in range(0, 384 - chip + 1, chip)]
    for k, (r, c) in enumerate(corners):
        row = {"year": 2023, "region": "sample", "stem": k}
        img = scene.image[:, r : r + chip, c : c + chip]
        (tmp_path / "optical").mkdir(exist_ok=True)
        _write_chip(tmp_path / "optical" / f"{k}.tif", img[[0, 1, 2]].astype(np.float32))
        row["optical_path"] = f"optical/{k}.tif"
        _write_chip(tmp_path / f"mask_{k}.tif", scene.label[r : r + chip, c : c + chip].astype(np.uint8))
        row["mask_path"] = f"mask_{k}.tif"
        for f in factors:
            _write_chip(tmp_path / f"{f}_{k}.tif", img[PAPER.index(f)].astype(np.float32))
            row[f] = f"{f}_{k}.tif"
        row["split"] = "val" if rng.random() < 0.2 else "train"
        rows.append(row)
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cfg = TrainConfig(**{**FAST.__dict__, "epochs": 2, "tile_size": 256})
    result = train_from_manifest(str(manifest), str(tmp_path / "m.safetensors"), cfg)  # plumbing: a stub fit
    assert len(stub_fit) == 1
    assert result.card.bands == ("RED", "GREEN", "BLUE", "DEM", "LST", "NDVI")
    assert result.card.tile_size == chip  # taken from the chips
    assert result.split_report["chips"]["val"] == sum(r["split"] == "val" for r in rows)
    load_package(result.package)


def test_train_algorithm_passes_the_block_size_and_reports_nan_as_missing(provider, training_stack, tmp_path, stub_fit):
    import processing
    from rts_fusion.models.package import read_card

    stack, slumps = training_stack
    common = {"STACK": stack, "INVENTORY": slumps, "TILE_SIZE": 64, "EPOCHS": 1, "ENCODER": 6, "DEVICE": 1}
    res = processing.run("rtsfusion:train", {**common, "BLOCK_SIZE": 96, "OUTPUT": str(tmp_path / "a.safetensors")})
    split = read_card(res["OUTPUT"]).training.split
    assert split["block_px"] == 96 and split["block_chosen"] == "given" and stub_fit[0].block_size == 96
    res = processing.run("rtsfusion:train", {**common, "OUTPUT": str(tmp_path / "b.safetensors")})  # automatic
    assert read_card(res["OUTPUT"]).training.split["block_chosen"] == "automatic"
    assert res["TEST_F1"] is None or res["TEST_F1"] == res["TEST_F1"]  # never NaN: a missing score is None
