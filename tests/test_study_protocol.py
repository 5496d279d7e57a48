"""The study's protocol: its training preset, its metric conventions, its loss and augmentation."""

import numpy as np
import pytest
import torch
from rts_fusion.core.metrics import Confusion, chip_objects, object_scores, study_scores, summarize
from rts_fusion.models.augment import augment
from rts_fusion.models.losses import combined_loss
from rts_fusion.models.protocol import STUDY_DIFFERENCES
from rts_fusion.models.train import TrainConfig, lr_curve, study_preset, train_from_stack

torch.set_num_threads(2)


def test_study_scores_follow_the_authors_convention():
    chips = [Confusion(tp=8, fp=2, fn=0, tn=90), Confusion(tp=0, fp=0, fn=0, tn=100)]  # second chip: empty
    s = study_scores(chips)
    eps = 1e-6
    f1_slump = np.mean([16 / (16 + 2 + eps), 0.0])  # the empty chip scores 0 for slumps (their eps convention)
    f1_background = np.mean([180 / (180 + 2 + eps), 200 / (200 + eps)])
    assert s["f1"] == pytest.approx(f1_slump) and s["f1_background"] == pytest.approx(f1_background)
    assert s["macro_f1"] == pytest.approx(0.5 * (f1_slump + f1_background))
    assert s["overall_accuracy"] == pytest.approx(np.mean([0.98, 1.0]))
    summary = summarize(chips)
    assert summary["per_chip"]["f1"] == pytest.approx(np.mean([16 / 18, 1.0]))  # ours counts the empty chip 1
    assert summary["study"] == s and study_scores([]) == {}


def test_object_counting_per_chip_and_connectivity():
    truth = np.zeros((8, 8), bool)
    truth[1, 1] = truth[2, 2] = True  # diagonal neighbours: one object with 8-connectivity, two with 4
    truth[6, 6] = True
    pred = np.zeros((8, 8), bool)
    pred[2, 2] = True
    pred[4, 0] = True  # touches nothing
    assert chip_objects(pred, truth, 8) == (1, 1, 1)
    assert chip_objects(pred, truth, 4) == (1, 1, 2)
    agg = object_scores([chip_objects(pred, truth, 8), (2, 0, 0)])
    assert (agg["tp"], agg["fp"], agg["fn"]) == (3, 1, 1) and agg["f1"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="4 or 8"):
        chip_objects(pred, truth, 6)


def test_evaluation_counts_objects_per_chip_as_the_study():
    """models.train.evaluate's object counts: 8-connected objects per chip, a touching prediction a hit."""
    import torch
    from rts_fusion.models.card import Normalization
    from rts_fusion.models.train import _Chips, evaluate

    label = np.zeros((2, 32, 32), np.uint8)
    label[0, 2:6, 2:6] = label[0, 6:10, 6:10] = 1  # corner to corner: one object with 8-connectivity
    label[1, 20:25, 20:25] = 1
    pred = label.astype(bool).copy()
    pred[1, 2:4, 2:4] = True  # a false alarm in chip 1
    pred[0, 6:10, 6:10] = False  # the object of chip 0 still touched by its first half

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return torch.from_numpy(np.where(pred, 5.0, -5.0).astype(np.float32))[:, None]

    chips = _Chips(np.random.default_rng(0).random((2, 1, 32, 32), np.float32), label, np.ones_like(label, bool))
    summary, _ = evaluate(Fixed(), chips, Normalization("chip_minmax"), ("DEM",), 0.4, torch.device("cpu"), 2,
                          objects=True)  # fmt: skip
    assert {k: summary["objects"][k] for k in ("tp", "fp", "fn", "connectivity")} == {
        "tp": 2, "fp": 1, "fn": 0, "connectivity": 8
    }  # fmt: skip
    assert "objects" not in evaluate(Fixed(), chips, Normalization("chip_minmax"), ("DEM",), 0.4, torch.device("cpu"),
                                     2)[0]  # fmt: skip


def test_best_epoch_ties_go_to_the_lower_validation_loss_in_the_study_preset():
    from rts_fusion.models.train import improves

    assert improves(0.5, 0.3, 0.5, 0.4, tie_break_by_loss=True)  # same F1, lower loss: the study keeps it
    assert not improves(0.5, 0.5, 0.5, 0.4, tie_break_by_loss=True)
    assert not improves(0.5, 0.3, 0.5, 0.4, tie_break_by_loss=False)  # ours: the first best epoch stays
    assert improves(0.6, 9.0, 0.5, 0.4, tie_break_by_loss=True) and improves(0.6, 9.0, 0.5, 0.4, False)


