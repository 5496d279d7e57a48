"""ONNX export and the ONNX Runtime backend: metadata, equality with PyTorch, mapping with torch blocked."""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
import rasterio
import torch
from rts_fusion.core.errors import RtsFusionError
from rts_fusion.core.features import PAPER
from rts_fusion.core.synthetic import sample_inputs
from rts_fusion.models.card import ModelCard, Normalization
from rts_fusion.models.config import ModelConfig
from rts_fusion.models.inference import InferenceOptions, predict_stack
from rts_fusion.models.onnx_export import export_onnx
from rts_fusion.models.onnx_runtime import choose_providers, read_onnx_card
from rts_fusion.models.package import ModelPackageError, load_package, read_card, save_package
from rts_fusion.models.registry import build_model
from rts_fusion.pipeline.map_slumps import MapInputs, MapOptions, MapOutputs, load_model, map_slumps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEEPNESS_KEYS = (
    "model_type",
    "class_names",
    "resolution",
    "tiles_size",
    "tiles_overlap",
    "standardization_mean",
    "standardization_std",
    "seg_thresh",
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny FusionSA-SegFormer package on the paper's 13 bands (study normalisation) and its .onnx export."""
    torch.manual_seed(3)
    cfg = ModelConfig("fusion_sa_segformer", len(PAPER), encoder="tiny", decoder_dim=32)
    card = ModelCard(
        cfg, PAPER, ("optical",) * 3 + ("auxiliary",) * 10, Normalization("study"), 10.0, 64, 16, threshold=0.45
    )
    folder = tmp_path_factory.mktemp("onnx")
    package = str(folder / "tiny.safetensors")
    save_package(package, build_model(cfg), card)
    result = export_onnx(package, str(folder / "tiny.onnx"))
    return package, result


def test_export_carries_card_and_deepness_keys_and_matches_the_package(exported):
    package, result = exported
    meta = {p.key: p.value for p in onnx.load(result.path).metadata_props}
    assert all(k in meta for k in DEEPNESS_KEYS)
    assert json.loads(meta["model_type"]) == "Segmentor"
    assert json.loads(meta["class_names"]) == {"0": "background", "1": "thaw_slump"}
    assert json.loads(meta["resolution"]) == 1000.0  # 10 m pixels = 1000 cm/px, as Deepness wants
    assert json.loads(meta["tiles_size"]) == 64 and json.loads(meta["tiles_overlap"]) == 25  # 16 of 64 px
    assert json.loads(meta["seg_thresh"]) == 0.45 and len(json.loads(meta["standardization_std"])) == 13
    assert read_onnx_card(result.path) == read_card(package) == read_card(result.path)
    # Other batch and tile sizes than the export's (dynamic axes) give the package's probabilities.
    import onnxruntime as ort

    model, _ = load_package(package)
    x = np.random.default_rng(0).normal(size=(3, 13, 96, 128)).astype(np.float32)
    got = ort.InferenceSession(result.path, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.inference_mode():
        want = torch.sigmoid(model(torch.from_numpy(x))).numpy()
    assert got.shape == (3, 1, 96, 128) and np.abs(got - want).max() <= 1e-4


def test_onnx_detection_equals_torch_detection(exported, tmp_path):
    from conftest import write_raster

    package, result = exported
    data = np.random.default_rng(1).normal(size=(13, 100, 90)).astype(np.float32)
    data[:, :7, :9] = -9999.0  # a nodata corner
    stack = write_raster(str(tmp_path / "stack.tif"), data, names=PAPER, nodata=-9999.0)
    torch_model, card = load_package(package)
    onnx_model = load_model(result.path)
    assert onnx_model.backend == "onnxruntime" and onnx_model.card == card
    out = {}
    for name, model in (("torch", torch_model), ("onnx", onnx_model.model)):
        res = predict_stack(model, card, stack, str(tmp_path / f"{name}.tif"), options=InferenceOptions(device="cpu"))
        with rasterio.open(res.probability) as src:
            out[name] = src.read(1)
        assert res.tiles == 4  # 2 × 2 tiles of 64 px, stride 48
    assert out["onnx"][0, 0] == -1.0  # nodata stays nodata
    assert np.abs(out["onnx"] - out["torch"]).max() <= 1e-4
    assert (
        "ONNX Runtime"
        in predict_stack(
            onnx_model.model, card, stack, str(tmp_path / "tta.tif"), options=InferenceOptions(device="cpu", tta=True)
        ).device
    )


def test_onnx_without_card_or_corrupt_is_refused_by_name(tmp_path):
    net = torch.nn.Conv2d(2, 1, 1)
    bare = str(tmp_path / "bare.onnx")
    torch.onnx.export(net, (torch.zeros(1, 2, 8, 8),), bare, dynamo=False)
    with pytest.raises(RtsFusionError, match="bare.onnx.*without an RTS Fusion model card"):
        load_model(bare)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(ModelPackageError, match="corrupt.onnx' is not a readable ONNX model"):
        read_card(str(corrupt))
    with pytest.raises(ModelPackageError, match="mapping only"):
        load_package(bare)


def test_execution_providers_follow_the_device_choice():
    cpu = ["CPUExecutionProvider"]
    assert choose_providers("auto", cpu) == (cpu, "cpu")
    assert choose_providers("auto", ["DmlExecutionProvider", *cpu]) == (["DmlExecutionProvider", *cpu], "directml")
    assert choose_providers("auto", ["CoreMLExecutionProvider", "CUDAExecutionProvider", *cpu])[1] == "cuda"
    assert choose_providers("cpu", ["CUDAExecutionProvider", *cpu]) == (cpu, "cpu")
    with pytest.raises(RtsFusionError, match="onnxruntime-gpu"):
        choose_providers("cuda", cpu)


BLOCKED_SCRIPT = r"""
import importlib.abc, importlib.util, json, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, Block())
root, onnx_path, job = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
spec = importlib.util.spec_from_file_location("rts_fusion", root + "/__init__.py", submodule_search_locations=[root])
module = importlib.util.module_from_spec(spec)
sys.modules["rts_fusion"] = module
spec.loader.exec_module(module)
from rts_fusion.core.stack import FusionInputs, OpticalBands
from rts_fusion.pipeline.map_slumps import MapInputs, MapOptions, MapOutputs, map_slumps

inputs = MapInputs(FusionInputs(*job["sources"], OpticalBands(1, 2, 3, 4, 5, 6, sensor="sentinel2"),
                                temperature_series=job["series"]))
result = map_slumps(inputs, onnx_path, MapOutputs(*job["outputs"]), MapOptions(device="auto", min_area_m2=100))

from qgis.core import QgsApplication
app = QgsApplication([], False)
app.initQgis()
from rts_fusion.processing_provider.provider import RtsFusionProvider
provider = RtsFusionProvider()
QgsApplication.processingRegistry().addProvider(provider)
names = sorted(a.name() for a in provider.algorithms())
print("RESULT " + json.dumps({"device": result.device, "count": result.count, "valid": result.valid_pixels,
                              "algorithms": names, "torch": "torch" in sys.modules}))
"""


def test_mapping_with_onnx_needs_no_torch(exported, sample_scene, tmp_path):
    """A whole map_slumps run with the .onnx in a Python where torch and transformers cannot be imported."""
    package, result = exported
    sources = [sample_scene.optical, sample_scene.thermal, sample_scene.dem]
    job = {
        "sources": sources,
        "series": sample_scene.temperature_series,
        "outputs": [str(tmp_path / n) for n in ("stack.tif", "prob.tif", "mask.tif", "slumps.gpkg")],
    }
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    run = subprocess.run(
        [sys.executable, "-c", BLOCKED_SCRIPT, ROOT, result.path, json.dumps(job)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, run.stderr[-3000:]
    found = json.loads(lines[0][7:])
    assert found["torch"] is False and found["device"] == "cpu (ONNX Runtime)" and found["valid"] > 0
    assert {"detect", "mapslumps", "exportonnx", "train"} <= set(found["algorithms"])
    # The same run with the package in PyTorch gives the same probabilities.
    inputs = MapInputs(sample_inputs(sample_scene))
    outputs = MapOutputs(*(str(tmp_path / f"torch_{n}") for n in ("stack.tif", "prob.tif", "mask.tif", "s.gpkg")))
    reference = map_slumps(inputs, package, outputs, MapOptions(device="cpu", min_area_m2=100))
    with rasterio.open(job["outputs"][1]) as a, rasterio.open(reference.probability) as b:
        assert np.abs(a.read(1) - b.read(1)).max() <= 1e-4
    assert found["count"] == reference.count


def test_light_fusionsa_fuses_at_a_quarter_and_returns_full_size_logits(tmp_path):
    torch.manual_seed(0)
    light = build_model(ModelConfig("fusion_sa_segformer_light", 13, encoder="tiny", decoder_dim=16)).eval()
    study = build_model(ModelConfig("fusion_sa_segformer", 13, encoder="tiny", decoder_dim=16)).eval()
    assert light.state_dict().keys() == study.state_dict().keys()  # same layers, same weights fit both
    seen = {}
    light.decoder.head.register_forward_hook(lambda _m, inp, _out: seen.__setitem__("light", inp[0].shape))
    study.decoder.head.register_forward_hook(lambda _m, inp, _out: seen.__setitem__("study", inp[0].shape))
    x = torch.randn(2, 13, 64, 96)
    with torch.inference_mode():
        assert tuple(light(x).shape) == tuple(study(x).shape) == (2, 1, 64, 96)
    assert tuple(seen["light"][-2:]) == (16, 24) and tuple(seen["study"][-2:]) == (64, 96)
    # Exported at one tile size, the graph gives PyTorch's probabilities at another (no size frozen by tracing).
    from rts_fusion.models.onnx_export import WithSigmoid

    net = WithSigmoid(light).eval()
    path = str(tmp_path / "light.onnx")
    dynamic = {n: {0: "batch", 2: "height", 3: "width"} for n in ("input", "probability")}
    torch.onnx.export(
        net, (x,), path, input_names=["input"], output_names=["probability"], dynamic_axes=dynamic, dynamo=False
    )
    import onnxruntime as ort

    y = torch.randn(1, 13, 128, 64)
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": y.numpy()})[0]
    with torch.inference_mode():
        assert np.abs(got - net(y).numpy()).max() <= 1e-4


def test_onnx_model_reuses_its_session_and_pickles_without_it(exported):
    import pickle

    model = load_model(exported[1].path).model
    first, _ = model.predictor("cpu")
    again, _ = model.predictor("cpu")
    assert first.session is again.session
    copy = pickle.loads(pickle.dumps(model))
    assert copy == model and copy.sessions == {} and copy.predictor("cpu")[1] == "cpu (ONNX Runtime)"


def test_export_and_detect_algorithms_take_the_onnx(provider, exported, tmp_path):
    import processing
    from conftest import write_raster
    from qgis.core import QgsProcessingException

    package, _ = exported
    res = processing.run("rtsfusion:exportonnx", {"MODEL": package, "OUTPUT": str(tmp_path / "m.onnx")})
    assert res["OUTPUT"].endswith("m.onnx") and 0 <= res["MAX_DIFF"] <= 1e-4
    assert read_card(res["OUTPUT"]) == read_card(package)
    data = np.random.default_rng(2).normal(size=(13, 80, 80)).astype(np.float32)
    stack = write_raster(str(tmp_path / "stack.tif"), data, names=PAPER, nodata=-9999.0)
    out = processing.run(
        "rtsfusion:detect",
        {"STACK": stack, "MODEL": res["OUTPUT"], "DEVICE": 1, "PROBABILITY": str(tmp_path / "p.tif")},
    )
    with rasterio.open(out["PROBABILITY"]) as src:
        p = src.read(1)
    assert out["TILES"] == 4 and 0 <= p.min() and p.max() <= 1
    with pytest.raises(QgsProcessingException, match="MODEL"):  # the export takes packages only
        processing.run("rtsfusion:exportonnx", {"MODEL": res["OUTPUT"], "OUTPUT": str(tmp_path / "again.onnx")})
