import numpy as np
import pytest
import torch
from rts_fusion.core.features import PAPER
from rts_fusion.models.card import CardMetrics, ModelCard, Normalization, TrainingInfo, format_card
from rts_fusion.models.config import ModelConfig
from rts_fusion.models.losses import combined_loss
from rts_fusion.models.normalize import normalize
from rts_fusion.models.package import ModelPackageError, load_package, read_card, save_package
from rts_fusion.models.registry import ARCHITECTURES, build_model

torch.set_num_threads(2)


def tiny(arch: str, channels: int, optical: int | None = None) -> ModelConfig:
    optical = channels // 2 if optical is None else optical
    return ModelConfig(
        arch,
        channels,
        encoder="tiny",
        decoder_dim=16,
        attn_heads=4,
        attn_downsample=8,
        optical_channels=tuple(range(optical)),
        auxiliary_channels=tuple(range(optical, channels)),
    )


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize(("channels", "optical"), [(3, 2), (13, 10), (5, 1)])
def test_every_architecture_forward_backward(arch, channels, optical):
    torch.manual_seed(0)
    model = build_model(tiny(arch, channels, optical))
    x = torch.randn(2, channels, 64, 64)
    out = model(x)
    assert out.shape == (2, 1, 64, 64)
    out.mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads)


def test_registry_refuses_unknown_names():
    from rts_fusion.models.registry import STUDY_TWELVE

    with pytest.raises(ValueError, match="Unknown architecture 'unet9000'; known: cnn3, unet_resnet34") as err:
        build_model(ModelConfig("unet9000", 3))
    assert all(name in str(err.value) for name in STUDY_TWELVE) and len(STUDY_TWELVE) == 12
    with pytest.raises(ValueError, match="Unknown encoder"):
        build_model(ModelConfig("sa_segformer", 3, encoder="b9"))
    with pytest.raises(ValueError, match="known: tiny, standard"):
        build_model(ModelConfig("unet_resnet34", 3, encoder="b0"))


def test_sa_decoder_sees_input_stage_and_attention():
    # The decoder takes the raw input as a full-resolution stage: its first projection has in_channels inputs.
    model = build_model(tiny("fusion_sa_segformer", 13))
    assert model.decoder.projections[0].in_channels == 13
    assert model.decoder.attention_kind == "self"
    assert build_model(tiny("ca_segformer", 13)).decoder.attention_kind == "cross"


def card_for(cfg: ModelConfig, bands=None) -> ModelCard:
    bands = bands or tuple(f"B{i}" for i in range(cfg.in_channels))
    n = len(bands)
    return ModelCard(
        config=cfg,
        bands=tuple(bands),
        groups=("optical",) * n,
        normalization=Normalization("standardize", (0.0,) * n, (1.0,) * n),
        pixel_size=10.0,
        tile_size=64,
        overlap=16,
        training=TrainingInfo(epochs_run=1, best_epoch=1),
        metrics=CardMetrics(val={"f1": 0.5}),
    )


@pytest.fixture
def package(tmp_path):
    torch.manual_seed(1)
    cfg = tiny("fusion_sa_segformer", 13)
    model = build_model(cfg).eval()
    path = str(tmp_path / "m.safetensors")
    card = card_for(cfg, PAPER)
    save_package(path, model, card)
    return path, model, card