def test_study_dice_is_zero_without_slump_pixels():
    logits = torch.full((2, 1, 8, 8), 2.0)
    empty = torch.zeros_like(logits)
    valid = torch.ones_like(logits)
    focal_bce = combined_loss(logits, empty, valid, dice="study")
    smoothed = combined_loss(logits, empty, valid)
    # With no slump pixel the study's Dice adds nothing; ours still penalises the positive predictions.
    assert smoothed - focal_bce == pytest.approx(1 - 1 / (float(torch.sigmoid(logits).sum()) + 1), rel=1e-5)
    target = torch.zeros_like(logits)
    target[:, :, :4] = 1
    p = torch.sigmoid(logits)
    inter, total = float((p * target).sum()), float(p.sum() + target.sum())
    study_minus_ours = (1 - 2 * inter / total) - (1 - (2 * inter + 1) / (total + 1))
    diff = combined_loss(logits, target, valid, dice="study") - combined_loss(logits, target, valid)
    assert float(diff) == pytest.approx(study_minus_ours, rel=1e-4, abs=1e-7)
    with pytest.raises(ValueError, match="Dice"):
        combined_loss(logits, target, valid, dice="x")


def test_augmentation_ranges_are_parameters():
    gen = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16)
    y = (x > 100).float()
    flips = [x[0], x[0].flip(-1), x[0].flip(-2), x[0].flip(-1).flip(-2)]
    for _ in range(10):  # full-size crop, no quarter turns: only flips remain
        out, _, _ = augment(x, y, torch.ones_like(y), gen, scale=(1.0, 1.0), ratio=(1.0, 1.0), rot90_p=0.0)
        assert any(torch.equal(out[0], f) for f in flips)
    turned = 0
    for _ in range(40):
        out, _, _ = augment(x, y, torch.ones_like(y), gen, scale=(1.0, 1.0), ratio=(1.0, 1.0), rot90_p=1.0)
        turned += not any(torch.equal(out[0], f) for f in flips)
    assert turned > 10


def test_study_preset_and_its_learning_rate_curve():
    fused, baseline = study_preset(), study_preset("sa_segformer")
    assert (fused.epochs, baseline.epochs) == (400, 200)
    assert (fused.lr, fused.max_lr, fused.weight_decay, fused.div_factor) == (3e-4, 1e-3, 1e-4, 25.0)
    assert (fused.warmup_fraction, fused.anneal, fused.select_by, fused.dice) == (0.1, "linear", "study_f1", "study")
    assert (fused.crop_ratio, fused.rot90_p, fused.patience, fused.split) == ((0.9, 1.1), 0.5, 0, "random")
    assert study_preset(epochs=3).epochs == 3
    rates = np.array(lr_curve(study_preset(epochs=10), steps_per_epoch=10))
    assert rates[0] == pytest.approx(1e-3 / 25) and rates.max() == pytest.approx(1e-3)
    assert int(rates.argmax()) == 9  # peak after 10 % of the 100 steps
    assert np.allclose(np.diff(rates[:10]), np.diff(rates[:10])[0])  # linear warm-up
    assert np.allclose(np.diff(rates[10:]), np.diff(rates[10:])[0])  # linear annealing
    ours = np.array(lr_curve(TrainConfig(epochs=10), steps_per_epoch=10))
    assert ours[0] == pytest.approx(3e-4) and int(ours.argmax()) == 29
    assert {d[0] for d in STUDY_DIFFERENCES} >= {"epochs", "best epoch", "Dice loss", "input scaling"}


@pytest.mark.learning
def test_training_with_the_study_preset(training_stack, tmp_path):
    cfg = study_preset(
        encoder="tiny", decoder_dim=32, tile_size=64, epochs=2, batch_size=4, chips_per_epoch=8, device="cpu"
    )
    result = train_from_stack(
        *training_stack, str(tmp_path / "s.safetensors"), cfg, bands=("RED", "GREEN", "BLUE", "LST")
    )
    card = result.card
    assert card.normalization.method == "study" and card.training.config["select_by"] == "study_f1"
    assert {"f1", "macro_f1", "overall_accuracy"} <= set(card.metrics.val_study)
    best = max(result.history, key=lambda r: r["study_f1"])
    assert card.training.best_epoch == best["epoch"] and len(result.history) == 2


