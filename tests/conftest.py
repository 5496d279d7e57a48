"""Test setup: import the repository root as the package `rts_fusion`, shared fixtures."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
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
def training_scene(tmp_path_factory):
    """A 384 px sample scene (the one the tiny model is trained on), written once."""
    from rts_fusion.core.synthetic import generate_sample_scene

    return generate_sample_scene(str(tmp_path_factory.mktemp("train_scene")), size=384, seed=42)


@pytest.fixture(scope="session")
def training_stack(training_scene):
    """The training scene fused with the paper preset: (stack path, slumps path), written once."""
    from rts_fusion.core.features import PAPER
    from rts_fusion.core.synthetic import fuse_sample_scene

    stack = fuse_sample_scene(training_scene, PAPER, os.path.join(os.path.dirname(training_scene.optical), "stack.tif"))
    return stack, training_scene.slumps


@pytest.fixture(scope="session")
def tiny_training(training_stack, tmp_path_factory):
    """A tiny FusionSA-SegFormer trained briefly on the training stack (paper bands), once: its TrainResult."""
    import torch
    from rts_fusion.core.features import PAPER
    from rts_fusion.models.train import train_from_stack

    torch.set_num_threads(2)
    out = str(tmp_path_factory.mktemp("tiny_model") / "tiny.safetensors")
    return train_from_stack(*training_stack, out, tiny_train_config(), bands=PAPER)


@pytest.fixture(scope="session")
def tiny_model(tiny_training):
    """The package path of the tiny trained model (tiny_training)."""
    return tiny_training.package


@pytest.fixture
def mapslumps_parameters(training_scene, tiny_model, tmp_path):
    """rtsfusion:mapslumps's parameters for the training scene, built as the panel builds them.

    The tiny model on CPU, slumps of at least 500 m², the model's threshold; outputs go to tmp_path.
    """
    from rts_fusion.core.bands import OPTICAL_KEYS
    from rts_fusion.plugin.dock_logic import map_parameters

    s = training_scene
    bands = {key: i for i, key in enumerate(OPTICAL_KEYS, start=1)}  # the scene's six bands, in order
    return map_parameters(
        tiny_model, s.optical, s.thermal, s.dem, s.temperature_series, bands, "sentinel2", 1, None, 500.0, str(tmp_path)
    )


@pytest.fixture(scope="session")
def multiyear_scene(tmp_path_factory):
    """A 256 px sample scene with yearly inventories, NDVI and LST for 2019–2024, written once."""
    from rts_fusion.core.synthetic import generate_multiyear_scene

    return generate_multiyear_scene(str(tmp_path_factory.mktemp("multiyear")), size=256, seed=5)


@pytest.fixture(scope="session")
def big_scene(tmp_path_factory):
    """A 512 px sample scene (mapping it takes long enough to cancel a run on its way), written once."""
    from rts_fusion.core.synthetic import generate_sample_scene

    return generate_sample_scene(str(tmp_path_factory.mktemp("big_scene")), size=512, seed=3)


def add_scene_layers(scene) -> dict:
    """Add a sample scene's layers to the project, the DEM first (a guess must not take it for the optical image)."""
    from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer

    layers = {
        "dem": QgsRasterLayer(scene.dem, "dem"),
        "optical": QgsRasterLayer(scene.optical, "optical"),
        "thermal": QgsRasterLayer(scene.thermal, "thermal"),
        "series": QgsRasterLayer(scene.temperature_series, "temperature_series"),
        "slumps": QgsVectorLayer(scene.slumps, "slumps", "ogr"),
    }
    for name, layer in layers.items():
        assert layer.isValid(), name
    QgsProject.instance().addMapLayers(list(layers.values()))
    return layers


def clear_project() -> None:
    """Remove every layer and group from the project."""
    from qgis.core import QgsProject

    project = QgsProject.instance()
    project.removeAllMapLayers()
    root = project.layerTreeRoot()
    for group in root.findGroups():
        root.removeChildNode(group)


@pytest.fixture
def scene_layers(sample_scene, qgis_iface):
    """The 128 px sample scene's layers in the project (see add_scene_layers); the project is cleared after."""
    yield add_scene_layers(sample_scene)
    clear_project()


@pytest.fixture
def big_scene_layers(big_scene, qgis_iface):
    """The 512 px scene's layers in the project, for runs that must still be going when a test acts on them."""
    yield add_scene_layers(big_scene)
    clear_project()


def wait_for(dock, timeout: float = 600) -> None:
    """Process Qt events until the dock's background task has finished."""
    from qgis.PyQt.QtCore import QCoreApplication

    t0 = time.time()
    while dock.task is not None or dock.last_success is None:
        QCoreApplication.processEvents()
        time.sleep(0.02)
        assert time.time() - t0 < timeout, "the background task did not finish"


def wait_until_started(dock, timeout: float = 120) -> None:
    """Process Qt events until the dock's run is under way (progress ≥ 3 %); fails if it ended before."""
    from qgis.PyQt.QtCore import QCoreApplication

    t0 = time.time()
    while dock.progress.value() < 3 and dock.task is not None:
        QCoreApplication.processEvents()
        time.sleep(0.01)
        assert time.time() - t0 < timeout
    assert dock.task is not None, "the run ended before the test could act on it"
