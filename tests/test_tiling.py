"""The shared tiling engine (core/tiling.py) and its use by streaming detection and in-memory prediction."""

import threading

import numpy as np
import pytest
import rasterio
import torch
from rts_fusion.core.errors import OperationCanceled
from rts_fusion.core.tiling import (
    BackgroundWriter,
    BlendAccumulator,
    TileLayout,
    blend_tiles,
    cut_row,
    prefetch,
    tile_starts,
)
from rts_fusion.models.importance import predict_area
from rts_fusion.models.inference import InferenceOptions, predict_stack
from test_inference import PerPixel, card, write_stack

torch.set_num_threads(2)


class TileMean(torch.nn.Module):
    """Logit = the tile's mean of band 0 plus the pixel's band 1: the result depends on where tiles fall."""

    def forward(self, x):
        return x[:, :1].mean(dim=(2, 3), keepdim=True) + x[:, 1:2]


class NeedsFullTiles(torch.nn.Module):
    """A pixelwise model that only accepts tiles of exactly 64 px (as a fixed-size network would)."""

    def __init__(self):
        super().__init__()
        self.inner = PerPixel()

    def forward(self, x):
        assert x.shape[-2:] == (64, 64), f"got a {tuple(x.shape[-2:])} tile"
        return self.inner(x)


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.transform


def test_global_lattice_gives_a_window_the_whole_rasters_tiles():
    full = tile_starts(300, 64, 48)
    assert full == [0, 48, 96, 144, 192, 236]
    assert tile_starts(300, 64, 48, 100, 150) == [48, 96, 144]  # every tile meeting rows 100–149
    assert set(tile_starts(300, 64, 48, 100, 150)) <= set(full)
    assert tile_starts(40, 64, 48) == [0] and tile_starts(40, 64, 48, 10, 20) == [0]
    layout = TileLayout(300, 200, 64, 16, window=(70, 100, 30, 50))
    assert layout.rows == (48, 96, 144) and layout.span == (48, 160)
    assert layout.window_mask(96, 48)[4:8, 21:23].tolist() == [[False, True]] * 4  # window from row 100, col 70
    assert not layout.window_mask(96, 48)[:4].any()


def test_accumulator_flushes_each_window_row_once_with_weighted_means():
    layout = TileLayout(10, 6, 4, 0)
    acc = BlendAccumulator(layout)
    acc.add(0, 0, np.full((4, 4), 0.2, np.float32), np.ones((4, 4), np.float32))
    acc.add(0, 2, np.full((4, 4), 0.8, np.float32), np.full((4, 4), 3.0, np.float32))
    top, prob = acc.flush(3)
    assert top == 0 and prob.shape == (3, 6)
    np.testing.assert_allclose(prob[0], [0.2, 0.2, 0.65, 0.65, 0.8, 0.8], atol=1e-6)
    top, prob = acc.flush(10)
    assert top == 3 and prob.shape == (7, 6) and np.isnan(prob[1:]).all()  # rows no tile reached are nodata
    assert acc.flush(10) is None


def test_blend_tiles_emits_every_row_in_order_and_batches_across_rows():
    layout = TileLayout(150, 170, 64, 16)
    x = np.random.default_rng(0).normal(size=(2, 150, 170)).astype(np.float32)
    rows = [cut_row(layout, r, x[:, r : r + 64, :], lambda t: t) for r in layout.rows]
    sizes, emitted = [], []

    def predict(t):
        sizes.append(len(t))
        return 1 / (1 + np.exp(-(2 * t[:, 0] - t[:, 1] + 0.3)))

    out = np.full((150, 170), np.nan, np.float32)

    def emit(top, prob):
        emitted.append((top, len(prob)))
        out[top : top + len(prob)] = prob

    assert blend_tiles(layout, rows, predict, emit, batch_size=3) == layout.count == 12
    assert sizes == [3, 3, 3, 3]  # full batches across rows of 4 tiles, not 3 + 1 per row
    assert [t for t, _ in emitted] == list(np.cumsum([0] + [n for _, n in emitted])[:-1])
    assert sum(n for _, n in emitted) == 150
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-(2 * x[0] - x[1] + 0.3))), atol=1e-5)


def test_window_gets_exactly_the_whole_stacks_probabilities(tmp_path):
    data = np.random.default_rng(3).normal(size=(2, 150, 170))
    stack = write_stack(tmp_path / "s.tif", data)
    full, part = str(tmp_path / "full.tif"), str(tmp_path / "part.tif")
    predict_stack(TileMean(), card(), stack, full, options=InferenceOptions(device="cpu"))
    window = (37, 51, 70, 60)
    predict_stack(TileMean(), card(), stack, part, options=InferenceOptions(device="cpu", window=window))
    a, b = read(full)[0], read(part)[0]
    assert b.shape == (60, 70)
    np.testing.assert_allclose(b, a[51:111, 37:107], atol=1e-6)
    assert np.ptp(a) > 0.1  # the model really depends on the tiles' context


