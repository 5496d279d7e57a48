"""Importing the authors' checkpoints: names, shapes, logits, the study's card and input scaling."""

import numpy as np
import pytest
import torch
from rts_fusion.core.features import PAPER
from rts_fusion.models.card import Normalization
from rts_fusion.models.checkpoint import CheckpointError, import_study_checkpoint, inspect_checkpoint, read_state_dict
from rts_fusion.models.normalize import IMAGENET_MEAN, IMAGENET_STD, normalize
from rts_fusion.models.package import load_package
from study_reference import ReferenceStudyNet, randomise

torch.set_num_threads(2)


@pytest.mark.parametrize(
    ("attention", "channels", "architecture"),
    [("self", 13, "fusion_sa_segformer"), ("self", 3, "sa_segformer"), ("cross", 3, "ca_segformer"),
     ("none", 3, "segformer_study")],
)  # fmt: skip
def test_imported_checkpoint_gives_the_authors_logits(tmp_path, attention, channels, architecture):
    reference = randomise(ReferenceStudyNet(channels, attention), seed=channels)
    state = reference.state_dict()
    # Their names and shapes: smp MiT with stage 4 stored, the fused key/value, their decoder parts.
    assert state["encoder.patch_embed1.proj.weight"].shape == (32, channels, 7, 7)
    assert state["encoder.block1.0.attn.kv.weight"].shape == (64, 32)
    assert "encoder.block4.1.mlp.fc2.weight" in state and "classifier.3.weight" in state
    ckpt = tmp_path / "best.pth"
    torch.save(state, ckpt)

    out = tmp_path / "imported.safetensors"
    card = import_study_checkpoint(str(ckpt), str(out))
    model, loaded = load_package(str(out))
    assert loaded == card and card.config.architecture == architecture and card.config.encoder == "b0"
    assert card.bands == (PAPER if channels == 13 else ("RED", "GREEN", "BLUE"))
    assert (card.tile_size, card.threshold, card.normalization.method) == (256, 0.4, "study")
    assert card.training.extra["unused_tensors_dropped"] == sum(k.startswith(("encoder.block4", "encoder.patch_embed4",
                                                                        "encoder.norm4")) for k in state)  # fmt: skip

    x = torch.randn(2, channels, 32, 32, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    diff = float((ours - theirs).abs().max())
    print(f"{architecture}: max |logit difference| = {diff:.2e} (logit range {float(theirs.abs().max()):.2f})")
    assert diff < 1e-4 * max(1.0, float(theirs.abs().max()))
    # In float64 the two networks agree to rounding: the mapping, not float32 noise, is what is tested.
    with torch.no_grad():
        diff64 = float((model.double()(x.double()) - reference.double()(x.double())).abs().max())
    print(f"{architecture}: float64 max |logit difference| = {diff64:.2e}")
    assert diff64 < 1e-9


class NotATensor:
    """Any Python object a weights-only load must refuse to unpickle."""


def test_import_reads_tensors_only_and_names_what_is_wrong(tmp_path):
    evil = tmp_path / "pickled.pth"
    torch.save({"encoder.patch_embed1.proj.weight": torch.zeros(1), "x": NotATensor()}, evil)
    with pytest.raises(CheckpointError, match="beyond tensors"):
        read_state_dict(str(evil))
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(str(tmp_path / "missing.pth"))

    convnext = tmp_path / "sa_convnext.pth"
    torch.save({"encoder.model.stem_0.weight": torch.zeros(3), "proj_heads.0.weight": torch.zeros(2)}, convnext)
    with pytest.raises(CheckpointError, match="not a checkpoint of the authors' SegFormer family"):
        inspect_checkpoint(read_state_dict(str(convnext)))

    # Wrapped and DataParallel-prefixed state dicts are unwrapped; a band list of the wrong length is named.
    state = randomise(ReferenceStudyNet(4, "self"), 1).state_dict()
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, wrapped)
    assert inspect_checkpoint(read_state_dict(str(wrapped))).in_channels == 4
    with pytest.raises(CheckpointError, match="4 input bands, neither the study's 3"):
        import_study_checkpoint(str(wrapped), str(tmp_path / "o.safetensors"))
    with pytest.raises(CheckpointError, match="takes 4 input bands but 3 band names"):
        import_study_checkpoint(str(wrapped), str(tmp_path / "o.safetensors"), bands=("RED", "GREEN", "BLUE"))
    with pytest.raises(CheckpointError, match="Unknown band name"):
        import_study_checkpoint(str(wrapped), str(tmp_path / "o.safetensors"), bands=("RED", "GREEN", "BLUE", "X"))
    assert not (tmp_path / "o.safetensors").exists()
    card = import_study_checkpoint(str(wrapped), str(tmp_path / "o.safetensors"), bands=("RED", "GREEN", "BLUE", "DEM"))
    assert card.config.architecture == "sa_segformer" and card.groups[-1] == "auxiliary"


