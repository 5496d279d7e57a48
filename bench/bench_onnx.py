"""ONNX Runtime vs PyTorch, side by side in one run: end-to-end detection on CPU, and install sizes.

1. Detection: the same model (FusionSA-SegFormer as the study builds it: MiT-b0, decoder 256, 13 paper bands,
   untrained — speed does not depend on the weights) exported with `export_onnx`, run by `predict_stack` over the
   same synthetic stack with the same tiles and batch, once in PyTorch and once in ONNX Runtime, interleaved
   `--repeats` times (medians). Reports seconds, the speed-up and max |Δprobability| between the two rasters.
2. Install size: a mapping-only environment (`pip install --target` of onnxruntime + scikit-image from the
   configured registries, numpy then removed as the plugin's installer does: QGIS keeps its own) against the
   PyTorch one (the files of torch, transformers, safetensors, scikit-image and everything they require in this
   venv, numpy left out the same way).

    .venv/bin/python bench/bench_onnx.py [--size 512] [--tile 256] [--batch 4] [--repeats 2] [--no-install]

Writes bench/results/onnx.json and bench/results/onnx.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata

import numpy as np
from _common import RESULTS, import_plugin, save
from bench_detect import make_model, make_stack

SKIP = {"numpy"}  # QGIS's own build, never installed by the plugin


def _req_name(requirement: str) -> str | None:
    if ";" in requirement and "extra ==" in requirement.split(";", 1)[1]:
        return None  # optional extras are not installed by default
    m = re.match(r"[A-Za-z0-9_.\-]+", requirement)
    return m.group(0).lower().replace("_", "-") if m else None


def closure_size(roots: tuple[str, ...]) -> tuple[int, list[str]]:
    """Bytes on disk of the installed distributions `roots` and all they require (numpy left out)."""
    seen: set[str] = set()
    todo = list(roots)
    total = 0
    while todo:
        name = todo.pop()
        if name in seen or name in SKIP:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for f in dist.files or []:
            path = f.locate()
            if os.path.isfile(path):
                total += os.path.getsize(path)
        todo += [n for r in dist.requires or [] if (n := _req_name(r))]
    return total, sorted(seen)


def du(folder: str) -> int:
    """Bytes of the files under a folder."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)


