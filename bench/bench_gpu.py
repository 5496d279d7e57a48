"""GPU figures, measured on a CUDA machine (the project's own CI and development machines have none).

1. Detection: end-to-end `predict_stack` (read windows, normalise, batch, blend, write GeoTIFFs) against the bare
   model forward on the same number of tiles, in bf16 autocast, at 512 px (issue 13) and at the study's 256 px
   (the tiles/s that the plateau estimate in docs/region_mapping.md uses), per encoder; peak GPU memory.
2. Training: `train_from_manifest` with the study preset on a dataset in the authors' Zenodo layout (256 px
   chips), timed per epoch on the GPU and on the CPU in the same run (chips/s; ratio).
3. ONNX Runtime: which execution providers the installed onnxruntime offers and, when CUDA is among them,
   end-to-end detection with an exported model on it.

Each part writes its figures as soon as it ends (a part that fails records its error and the rest go on).

    python3 bench/bench_gpu.py --out DIR [--size 4096] [--encoders b0 b2] [--parts detect train onnx]
        [--before FOLDER]  (e.g. FOLDER from `git archive 9d31561 | tar -x -C FOLDER`)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
import traceback

from _common import ROOT, import_package, import_plugin
from bench_detect import bare_forward, detect, make_model, make_stack


def gpu_detect(tmp: str, size: int, encoders: list[str], batch: int, before: str | None = None) -> dict:
    """Today's engine (and, with `before`, an older one imported from that folder) against the bare forward."""
    import torch
    from rts_fusion.core.features import PAPER

    engines = ["rts_fusion"]
    if before:
        engines.append(import_package(before, "rts_before"))
    stack = os.path.join(tmp, f"stack_{size}.tif")
    t0 = time.perf_counter()
    make_stack(stack, size, PAPER)
    out: dict = {"stack_px": size, "stack_write_s": round(time.perf_counter() - t0, 1), "runs": []}
    for encoder in encoders:
        for (tile, overlap), engine in [(t, e) for t in ((512, 128), (256, 64)) for e in engines]:
            model, card = make_model(encoder, tile, overlap, decoder_dim=256)
            bare_forward(model, card, 2 * batch, "cuda", batch)  # warm-up: kernels, allocator
            torch.cuda.reset_peak_memory_stats()
            seconds, tiles = detect(model, card, stack, os.path.join(tmp, "e2e"), "cuda", batch, engine)
            peak = torch.cuda.max_memory_allocated() / 2**20
            fwd = bare_forward(model, card, tiles, "cuda", batch)
            run = {
                "engine": "today" if engine == "rts_fusion" else f"before ({before})",
                "encoder": f"MiT-{encoder}",
                "decoder_dim": 256,
                "tile": tile,
                "overlap": overlap,
                "batch": batch,
                "tiles": tiles,
                "end_to_end_s": round(seconds, 2),
                "bare_forward_s": round(fwd, 3),
                "end_to_end_tiles_per_s": round(tiles / seconds, 1),
                "bare_forward_tiles_per_s": round(tiles / fwd, 1),
                "ratio_end_to_end_vs_forward": round(fwd / seconds, 3),
                "end_to_end_megapixels_per_s": round(size * size / seconds / 1e6, 2),
                "peak_gpu_mib": round(peak),
            }
            out["runs"].append(run)
            print(json.dumps(run), flush=True)
            del model
            torch.cuda.empty_cache()
    return out


