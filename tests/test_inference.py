import numpy as np
import pytest
import rasterio
import torch
from conftest import write_raster
from rts_fusion.core.errors import OperationCanceled, RtsFusionError
from rts_fusion.core.tiling import blend_weights, tile_starts
from rts_fusion.models.card import ModelCard, Normalization
from rts_fusion.models.config import ModelConfig
from rts_fusion.models.inference import (
    MASK_NODATA,
    PROB_NODATA,
    InferenceOptions,
    bounds_to_window,
    predict_stack,
)

torch.set_num_threads(2)
BANDS = ("NDVI", "LST")


def write_stack(path, data, nodata=-9999.0):
    """A minimal fused stack: named bands, UTM grid, 10 m pixels."""
    return write_raster(path, data, names=BANDS[: data.shape[0]], nodata=nodata)


def card(tile=64, overlap=16, bands=BANDS) -> ModelCard:
    n = len(bands)
    return ModelCard(
        ModelConfig("sa_segformer", n),
        tuple(bands),
        ("optical",) * n,
        Normalization("standardize", (0.0,) * n, (1.0,) * n),
        10.0,
        tile,
        overlap,
        threshold=0.5,
    )


class Constant(torch.nn.Module):
    """Logit 0.85 everywhere (p ≈ 0.70)."""

    def forward(self, x):
        return torch.full_like(x[:, :1], 0.85)


class PerPixel(torch.nn.Module):
    """A pixelwise model: its output at a pixel depends only on that pixel, so tiling cannot change it."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 1, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[[[2.0]], [[-1.0]]]]))
            self.conv.bias.fill_(0.3)

    def forward(self, x):
        return self.conv(x)


@pytest.fixture
def stack(tmp_path):
    rng = np.random.default_rng(0)
    return write_stack(tmp_path / "stack.tif", rng.normal(size=(2, 150, 170)))


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.nodata, ds.transform


def test_tile_layout_covers_everything():
    assert tile_starts(170, 64, 48) == [0, 48, 96, 106]
    assert tile_starts(40, 64, 48) == [0]
    w = blend_weights(8, False, False)
    assert w[0] < 0.1 and w[3] > 0.9
    assert (blend_weights(8, True, False)[:4] == 1).all()


def test_constant_model_gives_constant_raster_without_seams(stack, tmp_path):
    out = str(tmp_path / "p.tif")
    predict_stack(Constant(), card(), stack, out, options=InferenceOptions(device="cpu", batch_size=3))
    prob, nodata, _ = read(out)
    expected = 1 / (1 + np.exp(-0.85))
    np.testing.assert_allclose(prob, expected, atol=1e-5)  # edges and tile seams included


def test_one_tile_or_many_gives_the_same_result(stack, tmp_path):
    model = PerPixel()
    many = str(tmp_path / "many.tif")
    one = str(tmp_path / "one.tif")
    predict_stack(model, card(tile=64, overlap=16), stack, many, options=InferenceOptions(device="cpu"))
    predict_stack(model, card(tile=256, overlap=0), stack, one, options=InferenceOptions(device="cpu"))
    a, b = read(many)[0], read(one)[0]
    np.testing.assert_allclose(a, b, atol=1e-5)
    with rasterio.open(stack) as ds:
        x = ds.read()
    np.testing.assert_allclose(a, 1 / (1 + np.exp(-(2 * x[0] - x[1] + 0.3))), atol=1e-5)


def test_nodata_in_nodata_out_and_mask(tmp_path):
    data = np.random.default_rng(1).normal(size=(2, 100, 100))
    data[0, 10:30, 40:70] = -9999.0
    stack = write_stack(tmp_path / "s.tif", data)
    prob_path, mask_path = str(tmp_path / "p.tif"), str(tmp_path / "m.tif")
    res = predict_stack(PerPixel(), card(), stack, prob_path, mask_path, InferenceOptions(device="cpu"))
    prob, nodata, transform = read(prob_path)
    mask, mnodata, _ = read(mask_path)
    assert nodata == PROB_NODATA and mnodata == MASK_NODATA
    assert (prob[10:30, 40:70] == PROB_NODATA).all() and (mask[10:30, 40:70] == MASK_NODATA).all()
    valid = prob != PROB_NODATA
    np.testing.assert_array_equal(mask[valid], (prob[valid] >= 0.5).astype(np.uint8))
    assert res.valid_pixels == valid.sum() and res.slump_pixels == int(mask[valid].sum())
    with rasterio.open(stack) as ds:
        assert transform == ds.transform


def test_uint8_output_and_extent(stack, tmp_path):
    out = str(tmp_path / "u.tif")
    window = bounds_to_window(stack, (500200, 3869000, 500800, 3869700))
    predict_stack(
        Constant(), card(), stack, out, options=InferenceOptions(device="cpu", probability_dtype="uint8", window=window)
    )
    prob, nodata, transform = read(out)
    assert prob.dtype == np.uint8 and nodata == 255 and prob.shape == (70, 60)
    assert transform.c == 500200 and transform.f == 3869700
    assert (prob == round(250 / (1 + np.exp(-0.85)))).all()


def test_tta_keeps_a_symmetric_result(stack, tmp_path):
    out = str(tmp_path / "t.tif")
    predict_stack(PerPixel(), card(), stack, out, options=InferenceOptions(device="cpu", tta=True))
    ref = str(tmp_path / "r.tif")
    predict_stack(PerPixel(), card(), stack, ref, options=InferenceOptions(device="cpu"))
    np.testing.assert_allclose(read(out)[0], read(ref)[0], atol=1e-5)


def test_wrong_bands_are_named(stack, tmp_path):
    with pytest.raises(RtsFusionError, match="lacks band\\(s\\) TCW"):
        predict_stack(Constant(), card(bands=("NDVI", "TCW")), stack, str(tmp_path / "x.tif"))


def test_cancel_leaves_no_half_written_outputs(stack, tmp_path):
    p, m = tmp_path / "p.tif", tmp_path / "m.tif"
    calls = iter(range(100))
    with pytest.raises(OperationCanceled):
        predict_stack(
            Constant(),
            card(),
            stack,
            str(p),
            str(m),
            InferenceOptions(device="cpu", batch_size=1),
            is_canceled=lambda: next(calls) > 3,
        )
    assert not p.exists() and not m.exists()


def test_all_nodata_is_refused(tmp_path):
    stack = write_stack(tmp_path / "s.tif", np.full((2, 40, 40), -9999.0))
    with pytest.raises(RtsFusionError, match="no valid pixel"):
        predict_stack(Constant(), card(), stack, str(tmp_path / "p.tif"))
    assert not (tmp_path / "p.tif").exists()


def test_cuda_request_without_gpu_is_explained(stack, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RtsFusionError, match="no CUDA GPU"):
        predict_stack(Constant(), card(), stack, str(tmp_path / "p.tif"), options=InferenceOptions(device="cuda"))