def test_package_roundtrip_gives_identical_outputs(package):
    path, model, card = package
    loaded, loaded_card = load_package(path)
    assert loaded_card == card
    x = torch.randn(1, 13, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert "FusionSA-SegFormer" in format_card(loaded_card) and "NDVI" in format_card(loaded_card)


def test_package_is_not_a_pickle(package):
    with open(package[0], "rb") as fh:
        head = fh.read(16)
    assert not head.startswith(b"\x80") and not head.startswith(b"PK")  # neither pickle nor torch zip


def _rewrite_metadata(path, mutate):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(path, framework="pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(path)
    mutate(meta, tensors)
    save_file(tensors, path, metadata=meta)


def test_tampered_card_is_refused(package):
    path = package[0]
    _rewrite_metadata(path, lambda m, t: m.update(rtsfusion_card=m["rtsfusion_card"].replace('"NDVI"', '"NDWI"')))
    with pytest.raises(ModelPackageError, match="modified"):
        read_card(path)


def test_missing_card_is_refused(package):
    path = package[0]
    _rewrite_metadata(path, lambda m, t: m.pop("rtsfusion_card"))
    with pytest.raises(ModelPackageError, match="no RTS Fusion model card"):
        load_package(path)


def test_altered_weights_are_refused(package):
    path = package[0]

    def bump(meta, tensors):
        key = next(iter(tensors))
        tensors[key] = tensors[key] + 1

    _rewrite_metadata(path, bump)
    with pytest.raises(ModelPackageError, match="altered"):
        load_package(path)


def test_corrupt_or_foreign_files_are_refused(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01not a model at all")
    with pytest.raises(ModelPackageError, match="not a readable model package"):
        load_package(str(bad))
    with pytest.raises(ModelPackageError, match="does not exist"):
        load_package(str(tmp_path / "nope.safetensors"))


def test_inconsistent_card_is_refused():
    cfg = tiny("sa_segformer", 4)
    with pytest.raises(ValueError, match="network takes 4"):
        card_for(cfg, ("A", "B", "C")).validate()


def test_normalization_standardize_and_chip_minmax():
    x = np.array([[[[1.0, 3.0], [np.nan, 5.0]]]], dtype=np.float32)
    out = normalize(x, Normalization("standardize", (3.0,), (2.0,)), ("NDVI",))
    np.testing.assert_allclose(out[0, 0], [[-1.0, 0.0], [0.0, 1.0]])
    assert np.isnan(x[0, 0, 1, 0])  # the input is left as it was
    fresh = x.copy()
    same = normalize(fresh, Normalization("standardize", (3.0,), (2.0,)), ("NDVI",), inplace=True)
    assert same is fresh and np.array_equal(same, out)  # the engine's fresh tiles are normalised where they lie
    out = normalize(x, Normalization("chip_minmax"), ("NDVI",))
    np.testing.assert_allclose(out[0, 0], [[0.0, 0.5], [0.0, 1.0]])
    out = normalize(x, Normalization("chip_minmax"), ("RED",))
    assert out[0, 0, 0, 0] == pytest.approx((0 - 0.485) / 0.229)


def test_loss_prefers_the_right_answer_and_ignores_invalid_pixels():
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:5, 2:5] = 1
    valid = torch.ones_like(target)
    good = combined_loss(target * 20 - 10, target, valid)
    bad = combined_loss(-(target * 20 - 10), target, valid)
    assert good < 0.1 < bad
    masked = valid.clone()
    masked[..., 2:5, 2:5] = 0
    wrong_inside = (target * 20 - 10).clone()
    wrong_inside[..., 2:5, 2:5] = -10  # wrong only where ignored
    assert combined_loss(wrong_inside, target * 0, masked) < 0.1


def test_encoder_weights_are_loaded_and_extra_bands_adapted(tmp_path):
    from rts_fusion.models.weights import load_encoder_weights
    from safetensors.torch import save_file

    torch.manual_seed(3)
    rgb = build_model(tiny("segformer", 3))
    # A transformers-style checkpoint: keys prefixed 'segformer.encoder...'.
    state = {
        "segformer." + k.split("model.segformer.", 1)[1]: v
        for k, v in rgb.state_dict().items()
        if "model.segformer." in k
    }
    path = str(tmp_path / "mit.safetensors")
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    fused = build_model(tiny("fusion_sa_segformer", 13))
    counts = load_encoder_weights(fused, path)
    assert counts["loaded"] > 10 and counts["adapted"] == 1
    src = state["segformer.encoder.patch_embeddings.0.proj.weight"]
    dst = fused.state_dict()["encoder.model.encoder.patch_embeddings.0.proj.weight"]
    torch.testing.assert_close(dst[:, :3], src * 3 / 13)
    torch.testing.assert_close(dst[:, 5], src.mean(dim=1) * 3 / 13)
    torch.testing.assert_close(
        fused.state_dict()["encoder.model.encoder.block.0.0.attention.self.query.weight"],
        state["segformer.encoder.block.0.0.attention.self.query.weight"],
    )
    empty = str(tmp_path / "empty.safetensors")
    save_file({"x": torch.zeros(1)}, empty)
    with pytest.raises(ValueError, match="no MiT encoder weights"):
        load_encoder_weights(fused, empty)


def test_card_states_the_inputs_its_bands_need():
    paper = card_for(tiny("segformer", 13), PAPER)
    assert "Inputs needed: optical bands BLUE, GREEN, RED, NIR, SWIR1, SWIR2; a thermal layer; a DEM;" in format_card(
        paper
    )
    rgb = card_for(tiny("segformer", 3), ("RED", "GREEN", "BLUE"))
    assert rgb.needed_inputs() == ["optical bands BLUE, GREEN, RED"]


def test_card_of_the_earlier_dict_layout_still_loads():
    """Packages written before `training` and `metrics` were typed: their JSON parses into the dataclasses."""
    import json
    from dataclasses import replace

    cfg = tiny("sa_segformer", 2)
    old = json.loads(card_for(cfg, ("A", "B")).to_json())
    old["training"] = {
        "source": "stack s.tif + slumps.gpkg",
        "split": {"method": "blocked", "chips": {"test": 3}},
        "epochs_run": 4,
        "best_epoch": 2,
        "stopped_early": False,
        "canceled": False,
        "seed": 7,
        "device": "cpu",
        "train_seconds": 1.5,
        "parameters": 1234,
        "config": {"epochs": 4},
        "future_key": 1,
    }
    old["metrics"] = {"val": {"f1": 0.5}, "val_per_chip": {}, "test": {"f1": 0.25}, "test_per_chip": {}}
    card = ModelCard.from_json(json.dumps(old))
    assert card.training.best_epoch == 2 and card.training.parameters == 1234 and card.training.warnings == ()
    assert card.training.extra == {"future_key": 1} and card.metrics.test == {"f1": 0.25}
    again = json.loads(card.to_json())
    assert again["training"]["future_key"] == 1 and again["metrics"]["val"] == {"f1": 0.5}
    nan_card = ModelCard.from_json(replace(card, metrics=CardMetrics(test={"f1": float("nan")})).to_json())
    assert nan_card.metrics.test["f1"] != nan_card.metrics.test["f1"]  # NaN survives (stored as null)
    assert "Test metrics" in format_card(card) and "best_epoch=2" in format_card(card)