def _zenodo_dataset(root: str, chips: int, chip: int = 256) -> str:
    """A dataset in the authors' Zenodo layout (the test suite's builder), `chips` chips of `chip` px."""
    spec = importlib.util.spec_from_file_location("study_tests", ROOT / "tests" / "test_study_protocol.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from pathlib import Path

    import torch

    torch.set_num_threads(os.cpu_count() or 1)  # the test module limits torch to the CI's 2 cores

    per_region = max(4, -(-chips // len(module.REGIONS)))
    return str(module.write_zenodo_layout(Path(root), chip=chip, per_region=per_region))


def gpu_train(tmp: str, encoder: str, chips: int, epochs: int, batch: int) -> dict:
    import torch
    from rts_fusion.models.train import study_preset, train_from_manifest

    manifest = _zenodo_dataset(os.path.join(tmp, "zenodo"), chips)
    out: dict = {"encoder": f"MiT-{encoder}", "chip_px": 256, "batch": batch, "runs": []}
    for device, n_epochs in (("cuda", epochs), ("cpu", 1)):
        cfg = study_preset(encoder=encoder, epochs=n_epochs, batch_size=batch, chips_per_epoch=chips, device=device)
        lines: list[str] = []
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        result = train_from_manifest(manifest, os.path.join(tmp, f"m_{device}.safetensors"), cfg, log=lines.append)
        seconds = time.perf_counter() - t0
        ends = [row["seconds"] for row in result.history]  # cumulative seconds at each epoch's end
        epoch_s = [round(b - a, 2) for a, b in zip([0.0, *ends[:-1]], ends)]
        run = {
            "device": device,
            "epochs": n_epochs,
            "chips_per_epoch": chips,
            "seconds_total": round(seconds, 1),
            "seconds_per_epoch": epoch_s,  # each: one epoch's training steps plus its validation pass
            "chips_per_s_last_epoch": round(chips / epoch_s[-1], 1),
            "val_f1": result.card.metrics.val.get("f1"),
            "log_tail": lines[-3:],
        }
        if device == "cuda":
            run["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
        out["runs"].append(run)
        print(json.dumps(run, default=str), flush=True)
    cuda, cpu = out["runs"]
    out["gpu_vs_cpu_chips_per_s"] = round(cuda["chips_per_s_last_epoch"] / cpu["chips_per_s_last_epoch"], 1)
    out["cpu_threads"] = torch.get_num_threads()
    return out


def gpu_onnx(tmp: str, encoder: str, size: int, batch: int) -> dict:
    import onnxruntime as ort

    out: dict = {"onnxruntime": ort.__version__, "providers": ort.get_available_providers()}
    if "CUDAExecutionProvider" not in out["providers"]:
        out["note"] = "no CUDAExecutionProvider in this onnxruntime build: the ONNX CUDA path was not run"
        return out
    from rts_fusion.core.features import PAPER
    from rts_fusion.models.inference import InferenceOptions, predict_stack
    from rts_fusion.models.onnx_export import export_onnx
    from rts_fusion.models.onnx_runtime import load_onnx
    from rts_fusion.models.package import save_package

    model, card = make_model(encoder, 512, 128, decoder_dim=256)
    package = os.path.join(tmp, "m.safetensors")
    save_package(package, model, card)
    onnx_path = os.path.join(tmp, "m.onnx")
    export_onnx(package, onnx_path)
    stack = os.path.join(tmp, f"stack_{size}.tif")
    if not os.path.exists(stack):
        make_stack(stack, size, PAPER)
    onnx_model = load_onnx(onnx_path)
    for tag in ("warm", "timed"):
        t0 = time.perf_counter()
        res = predict_stack(
            onnx_model, onnx_model.card, stack, os.path.join(tmp, f"onnx_{tag}.tif"), None,
            InferenceOptions(device="cuda", batch_size=batch),
        )  # fmt: skip
        seconds = time.perf_counter() - t0
    out.update({"tile": 512, "tiles": res.tiles, "end_to_end_tiles_per_s": round(res.tiles / seconds, 1)})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for gpu.json")
    parser.add_argument("--size", type=int, default=4096, help="fused stack size in px for detection")
    parser.add_argument("--encoders", nargs="+", default=["b0", "b2"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--before", help="folder holding an older version of the plugin (git archive) to compare")
    parser.add_argument("--train-chips", type=int, default=96, help="chips in the dataset and per epoch")
    parser.add_argument("--train-epochs", type=int, default=3)
    parser.add_argument("--parts", nargs="+", default=["onnx", "detect", "train"], choices=["detect", "train", "onnx"])
    args = parser.parse_args()
    import_plugin()
    import torch

    if not torch.cuda.is_available():
        print("No CUDA GPU: nothing to measure.")
        return 1
    os.makedirs(args.out, exist_ok=True)
    payload: dict = {
        "benchmark": "gpu",
        "machine": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0),
        "cpu_count": os.cpu_count(),
        "bf16": torch.cuda.is_bf16_supported(),
    }
    path = os.path.join(args.out, "gpu.json")
    with tempfile.TemporaryDirectory() as tmp:
        for part in args.parts:
            t0 = time.perf_counter()
            try:
                if part == "detect":
                    payload[part] = gpu_detect(tmp, args.size, args.encoders, args.batch, args.before)
                elif part == "train":
                    payload[part] = gpu_train(tmp, args.encoders[0], args.train_chips, args.train_epochs, 8)
                else:
                    payload[part] = gpu_onnx(tmp, args.encoders[0], min(args.size, 2048), args.batch)
            except Exception as exc:  # a device run is one shot: record the failure, go on with the next part
                payload[part] = {"error": repr(exc), "traceback": traceback.format_exc()[-3000:]}
            payload[part + "_wall_s"] = round(time.perf_counter() - t0, 1)
            with open(path, "w") as fh:
                json.dump(payload, fh, indent=2, default=str)
            print(part, "done", flush=True)
    print(json.dumps(payload, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "bench"))
    sys.exit(main())