def _pip_target(requirements: tuple[str, ...]) -> tuple[int, list[str]] | str:
    """Bytes a `pip install --target` of the requirements writes (numpy, GDAL, Qt pruned as the installer does)."""
    from rts_fusion.plugin.dependencies import prune_never_private

    tmp = tempfile.mkdtemp(prefix="ort_env_")
    try:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--target", tmp, *requirements]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            return f"pip failed: {done.stderr[-500:]}"
        prune_never_private(tmp)
        return du(tmp), sorted(e.split("-")[0] for e in os.listdir(tmp) if e.endswith(".dist-info"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _wheel_mb(requirement: str) -> float | None:
    """Download size of one wheel (no dependencies), in MB."""
    tmp = tempfile.mkdtemp(prefix="ort_wheel_")
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, requirement]
        if subprocess.run(cmd, capture_output=True, text=True).returncode != 0:
            return None
        return round(du(tmp) / 2**20, 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def install_sizes() -> dict:
    """Installed MB of ONNX Runtime and of PyTorch, alone and with scikit-image (what each installer choice writes)."""
    import_plugin()
    from rts_fusion.plugin.dependencies import MAPPING_REQUIREMENTS

    ort_req = MAPPING_REQUIREMENTS[0]
    rows = {}
    for key, reqs in (("onnxruntime", (ort_req,)), ("mapping_only_install", MAPPING_REQUIREMENTS)):
        got = _pip_target(reqs)
        if isinstance(got, str):
            return {"error": got}
        rows[key] = {"mb": round(got[0] / 2**20, 1), "packages": got[1]}
    for key, roots in (
        ("torch_runtime", ("torch", "transformers", "safetensors")),
        ("torch_install", ("torch", "transformers", "safetensors", "scikit-image")),
    ):
        size, packages = closure_size(roots)
        rows[key] = {"mb": round(size / 2**20, 1), "packages": packages}
    rows["onnxruntime_wheel_download_mb"] = _wheel_mb(ort_req)
    rows["runtime_ratio"] = round(rows["torch_runtime"]["mb"] / rows["onnxruntime"]["mb"], 1)
    rows["install_ratio"] = round(rows["torch_install"]["mb"] / rows["mapping_only_install"]["mb"], 1)
    return rows


def detection(size: int, tile: int, batch: int, repeats: int, folder: str) -> dict:
    """Seconds of predict_stack in PyTorch and ONNX Runtime on one stack, interleaved; max |Δprobability|."""
    import_plugin()
    import rasterio
    import torch
    from rts_fusion.core.features import PAPER
    from rts_fusion.models.inference import InferenceOptions, predict_stack
    from rts_fusion.models.onnx_export import export_onnx
    from rts_fusion.models.package import save_package
    from rts_fusion.pipeline.map_slumps import load_model

    stack = os.path.join(folder, "stack.tif")
    make_stack(stack, size, PAPER)
    model, card = make_model("b0", tile, tile // 4, decoder_dim=256)  # as the study builds it
    package = os.path.join(folder, "model.safetensors")
    save_package(package, model, card)
    t0 = time.perf_counter()
    exported = export_onnx(package, os.path.join(folder, "model.onnx"))
    export_s = time.perf_counter() - t0
    models = {"torch": load_model(package), "onnxruntime": load_model(exported.path)}
    options = InferenceOptions(device="cpu", batch_size=batch)
    times: dict[str, list[float]] = {k: [] for k in models}
    tiles = 0
    for _ in range(repeats):
        for name, loaded in models.items():
            t0 = time.perf_counter()
            res = predict_stack(loaded.model, card, stack, os.path.join(folder, f"{name}.tif"), options=options)
            times[name].append(time.perf_counter() - t0)
            tiles = res.tiles
    probabilities = []
    for name in models:
        with rasterio.open(os.path.join(folder, f"{name}.tif")) as src:
            probabilities.append(src.read(1))
    diff = float(np.abs(probabilities[0] - probabilities[1]).max())
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {
        "stack_px": size,
        "tile": tile,
        "overlap": tile // 4,
        "batch": batch,
        "tiles": tiles,
        "repeats": repeats,
        "torch_s": round(med["torch"], 2),
        "onnxruntime_s": round(med["onnxruntime"], 2),
        "speedup": round(med["torch"] / med["onnxruntime"], 2),
        "max_abs_dprob": diff,
        "export_s": round(export_s, 1),
        "export_check_max_abs_dprob": exported.max_abs_diff,
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "onnxruntime_version": __import__("onnxruntime").__version__,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-install", action="store_true", help="skip the install-size measurement")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory() as folder:
        det = detection(args.size, args.tile, args.batch, args.repeats, folder)
    sizes = {} if args.no_install else install_sizes()
    payload = {"cpus": os.cpu_count(), "load_avg_1min_at_start": round(load, 1), "detection": det, "install": sizes}
    save("onnx", payload)
    lines = [
        "# ONNX Runtime vs PyTorch (bench/bench_onnx.py)",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs shared with other work (1-min load average "
        f"{payload['load_avg_1min_at_start']} at the start); both backends measured in the same run, interleaved.",
        "",
        "## End-to-end detection on CPU (predict_stack: read, normalise, predict, blend, write)",
        "",
        f"FusionSA-SegFormer as the study builds it (MiT-b0, decoder 256, 13 bands), untrained; a {det['stack_px']}² "
        f"synthetic stack, {det['tiles']} tiles of {det['tile']} px (overlap {det['overlap']}), batch {det['batch']}, "
        f"median of {det['repeats']} runs each.",
        "",
        "| Backend | Seconds | Speed-up |",
        "|---|---|---|",
        f"| PyTorch {det['torch_version']} (eager, {det['torch_threads']} threads) | {det['torch_s']} | 1.00 |",
        f"| ONNX Runtime {det['onnxruntime_version']} (CPU provider) | {det['onnxruntime_s']} | "
        f"{det['speedup']:.2f}× |",
        "",
        f"max |Δprobability| between the two probability rasters: {det['max_abs_dprob']:.1e}. Export took "
        f"{det['export_s']} s (its own check: {det['export_check_max_abs_dprob']:.1e}).",
    ]
    if sizes and "error" not in sizes:
        lines += [
            "",
            "## Install size (files on disk; numpy, GDAL and Qt left to QGIS in every row)",
            "",
            "| Environment | MB | Packages |",
            "|---|---|---|",
        ]
        for key, label in (
            ("onnxruntime", "ONNX Runtime alone (pip --target onnxruntime)"),
            ("mapping_only_install", "Installer's *Mapping only* (pip --target onnxruntime + scikit-image)"),
            ("torch_runtime", "PyTorch runtime (torch CPU, transformers, safetensors + requirements, this venv)"),
            ("torch_install", "Installer's PyTorch CPU choice (the above + scikit-image)"),
        ):
            row = sizes[key]
            lines.append(f"| {label} | {row['mb']} | {', '.join(row['packages'])} |")
        lines += [
            "",
            f"The onnxruntime wheel is a {sizes['onnxruntime_wheel_download_mb']} MB download. PyTorch's runtime is "
            f"{sizes['runtime_ratio']}× ONNX Runtime's on disk; with scikit-image (which both choices install, and "
            f"which brings scipy) {sizes['install_ratio']}×. A CUDA build of torch is several GB more.",
        ]
    elif sizes:
        lines += ["", f"Install size not measured: {sizes['error']}"]
    (RESULTS / "onnx.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