def test_stack_smaller_than_a_tile_is_padded_predicted_and_cropped(tmp_path):
    data = np.random.default_rng(4).normal(size=(2, 40, 50))
    data[0, :5, :5] = -9999.0
    stack = write_stack(tmp_path / "small.tif", data)
    prob, mask = str(tmp_path / "p.tif"), str(tmp_path / "m.tif")
    logs = []
    res = predict_stack(
        NeedsFullTiles(), card(tile=64), stack, prob, mask, InferenceOptions(device="cpu"), log=logs.append
    )
    p, transform = read(prob)
    m, _ = read(mask)
    assert p.shape == m.shape == (40, 50) and res.tiles == 1
    with rasterio.open(stack) as ds:
        assert transform == ds.transform
    expected = 1 / (1 + np.exp(-(2 * data[0, 5:] - data[1, 5:] + 0.3)))
    np.testing.assert_allclose(p[5:], expected, atol=1e-5)
    assert (p[:5, :5] == -1).all() and (m[:5, :5] == 255).all()
    assert any("smaller than one tile" in m for m in logs)


def test_another_backend_plugs_in_as_a_predict_function(tmp_path):
    data = np.random.default_rng(5).normal(size=(2, 100, 90))
    stack = write_stack(tmp_path / "s.tif", data)
    seen = []

    def numpy_backend(tiles):  # what an ONNX Runtime session would be wrapped as
        seen.append(tiles.shape)
        return 1 / (1 + np.exp(-(2 * tiles[:, 0] - tiles[:, 1] + 0.3)))

    out = str(tmp_path / "p.tif")
    predict_stack(None, card(), stack, out, options=InferenceOptions(device="cpu"), predictor=numpy_backend)
    np.testing.assert_allclose(read(out)[0], 1 / (1 + np.exp(-(2 * data[0] - data[1] + 0.3))), atol=1e-5)
    assert all(s[1:] == (2, 64, 64) for s in seen)
    # On an accelerator GDAL decodes and encodes on all cores: the same rasters come out.
    fast = str(tmp_path / "p_gpu.tif")
    predict_stack(None, card(), stack, fast, options=InferenceOptions(device="cuda"), predictor=numpy_backend)
    assert np.array_equal(read(fast)[0], read(out)[0]) and read(fast)[1] == read(out)[1]


def test_in_memory_prediction_matches_streaming_detection(tmp_path):
    data = np.random.default_rng(6).normal(size=(2, 120, 130)).astype(np.float32)
    data[1, 30:40, 60:90] = -9999.0
    stack = write_stack(tmp_path / "s.tif", data)
    out = str(tmp_path / "p.tif")
    predict_stack(TileMean(), card(), stack, out, options=InferenceOptions(device="cpu", batch_size=3))
    x = np.where(data == -9999.0, np.nan, data)
    valid = np.isfinite(x).all(axis=0)
    mem = predict_area(TileMean(), card(), x, valid, torch.device("cpu"), 2)
    streamed = read(out)[0]
    assert np.isnan(mem[30:40, 60:90]).all() and (streamed[30:40, 60:90] == -1).all()
    np.testing.assert_allclose(mem[valid], streamed[valid], atol=1e-6)


def test_cancel_inside_the_engine(tmp_path):
    layout = TileLayout(150, 170, 64, 16)
    x = np.zeros((1, 150, 170), np.float32)
    rows = [cut_row(layout, r, x[:, r : r + 64], lambda t: t) for r in layout.rows]
    with pytest.raises(OperationCanceled, match="stop now"):
        blend_tiles(layout, rows, lambda t: t[:, 0], lambda *_: None, 2, lambda: True, cancel_message="stop now")


def test_prefetch_reads_ahead_passes_errors_and_stops_its_thread():
    assert list(prefetch(range(5))) == [0, 1, 2, 3, 4]

    def broken():
        yield 1
        raise ValueError("disk gone")

    with pytest.raises(ValueError, match="disk gone"):
        list(prefetch(broken()))
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    before = threading.active_count()
    it = prefetch(endless(), depth=2)
    assert next(it) == 0
    it.close()
    assert threading.active_count() == before and len(produced) < 10

    # Nested (the engine reads strips on one thread and cuts them on another): closing the outer stops both.
    def stage(items):
        inner = prefetch(items, depth=1)
        try:
            yield from (i * 10 for i in inner)
        finally:
            inner.close()

    produced.clear()
    it = prefetch(stage(endless()), depth=1)
    assert next(it) == 0 and next(it) == 10
    it.close()
    assert threading.active_count() == before and len(produced) < 10


def test_background_writer_runs_in_order_and_reports_errors():
    done = []
    w = BackgroundWriter()
    for i in range(5):
        w.submit(lambda i=i: done.append(i))
    w.close()
    assert done == [0, 1, 2, 3, 4]
    w = BackgroundWriter()
    w.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        w.close()


def test_detection_and_importance_do_not_import_the_trainer():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('rts_fusion', {str(root / '__init__.py')!r}, "
        f"submodule_search_locations=[{str(root)!r}])\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['rts_fusion'] = m; spec.loader.exec_module(m)\n"
        "import rts_fusion.models.inference, rts_fusion.models.importance\n"
        "print('rts_fusion.models.train' in sys.modules, 'rts_fusion.models.device' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
