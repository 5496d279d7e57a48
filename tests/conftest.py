"""Test setup: import the repository root as the package `rts_fusion`, shared fixtures."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

if "rts_fusion" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "rts_fusion", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["rts_fusion"] = _module
    _spec.loader.exec_module(_module)


DEFAULT_TRANSFORM = (10.0, 0.0, 500000.0, 0.0, -10.0, 3870000.0)  # 10 m pixels in UTM 46N


def write_raster(
    path,
    data,
    names=(),
    nodata=None,
    dtype: str = "float32",
    transform=DEFAULT_TRANSFORM,
    epsg: int = 32646,
    tags: dict | None = None,
) -> str:
    """Write a small GeoTIFF (a fused stack when `names` are feature names): (bands, rows, cols) or (rows, cols)."""
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS

    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    with rasterio.open(
        str(path),
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=dtype,
        crs=CRS.from_epsg(epsg),
        transform=transform if isinstance(transform, Affine) else Affine(*transform),
        nodata=nodata,
    ) as dst:
        dst.write(data.astype(dtype))
        for i, name in enumerate(names or (), start=1):
            dst.set_band_description(i, name)
        if tags:
            dst.update_tags(**tags)
    return str(path)


# The tiny training settings the learning tests share: a tiny network learns faster at a higher rate.
TINY_TRAIN = {
    "encoder": "tiny",
    "decoder_dim": 32,
    "tile_size": 64,
    "epochs": 10,
    "batch_size": 8,
    "chips_per_epoch": 64,
    "patience": 10,
    "seed": 7,
    "lr": 1e-3,
    "max_lr": 3e-3,
}


def tiny_train_config(**overrides):
    """A TrainConfig of the tiny settings, with overrides."""
    from rts_fusion.models.train import TrainConfig

    return TrainConfig(**{**TINY_TRAIN, **overrides})


@pytest.fixture
def stub_fit(monkeypatch):
    """Replace the training loop by an untrained, seeded network (for tests of experiment plumbing).

    Everything around the loop runs for real (scene, split, normalisation, scoring of the splits, the package and
    its card); only the epochs are skipped. Returns the list of TrainConfigs the stub was called with.
    """
    import torch
    from rts_fusion.core.errors import OperationCanceled
    from rts_fusion.models import train
    from rts_fusion.models.registry import build_model

    calls = []

    def fit(cfg, model_cfg, bands, norm, sample_train, n_train_positions, val, test, progress, is_canceled, log):
        if is_canceled():
            raise OperationCanceled("Training was cancelled before the first epoch finished; no model was written.")
        calls.append(cfg)
        torch.manual_seed(cfg.seed)
        sample_train(np.random.default_rng(cfg.seed), 1)  # the sampler works
        device = torch.device("cpu")
        model = build_model(model_cfg)
        val_scores, val_loss = train.evaluate(model, val, norm, bands, cfg.threshold, device)
        test_scores, _ = train.evaluate(model, test, norm, bands, cfg.threshold, device)
        row = {"epoch": 1, "train_loss": float("nan"), "val_loss": val_loss, **{
            k: val_scores["pooled"][k] for k in ("precision", "recall", "f1", "iou")
        }, "lr": cfg.lr, "seconds": 0.0}  # fmt: skip
        progress(100.0)
        return train.FitResult(
            model, [row], 1, "stub (no training)", False, False, val_scores, test_scores, 0.0, device
        )

    monkeypatch.setattr(train, "_fit", fit)
    return calls


@pytest.fixture(scope="session")
def sample_scene(tmp_path_factory):
    """A small synthetic scene (128 px optical), written once per session."""
    from rts_fusion.core.synthetic import generate_sample_scene

    return generate_sample_scene(str(tmp_path_factory.mktemp("scene")), size=128, seed=7)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("shared real data not available")
    return SHARED_DATA


_PROVIDERS: list = []  # Python references to the providers registered by the tests


def ensure_provider():
    """Register the RTS Fusion provider unless it is registered; returns it."""
    from qgis.core import QgsApplication
    from rts_fusion.processing_provider.provider import RtsFusionProvider

    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("rtsfusion")
    if existing is not None:
        return existing
    prov = RtsFusionProvider()
    _PROVIDERS.append(prov)
    assert registry.addProvider(prov)
    return registry.providerById("rtsfusion")


@pytest.fixture(scope="module")
def provider(qgis_processing):
    """The RTS Fusion provider registered in the test QGIS application (tests that remove it put it back)."""
    return ensure_provider()


@pytest.fixture(scope="session")
def training_stack(tmp_path_factory):
    """A 384 px sample scene fused with the paper preset: (stack path, slumps path), written once."""
    from rts_fusion.core.features import PAPER
    from rts_fusion.core.stack import FusionInputs, OpticalBands, build_fused_stack
    from rts_fusion.core.synthetic import generate_sample_scene

    folder = tmp_path_factory.mktemp("train_scene")
    scene = generate_sample_scene(str(folder), size=384, seed=42)
    inputs = FusionInputs(
        scene.optical,
        scene.thermal,
        scene.dem,
        OpticalBands(1, 2, 3, 4, 5, 6, sensor="sentinel2"),
        temperature_series=scene.temperature_series,
    )
    stack = build_fused_stack(inputs, PAPER, str(folder / "stack.tif"))
    return stack.path, scene.slumps


@pytest.fixture(scope="session")
def tiny_model(training_stack, tmp_path_factory):
    """A tiny FusionSA-SegFormer trained briefly on the training stack (paper bands): its package path."""
    import torch
    from rts_fusion.core.features import PAPER
    from rts_fusion.models.train import train_from_stack

    torch.set_num_threads(2)
    cfg = tiny_train_config()
    out = str(tmp_path_factory.mktemp("tiny_model") / "tiny.safetensors")
    return train_from_stack(*training_stack, out, cfg, bands=PAPER).package


@pytest.fixture(scope="session")
def multiyear_scene(tmp_path_factory):
    """A 256 px sample scene with yearly inventories, NDVI and LST for 2019–2024, written once."""
    from rts_fusion.core.synthetic import generate_multiyear_scene

    return generate_multiyear_scene(str(tmp_path_factory.mktemp("multiyear")), size=256, seed=5)
