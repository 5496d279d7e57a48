"""Test setup: import the repository root as the package `rts_fusion`, shared fixtures."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

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
    from rts_fusion.models.train import TrainConfig, train_from_stack

    torch.set_num_threads(2)
    cfg = TrainConfig(
        encoder="tiny",
        decoder_dim=32,
        tile_size=64,
        epochs=10,
        batch_size=8,
        chips_per_epoch=64,
        patience=10,
        seed=7,
        lr=1e-3,
        max_lr=3e-3,
    )
    out = str(tmp_path_factory.mktemp("tiny_model") / "tiny.safetensors")
    return train_from_stack(*training_stack, out, cfg, bands=PAPER).package


@pytest.fixture(scope="session")
def multiyear_scene(tmp_path_factory):
    """A 256 px sample scene with yearly inventories, NDVI and LST for 2019–2024, written once."""
    from rts_fusion.core.synthetic import generate_multiyear_scene

    return generate_multiyear_scene(str(tmp_path_factory.mktemp("multiyear")), size=256, seed=5)
