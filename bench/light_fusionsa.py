"""FusionSA-SegFormer-Light vs the study's FusionSA-SegFormer, side by side in one run: time per tile and F1.

1. Time per tile on CPU: the networks as the study builds them (MiT-b0, decoder 256, 13 bands, untrained: speed
   does not depend on the weights), a batch of 256² tiles, PyTorch eager and ONNX Runtime, interleaved, medians.
2. F1 under the same budget (same settings, split and seeds; each training a few minutes at most on 2 cores, so
   the encoder is MiT "tiny" and the decoder 32 wide — the decoders differ exactly as at full size):
   - the synthetic sample scene (384 px, paper bands), scored on the held-out test blocks of the blocked split;
   - the Peel Plateau Sentinel-2 clip (../shared/data/peel_labelling_experiment, expert 01's outlines; RED,
     GREEN, BLUE, NIR, NDVI, EVI — no thermal band or DEM there): trained on the west half, scored on the east
     half, and the other way round.

    .venv/bin/python bench/light_fusionsa.py [--seeds 0] [--epochs 10] [--chips 32] [--batch 4] [--repeats 3]
        [--skip-f1]

Writes bench/results/light_fusionsa.json and bench/results/light_fusionsa.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _common import RESULTS, ROOT, import_plugin, sample_stack, save

MODELS = ("fusion_sa_segformer", "fusion_sa_segformer_light")
PEEL = ROOT.parent / "shared" / "data" / "peel_labelling_experiment"
PEEL_BANDS = ("RED", "GREEN", "BLUE", "NIR", "NDVI", "EVI")


def time_per_tile(batch: int, repeats: int, folder: str) -> dict:
    """Seconds per 256² tile of both networks (b0, decoder 256) in PyTorch and ONNX Runtime, interleaved."""
    import_plugin()
    import onnxruntime as ort
    import torch
    from rts_fusion.models.config import ModelConfig
    from rts_fusion.models.onnx_export import WithSigmoid
    from rts_fusion.models.registry import build_model, count_parameters

    torch.manual_seed(0)
    x = torch.randn(batch, 13, 256, 256)
    nets, sessions, out = {}, {}, {}
    for name in MODELS:
        nets[name] = WithSigmoid(build_model(ModelConfig(name, 13, encoder="b0", decoder_dim=256))).eval()
        path = os.path.join(folder, f"{name}.onnx")
        torch.onnx.export(
            nets[name],
            (x,),
            path,
            input_names=["input"],
            output_names=["probability"],
            opset_version=17,
            dynamo=False,
        )
        sessions[name] = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        out[name] = {"parameters": count_parameters(nets[name])}
    times = {(n, b): [] for n in MODELS for b in ("torch", "onnxruntime")}
    with torch.inference_mode():
        for n in MODELS:  # warm-up
            nets[n](x)
            sessions[n].run(None, {"input": x.numpy()})
        for _ in range(repeats):
            for n in MODELS:
                t0 = time.perf_counter()
                nets[n](x)
                times[(n, "torch")].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                sessions[n].run(None, {"input": x.numpy()})
                times[(n, "onnxruntime")].append(time.perf_counter() - t0)
    for (n, b), v in times.items():
        out[n][f"{b}_s_per_tile"] = round(float(np.median(v)) / batch, 4)
    for b in ("torch", "onnxruntime"):
        study, light = out[MODELS[0]][f"{b}_s_per_tile"], out[MODELS[1]][f"{b}_s_per_tile"]
        out[f"light_speedup_{b}"] = round(study / light, 2)
    out["batch"], out["repeats"], out["threads"] = batch, repeats, torch.get_num_threads()
    return out


def _train(stack: str, labels: str, out: str, cfg, bands=None) -> tuple:
    from rts_fusion.models.package import load_package
    from rts_fusion.models.train import train_from_stack

    t0 = time.perf_counter()
    result = train_from_stack(stack, labels, out, cfg, bands=bands)
    model, card = load_package(result.package)
    return model, card, time.perf_counter() - t0


def synthetic_f1(cfg, seeds: list[int], folder: str) -> list[dict]:
    """Test F1 (pooled, held-out blocks) of both models on the 384 px sample scene, per seed."""
    from rts_fusion.core.features import PAPER

    scene, stack = sample_stack(Path(folder), 384)  # the extended preset holds the paper bands, used by name
    rows = []
    for seed in seeds:
        for name in MODELS:
            run = replace(cfg, architecture=name, seed=seed)
            out = os.path.join(folder, f"syn_{name}_{seed}.safetensors")
            _, card, seconds = _train(stack, scene.slumps, out, run, bands=PAPER)
            rows.append(
                {
                    "data": "synthetic (384 px, paper bands)",
                    "split": "blocked, test blocks",
                    "model": name,
                    "seed": seed,
                    "f1": round(float(card.metrics.test.get("f1", float("nan"))), 4),
                    "iou": round(float(card.metrics.test.get("iou", float("nan"))), 4),
                    "train_s": round(seconds, 1),
                }
            )
            print(rows[-1], flush=True)
    return rows


def _half(src_path: str, dst_path: str, west: bool) -> str:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(src_path) as src:
        half = src.width // 2
        win = Window(0, 0, half, src.height) if west else Window(half, 0, src.width - half, src.height)
        profile = src.profile | {"width": win.width, "height": win.height, "transform": src.window_transform(win)}
        with rasterio.open(dst_path, "w", **profile) as dst:
            dst.write(src.read(window=win))
            dst.descriptions = src.descriptions
            dst.update_tags(**src.tags())
            for i in range(1, src.count + 1):
                dst.update_tags(i, **src.tags(i))
    return dst_path


def peel_f1(cfg, seeds: list[int], folder: str) -> list[dict]:
    """F1 of both models trained on one half of the Peel clip and scored on the other, both ways, per seed."""
    from rts_fusion.core.stack import FusionInputs, OpticalBands, build_fused_stack
    from rts_fusion.models.study import evaluate_area

    s2 = str(PEEL / "S2_20210821T210019_20210821T210020_T08WMA.tif")
    labels = str(PEEL / "labels" / "user01_peel.shp")
    # The clip's seven bands are B2, B3, B4, B5, B6, B7, B8 (the order of the README's list, which the bands' means
    # follow: red edge rising to NIR over tundra), so band 7 is NIR, as bench/normalisation_experiment.py reads it.
    bands = OpticalBands(blue=1, green=2, red=3, nir=7, scale=1e-4)
    stack = build_fused_stack(FusionInputs(s2, None, None, bands), PEEL_BANDS, os.path.join(folder, "peel.tif")).path
    halves = {w: _half(stack, os.path.join(folder, f"peel_{w}.tif"), w == "west") for w in ("west", "east")}
    rows = []
    for seed in seeds:
        for train_half, test_half in (("west", "east"), ("east", "west")):
            for name in MODELS:
                run = replace(cfg, architecture=name, seed=seed, split="random")
                out = os.path.join(folder, f"peel_{name}_{train_half}_{seed}.safetensors")
                model, card, seconds = _train(halves[train_half], labels, out, run)
                scores = evaluate_area(model, card, halves[test_half], labels, device="cpu")
                rows.append(
                    {
                        "data": "Peel S2 (expert 01)",
                        "split": f"train {train_half}, test {test_half}",
                        "model": name,
                        "seed": seed,
                        "f1": round(float(scores["pooled"].get("f1", float("nan"))), 4),
                        "iou": round(float(scores["pooled"].get("iou", float("nan"))), 4),
                        "train_s": round(seconds, 1),
                    }
                )
                print(rows[-1], flush=True)
    return rows


def _mean_f1(rows: list[dict], data: str, model: str) -> float:
    v = [r["f1"] for r in rows if r["data"] == data and r["model"] == model and not np.isnan(r["f1"])]
    return round(float(np.mean(v)), 4) if v else float("nan")


def verdict(summary: dict, speed: dict) -> str:
    """The issue's rule: the light model becomes the CPU default only within 0.01 F1 everywhere and ≥ 3× faster."""
    gaps = {d: round(s[MODELS[0]] - s[MODELS[1]], 4) for d, s in summary.items()}
    close = bool(gaps) and all(g <= 0.01 for g in gaps.values())
    fast = min(speed["light_speedup_torch"], speed["light_speedup_onnxruntime"]) >= 3
    gap_text = "; ".join(f"{d}: {g:+.4f}" for d, g in gaps.items()) or "not measured"
    if close and fast:
        return f"Study minus light mean F1 — {gap_text}: within 0.01 everywhere and several times faster."
    return (
        f"Study minus light mean F1 — {gap_text}. "
        + ("Not within 0.01 F1 on every data set" if not close else "Not several times faster")
        + " under this budget (one seed; per-split differences are as large as the gaps), so the study's "
        "FusionSA-SegFormer stays the default."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--chips", type=int, default=32, help="training chips per epoch")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-f1", action="store_true")
    args = parser.parse_args()
    import_plugin()
    import torch
    from rts_fusion.models.train import TrainConfig

    torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cfg = TrainConfig(
        encoder="tiny",
        decoder_dim=32,
        tile_size=64,
        epochs=args.epochs,
        batch_size=8,
        chips_per_epoch=args.chips,
        patience=0,
        device="cpu",
    )
    with tempfile.TemporaryDirectory() as folder:
        speed = time_per_tile(args.batch, args.repeats, folder)
        print(speed, flush=True)
        rows = [] if args.skip_f1 else synthetic_f1(cfg, args.seeds, folder)
        if not args.skip_f1 and PEEL.is_dir():
            rows += peel_f1(cfg, args.seeds, folder)
    datasets = sorted({r["data"] for r in rows})
    summary = {d: {m: _mean_f1(rows, d, m) for m in MODELS} for d in datasets}
    payload = {
        "cpus": os.cpu_count(),
        "load_avg_1min_at_start": round(load, 1),
        "speed": speed,
        "train_config": {k: getattr(cfg, k) for k in ("encoder", "decoder_dim", "tile_size", "epochs", "batch_size")}
        | {"chips_per_epoch": cfg.chips_per_epoch, "seeds": args.seeds},
        "rows": rows,
        "mean_f1": summary,
    }
    save("light_fusionsa", payload)
    study, light = speed[MODELS[0]], speed[MODELS[1]]
    lines = [
        "# FusionSA-SegFormer-Light vs the study's FusionSA-SegFormer (bench/light_fusionsa.py)",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs shared with other work (1-min load average "
        f"{payload['load_avg_1min_at_start']} at the start); everything measured in one run.",
        "",
        f"## Time per 256² tile on CPU (MiT-b0, decoder 256, 13 bands; batch {speed['batch']}, median of "
        f"{speed['repeats']}, interleaved)",
        "",
        "| Model | Parameters | PyTorch s/tile | ONNX Runtime s/tile |",
        "|---|---|---|---|",
        f"| FusionSA-SegFormer (study) | {study['parameters']:,} | {study['torch_s_per_tile']} | "
        f"{study['onnxruntime_s_per_tile']} |",
        f"| FusionSA-SegFormer-Light | {light['parameters']:,} | {light['torch_s_per_tile']} | "
        f"{light['onnxruntime_s_per_tile']} |",
        f"| Light speed-up | | {speed['light_speedup_torch']}× | {speed['light_speedup_onnxruntime']}× |",
        "",
        "No GPU was available to this run; GPU times are not measured.",
    ]
    if rows:
        lines += [
            "",
            f"## F1 under the same budget (MiT tiny, decoder {cfg.decoder_dim}, {cfg.tile_size} px chips, "
            f"{cfg.epochs} epochs of {cfg.chips_per_epoch} chips, seeds {', '.join(map(str, args.seeds))})",
            "",
            "| Data | Split | Seed | Study F1 | Light F1 | Study train s | Light train s |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            if r["model"] != MODELS[0]:
                continue
            other = next(
                o
                for o in rows
                if o["model"] == MODELS[1] and (o["data"], o["split"], o["seed"]) == (r["data"], r["split"], r["seed"])
            )
            lines.append(
                f"| {r['data']} | {r['split']} | {r['seed']} | {r['f1']} | {other['f1']} | {r['train_s']} | "
                f"{other['train_s']} |"
            )
        lines += ["", "Mean F1:", ""]
        lines += [f"- {d}: study {s[MODELS[0]]}, light {s[MODELS[1]]}" for d, s in summary.items()]
        lines += ["", verdict(summary, speed)]
    (RESULTS / "light_fusionsa.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