def test_study_scaling_is_the_authors_data_py():
    rng = np.random.default_rng(0)
    bands = ("RED", "GREEN", "BLUE", "DEM", "LST")
    x = rng.uniform(0, 255, (2, 5, 16, 16)).astype(np.float32)
    x[:, 3] = rng.uniform(3000, 3500, (2, 16, 16))
    x[1, 4] = 270.0  # a flat factor chip scales to 0, as their loader does
    out = normalize(x, Normalization("study", rgb_divisor=255.0), bands)
    for i, b in enumerate(bands[:3]):
        np.testing.assert_allclose(out[:, i], (x[:, i] / 255 - IMAGENET_MEAN[b]) / (IMAGENET_STD[b] + 1e-7), 1e-5)
    dem = x[:, 3]
    lo, hi = dem.min(axis=(1, 2), keepdims=True), dem.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(out[:, 3], (dem - lo) / (hi - lo) / (1 + 1e-7), atol=1e-6)
    assert out[1, 4].max() == 0 and 0 <= out[0, 4].min() and out[0, 4].max() == pytest.approx(1.0, abs=1e-6)

    # rgb_divisor 0: the three RGB bands min–max scaled together per chip (their non-8-bit fallback).
    joint = normalize(x, Normalization("study", rgb_divisor=0.0), bands)
    rgb = x[0, :3]
    scaled = (rgb - rgb.min()) / (rgb.max() - rgb.min())
    np.testing.assert_allclose(joint[0, 0], (scaled[0] - 0.485) / (0.229 + 1e-7), atol=1e-5)

    # Nodata (NaN) stays out of the chip range and becomes 0.
    x[0, 3, 0, 0] = np.nan
    out = normalize(x, Normalization("study"), bands)
    assert out[0, 3, 0, 0] == 0 and out[0, 3].max() == pytest.approx(1.0, abs=1e-6)


def test_importcheckpoint_algorithm(provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    state = randomise(ReferenceStudyNet(3, "cross"), 3).state_dict()
    ckpt = tmp_path / "last.pth"
    torch.save(state, ckpt)
    before = ckpt.read_bytes()
    out = str(tmp_path / "ca.safetensors")
    result = processing.run(
        "rtsfusion:importcheckpoint", {"CHECKPOINT": str(ckpt), "RGB_SCALING": 1, "PIXEL_SIZE": 3.0, "OUTPUT": out}
    )
    assert ckpt.read_bytes() == before  # the input is only read
    model, card = load_package(result["OUTPUT"])
    assert card.config.architecture == "ca_segformer" and card.normalization.rgb_divisor == 255.0
    assert card.pixel_size == 3.0 and "RGB / 255" in result["CARD"] and "CA-SegFormer" in result["CARD"]
    with pytest.raises(QgsProcessingException, match="takes 3 input bands but 2"):
        processing.run(
            "rtsfusion:importcheckpoint", {"CHECKPOINT": str(ckpt), "BANDS": "red, nir", "OUTPUT": out + "2"}
        )


def test_detection_with_an_imported_model_applies_the_study_scaling(tmp_path):
    """One 256 px chip through the tiled engine = the authors' network on their scaling of that chip."""
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS
    from rts_fusion.models.inference import predict_stack

    reference = randomise(ReferenceStudyNet(13, "self"), seed=5)
    torch.save(reference.state_dict(), tmp_path / "best.pth")
    card = import_study_checkpoint(str(tmp_path / "best.pth"), str(tmp_path / "m.safetensors"), rgb_divisor=255.0)
    model, _ = load_package(str(tmp_path / "m.safetensors"))

    rng = np.random.default_rng(2)
    data = rng.uniform(0, 255, (13, 256, 256)).astype(np.float32)
    data[3] = rng.uniform(4600, 4900, (256, 256))  # DEM in metres, LST in kelvin: scaled per chip
    data[6] = rng.uniform(260, 290, (256, 256))
    stack = tmp_path / "stack.tif"
    with rasterio.open(stack, "w", driver="GTiff", width=256, height=256, count=13, dtype="float32",
                       crs=CRS.from_epsg(32646), transform=Affine(10, 0, 500000, 0, -10, 3870000),
                       nodata=-9999.0) as dst:  # fmt: skip
        dst.write(data)
        for i, name in enumerate(PAPER, start=1):
            dst.set_band_description(i, name)
    predict_stack(model, card, str(stack), str(tmp_path / "prob.tif"))
    with rasterio.open(tmp_path / "prob.tif") as ds:
        prob = ds.read(1)
    x = torch.from_numpy(normalize(data[None], card.normalization, PAPER))
    with torch.no_grad():
        expected = torch.sigmoid(reference(x))[0, 0].numpy()
    diff = float(np.abs(prob - expected).max())
    print(f"tiled detection vs the authors' network on their scaling: max |Δp| = {diff:.1e}")
    assert diff < 1e-4