def test_comparison_models_are_built_as_the_study_built_them():
    from rts_fusion.models.config import ModelConfig
    from rts_fusion.models.registry import ARCHITECTURES, STUDY_TWELVE, build_model, differs_from_study

    x = torch.randn(1, 3, 64, 64)

    def strides(arch):
        model = build_model(ModelConfig(arch, 3, encoder="tiny")).eval()
        with torch.no_grad():
            return [64 // f.shape[-1] for f in model.encoder(x)]

    assert strides("fcn_resnet50") == [4, 8, 8, 8]  # dilated to output stride 8 (torchvision's FCN)
    assert strides("deeplabv3plus_resnet34") == [4, 8, 16, 16]  # output stride 16 (smp's default)
    assert strides("unet_swin") == [4, 8, 16, 32]  # all four Swin stages
    # The study's "SegFormer" is its decoder without attention; the all-MLP SegFormer keeps its own name.
    assert "segformer_study" in STUDY_TWELVE and "segformer" not in STUDY_TWELVE
    plain = build_model(ModelConfig("segformer_study", 3, encoder="tiny", decoder_dim=16))
    assert plain.decoder.attention_kind == "none" and not hasattr(plain.decoder, "attention")
    assert ARCHITECTURES["segformer"][0].startswith("SegFormer-MLP")
    assert "not the study's" in differs_from_study("segformer") and differs_from_study("sa_segformer") == "as the study"
    # The study's code loads ImageNet weights for its MiT / attention-ConvNeXt models on 3-band input only.
    assert "ImageNet" in differs_from_study("sa_segformer", 3) and "ImageNet" in differs_from_study("sa_convnext", 3)
    assert differs_from_study("fusion_sa_segformer", 13) == "as the study"
    assert "ImageNet" not in differs_from_study("unet_resnet34", 3)  # smp with encoder_weights=None in the study


STUDY_FACTORS = ("DEM", "EVI", "FTI", "LST", "NBR", "NDMI", "NDVI", "TCB", "TCG", "TCW")
REGIONS = ("中1区域数据集", "北2区域数据集", "北3区域数据集")


def write_zenodo_layout(root, year="2023", chip=64, per_region=4):
    """A tiny dataset exactly as the authors' Zenodo archive lays it out.

    2023: chips under factors/光学遥感/<region>/{images,labels}/000000000151.tif and their split manifest
    (manifest_2023_split_837_179_179.csv, stem column 151, masks 0/255). 2024: optical/img/<区域>_<stem>.tif,
    masks under factors/DEM/<region>/labels, stems written in full (000000000151), no split column, masks 0/1,
    slumps a little larger.
    """
    import csv

    import rasterio

    later = year == "2024"
    rng = np.random.default_rng(4 if later else 3)
    rows, splits = [], ["train", "train", "val", "test"]
    for region in REGIONS:
        for k in range(per_region):
            number = f"{151 + 7 * k:012d}"  # their files: 000000000151.tif
            stem = number if later else str(151 + 7 * k)
            mask = np.zeros((chip, chip), np.uint8)
            if k % 2 == 0:
                if later:
                    mask[8:32, 18:42] = 1
                else:
                    mask[10:30, 20:40] = 255
            rgb = rng.integers(0, 256, (3, chip, chip), dtype=np.uint8)
            rgb[:, mask > 0] //= 3  # slumps darker: something to learn
            if later:
                files = {
                    "optical_path": (f"data/2024/optical/img/{region.removesuffix('数据集')}_{number}.tif", rgb),
                    "mask_path": (f"data/2024/factors/DEM/{region}/labels/{number}.tif", mask[None]),
                }
            else:
                files = {
                    "optical_path": (f"data/{year}/factors/光学遥感/{region}/images/{number}.tif", rgb),
                    "mask_path": (f"data/{year}/factors/光学遥感/{region}/labels/{number}.tif", mask[None]),
                }
            for f in STUDY_FACTORS:
                arr = rng.normal(100, 10, (1, chip, chip)).astype(np.float32) + (mask > 0) * 20.0
                files[f] = (f"data/{year}/factors/{f}/{region}/images/{number}.tif", arr)
            row = {"year": year, "region": region, "stem": stem}
            for col, (rel, arr) in files.items():
                path = root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                with rasterio.open(path, "w", driver="GTiff", width=chip, height=chip, count=arr.shape[0],
                                   dtype=arr.dtype.name) as dst:  # fmt: skip
                    dst.write(arr)
                row[col] = rel
            if not later:
                row["split"] = splits[k % len(splits)]
            rows.append(row)
    name = "manifest_2024.csv" if later else "manifest_2023_split_837_179_179.csv"
    manifest = root / "data" / "manifests" / name
    manifest.parent.mkdir(parents=True, exist_ok=True)
    columns = ["year", "region", "stem", "optical_path", "mask_path", *STUDY_FACTORS, *([] if later else ["split"])]
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def test_the_authors_two_year_manifests_transfer_as_they_are(provider, tmp_path, stub_fit):
    """Their 2023 split file and 2024 manifest, joined: the same places match although the stems are written
    differently (151 vs 000000000151), and 2024 is scored only at the held-out places."""
    from rts_fusion.core.features import PAPER
    from rts_fusion.models.data import load_manifest
    from rts_fusion.models.study import manifest_transfer

    m2023, m2024 = write_zenodo_layout(tmp_path), write_zenodo_layout(tmp_path, "2024")
    chips = load_manifest(str(m2024))  # the 2024 layout alone: no split column, so a seeded random split
    assert chips.bands == PAPER and chips.image.shape == (12, 13, 64, 64) and sorted(set(chips.split)) == [
        "test", "train", "val"
    ]  # fmt: skip
    assert chips.label.sum() == 6 * 24 * 24  # masks read from factors/DEM/<region>/labels
    cfg = study_preset(encoder="tiny", decoder_dim=16, epochs=1, batch_size=4, chips_per_epoch=8, device="cpu")
    log = []
    res = manifest_transfer([str(m2023), str(m2024)], "year", cfg, train_value="2023", workdir=str(tmp_path / "w"),
                            log=log.append)  # fmt: skip
    assert any("3 of 12 shared locations held out" in m for m in log)  # one per region, every place matched
    assert [r["fold"] for r in res.rows] == ["2023 → 2024 (held-out locations)"] and res.rows[0]["chips"] == 3
    assert len(stub_fit) == 1 and 0 <= res.rows[0]["overall_accuracy"] <= 1
    # The same from the toolbox: the second year's manifest in its own field.
    import processing
    from qgis.core import QgsProcessingException

    quick = {"TRAIN_VALUE": "2023", "EPOCHS": 1, "CHIPS_PER_EPOCH": 8, "DEVICE": 1, "OUTPUT": "memory:"}
    out = processing.run("rtsfusion:temporaltransfer", {"MANIFEST": str(m2023), "OTHER_MANIFEST": str(m2024), **quick})
    assert [f["fold"] for f in out["OUTPUT"].getFeatures()] == ["2023 → 2024 (held-out locations)"]
    with pytest.raises(QgsProcessingException, match="joined to a chip manifest"):
        processing.run("rtsfusion:temporaltransfer", {"OTHER_MANIFEST": str(m2024), **quick})


def test_the_authors_zenodo_layout_trains_and_evaluates_as_it_is(tmp_path, monkeypatch):
    from rts_fusion.core.errors import RtsFusionError
    from rts_fusion.core.features import PAPER
    from rts_fusion.models import train as train_module
    from rts_fusion.models.data import load_manifest
    from rts_fusion.models.train import train_from_manifest

    ranges = []  # the augmentation ranges the training loop passes on

    def recording(*args, **kwargs):
        ranges.append((kwargs.get("ratio"), kwargs.get("rot90_p")))
        return augment(*args, **kwargs)

    monkeypatch.setattr(train_module, "augment", recording)

    manifest = write_zenodo_layout(tmp_path)
    chips = load_manifest(str(manifest))
    assert chips.bands == PAPER and chips.rgb_8bit and chips.image.shape == (12, 13, 64, 64)
    assert [chips.split.count(s) for s in ("train", "val", "test")] == [6, 3, 3]  # their split file, as it is
    cfg = study_preset(encoder="tiny", decoder_dim=16, epochs=1, batch_size=4, chips_per_epoch=8, device="cpu")
    result = train_from_manifest(str(manifest), str(tmp_path / "zenodo.safetensors"), cfg)
    card = result.card
    assert card.bands == PAPER and card.tile_size == 64 and card.training.split["chips"] == {
        "train": 6, "val": 3, "test": 3
    }  # fmt: skip
    assert card.normalization.method == "study" and card.normalization.rgb_divisor == 255.0  # 8-bit RGB: / 255
    assert {"f1", "macro_f1", "overall_accuracy"} <= set(card.metrics.test_study)
    assert len(card.metrics.test_chips) == 3  # per-chip counts kept for bootstrap intervals
    assert card.metrics.test_objects["connectivity"] == 8  # the study's object counts kept beside the pixel scores
    assert ranges and set(ranges) == {((0.9, 1.1), 0.5)}  # the preset's crop aspect and quarter-turn chance

    # Their split spellings are accepted; an unknown one or a missing file is named, never guessed.
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace(",val\n", ",validation\n"), encoding="utf-8")
    assert load_manifest(str(manifest)).split.count("val") == 3
    manifest.write_text(text.replace(",test\n", ",holdout\n"), encoding="utf-8")
    with pytest.raises(RtsFusionError, match="'holdout'"):
        load_manifest(str(manifest))
    first_dem = text.split("\n")[1].split(",")[5]
    manifest.write_text(text.replace(first_dem, "", 1), encoding="utf-8")
    with pytest.raises(RtsFusionError, match="中1区域数据集 151.*DEM"):
        load_manifest(str(manifest))


def test_bootstrap_interval_over_chips_and_seeds():
    from rts_fusion.core.metrics import bootstrap_f1

    good = [Confusion(tp=9, fp=1, fn=1, tn=89)] * 40
    lo, hi = bootstrap_f1([good, good], n=200)
    assert lo == pytest.approx(0.9) and hi == pytest.approx(0.9)  # identical chips: no spread
    mixed = [Confusion(tp=9, fp=1, fn=1, tn=89), Confusion(tp=1, fp=9, fn=9, tn=81)] * 3
    lo, hi = bootstrap_f1([mixed, good[:6]], n=500)
    assert lo < 0.6 < 0.85 < hi <= 0.9  # few, disagreeing chips and seeds: a wide interval
    assert np.isnan(bootstrap_f1([[]])[0])


def test_bootstrap_ranks_tell_a_clear_winner_from_a_coin_toss():
    from rts_fusion.core.metrics import bootstrap_ranks

    chips = [Confusion(8, 2, 2, 88)] * 20
    worse = [Confusion(5, 5, 5, 85)] * 20
    twin = [Confusion(8, 2, 2, 88)] * 10 + [Confusion(2, 8, 8, 82)] + [Confusion(8, 2, 2, 88)] * 9
    ranks = bootstrap_ranks({"a": [chips, chips], "b": [worse, worse], "c": [twin, chips]}, n=300)
    assert ranks["b"]["rank_low"] == ranks["b"]["rank_high"] == 3 and ranks["b"]["p_best"] == 0
    assert ranks["a"]["p_best"] == 1  # a ties c at best (first listed wins a tie) and beats it otherwise
    assert ranks["c"]["rank_high"] == 2
    with pytest.raises(ValueError, match="same seeds and chips"):
        bootstrap_ranks({"a": [chips], "b": [chips[:5]]})


def test_model_study_algorithm_runs_the_study_protocol(provider, training_stack, tmp_path):
    import processing

    html = str(tmp_path / "study.html")
    processing.run(
        "rtsfusion:modelstudy",
        {"STACK": training_stack[0], "INVENTORY": training_stack[1], "ARCHITECTURES": [0], "BAND_SETS": [0],
         "EPOCHS": 1, "CHIPS_PER_EPOCH": 8, "DEVICE": 1, "PROTOCOL": 1, "OUTPUT": "memory:", "HTML": html},
    )  # fmt: skip
    text = open(html, encoding="utf-8").read()
    for setting in ("study_f1", "linear", "25.0", "study"):  # best-epoch rule, annealing, div factor, scaling
        assert setting in text
    assert "blocked" in text  # the experiment's split stays blocked
