"""Detection benchmarks, each pair measured side by side in one run on the same machine.

1. Throughput: end-to-end `predict_stack` (read windows, normalise, batch, blend, write GeoTIFFs) against the
   bare model forward on the same number of tiles of the same size and batch (ratio = end-to-end tiles/s ÷
   forward tiles/s; 1 = no overhead). With --before REF the engine as it was at git REF is checked out into a
   temporary folder and run interleaved with today's, so before/after ratios come from one run.
2. Peak memory of `predict_stack` at two stack sizes, each in its own process (ratio; a window-by-window
   engine stays nearly flat while the pixel count grows 16-fold).
3. Polygonising one mask: RTS Fusion's `polygonize` (cleaning, metric area/perimeter, attributes) against
   GDAL's polygoniser on the same mask, as `gdal_polygonize.py` and in-process `gdal.Polygonize`.
4. On a CUDA GPU (when present): tiles/s at 512 px in bf16, bare forward and end to end.

The model is an untrained FusionSA-SegFormer (paper bands, MiT-tiny by default): speed does not depend on
the weights. The stacks are smooth synthetic 13-band rasters written window by window.

    .venv/bin/python bench/bench_detect.py [--sizes 2048 8192] [--encoder tiny] [--tile 256] [--batch 8]
        [--before REF] [--parts throughput memory polygonize cuda]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from _common import ROOT, import_package, import_plugin, save

BENCH = str(ROOT / "bench")


def make_stack(path: str, size: int, bands: tuple[str, ...]) -> None:
    """A smooth synthetic fused stack (float32, tiled, deflate), written in strips of 512 rows."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": len(bands),
        "dtype": "float32",
        "crs": "EPSG:32646",
        "transform": from_origin(500000, 3900000, 10, 10),
        "nodata": -9999.0,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 3,
        "BIGTIFF": "IF_SAFER",
    }
    cols = np.arange(size, dtype=np.float32)
    with rasterio.open(path, "w", **profile) as dst:
        for i, name in enumerate(bands, 1):
            dst.set_band_description(i, name)
        for r0 in range(0, size, 512):
            n = min(512, size - r0)
            rows = np.arange(r0, r0 + n, dtype=np.float32)[:, None]
            for i in range(len(bands)):
                data = np.sin(rows / (40 + 7 * i)) * np.cos(cols / (55 + 5 * i)) + 0.1 * i
                dst.write(data.astype(np.float32), i + 1, window=Window(0, r0, size, n))


def make_model(encoder: str, tile: int, overlap: int, decoder_dim: int = 64):
    """An untrained FusionSA-SegFormer with its card (paper bands, identity normalisation)."""
    import_plugin()
    import torch
    from rts_fusion.core.features import FEATURES, PAPER
    from rts_fusion.models.card import ModelCard, Normalization
    from rts_fusion.models.config import ModelConfig
    from rts_fusion.models.registry import build_model

    torch.manual_seed(0)
    cfg = ModelConfig("fusion_sa_segformer", len(PAPER), encoder=encoder, decoder_dim=decoder_dim)
    card = ModelCard(
        cfg,
        PAPER,
        tuple(FEATURES[b].group for b in PAPER),
        Normalization(mean=(0.0,) * len(PAPER), std=(1.0,) * len(PAPER)),
        10.0,
        tile_size=tile,
        overlap=overlap,
    )
    return build_model(cfg).eval(), card


def load_version(ref: str, folder: str, name: str) -> str:
    """The plugin package as it was at git `ref`, extracted into `folder` and importable as `name`."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return import_package(folder, name)


def detect(model, card, stack: str, out: str, device: str, batch: int, package: str = "rts_fusion"):
    """End-to-end detection with the engine of `package` (today's, or an older one); returns (seconds, tiles)."""
    inference = importlib.import_module(f"{package}.models.inference")
    t0 = time.perf_counter()
    res = inference.predict_stack(
        model,
        card,
        stack,
        out + "_prob.tif",
        out + "_mask.tif",
        inference.InferenceOptions(device=device, batch_size=batch),
    )
    return time.perf_counter() - t0, res.tiles


def bare_forward(model, card, tiles: int, device: str, batch: int) -> float:
    """Seconds for the model alone on `tiles` tiles of the card's size, in batches, with the engine's precision."""
    import torch
    from rts_fusion.models.device import amp_dtype, resolve_device

    dev = resolve_device(device)
    dtype = amp_dtype(dev)
    model = model.to(dev).eval()
    x = torch.randn(batch, len(card.bands), card.tile_size, card.tile_size, device=dev)
    done = 0
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.inference_mode(), torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
        while done < tiles:
            n = min(batch, tiles - done)
            torch.sigmoid(model(x[:n]).float()).cpu()
            done += n
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


# Peak RSS from /proc (VmHWM): getrusage's ru_maxrss survives exec, so a child would inherit the parent's peak.
MEMORY_CHILD = r"""
import json, sys
sys.path.insert(0, {bench!r})
from bench_detect import make_model, detect, vm_hwm_mb
model, card = make_model({encoder!r}, {tile}, {overlap})
base = vm_hwm_mb()
seconds, tiles = detect(model, card, {stack!r}, {out!r}, "cpu", {batch})
print(json.dumps({{"base_mb": base, "peak_mb": vm_hwm_mb(), "seconds": seconds, "tiles": tiles}}))
"""


def vm_hwm_mb() -> float:
    """This process's peak resident memory in MB (Linux /proc)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found")


def blob_mask(path: str, size: int, seed: int = 0) -> int:
    """A uint8 0/1 mask of irregular blobs (thresholded smoothed noise); returns the number of blobs."""
    import rasterio
    from rasterio.transform import from_origin
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), 6)
    mask = (field > 2.2 * field.std()).astype(np.uint8)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="uint8",
        crs="EPSG:32646",
        transform=from_origin(500000, 3900000, 10, 10),
        tiled=True,
        compress="deflate",
    ) as dst:
        dst.write(mask, 1)
    return int(ndimage.label(mask)[1])


def bench_polygonize(folder: str, size: int, repeats: int, before: str | None = None) -> dict:
    """RTS Fusion's polygonise (today's, and the package `before` when given) against GDAL's on the same mask."""
    import_plugin()
    from osgeo import gdal, ogr, osr

    mask = os.path.join(folder, "mask.tif")
    blobs = blob_mask(mask, size)

    def version(package: str):
        polygons = importlib.import_module(f"{package}.core.polygons")
        opts = polygons.PolygonizeOptions(drop_touching_nodata=False)

        def run() -> int:
            out = os.path.join(folder, f"{package}.gpkg")
            if os.path.exists(out):
                os.remove(out)
            return polygons.polygonize(mask, out, opts)

        return run

    def gdal_script() -> None:
        out = os.path.join(folder, "gdal_script.gpkg")
        if os.path.exists(out):
            os.remove(out)
        subprocess.run(["gdal_polygonize.py", "-q", mask, "-f", "GPKG", out], check=True)

    def gdal_inprocess() -> int:
        out = os.path.join(folder, "gdal_api.gpkg")
        if os.path.exists(out):
            os.remove(out)
        src = gdal.Open(mask)
        band = src.GetRasterBand(1)
        ds = ogr.GetDriverByName("GPKG").CreateDataSource(out)
        srs = osr.SpatialReference(wkt=src.GetProjection())
        layer = ds.CreateLayer("mask", srs, ogr.wkbPolygon)
        layer.CreateField(ogr.FieldDefn("DN", ogr.OFTInteger))
        gdal.Polygonize(band, band, layer, 0, [], callback=None)  # the band as its own mask: 0 is skipped
        n = layer.GetFeatureCount()
        ds = None
        return n

    runs = [("rts_fusion", version("rts_fusion"))]
    if before:
        runs.append(("before", version(before)))
    runs += [("gdal_polygonize.py", gdal_script), ("gdal.Polygonize", gdal_inprocess)]
    timings: dict[str, list[float]] = {name: [] for name, _ in runs}
    counts = {}
    for _ in range(repeats):  # interleaved, so drifts of the machine hit all alike
        for name, fn in runs:
            t0 = time.perf_counter()
            counts[name] = fn()
            timings[name].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in timings.items()}
    result = {
        "mask_size": size,
        "blobs": blobs,
        "polygons": {k: v for k, v in counts.items() if v is not None},
        "seconds": {k: round(v, 3) for k, v in med.items()},
        "ratio_vs_gdal_polygonize_py": round(med["rts_fusion"] / med["gdal_polygonize.py"], 2),
        "ratio_vs_gdal_api": round(med["rts_fusion"] / med["gdal.Polygonize"], 2),
    }
    if before:
        result["before_ratio_vs_gdal_api"] = round(med["before"] / med["gdal.Polygonize"], 2)
    return result


def bench_throughput(args, stack: str, tmp: str, before: str | None) -> dict:
    """End-to-end detection (today's engine, and `before`'s) against the bare forward, interleaved."""
    model, card = make_model(args.encoder, args.tile, args.overlap)
    bare_forward(model, card, 2 * args.batch, "cpu", args.batch)  # warm-up: first calls allocate
    engines = ["rts_fusion"] + ([before] if before else [])
    seconds: dict[str, list[float]] = {"forward": [], **{e: [] for e in engines}}
    tiles = 0
    for _ in range(args.repeats):
        for engine in engines:
            s, tiles = detect(model, card, stack, os.path.join(tmp, engine), "cpu", args.batch, engine)
            seconds[engine].append(s)
        seconds["forward"].append(bare_forward(model, card, tiles, "cpu", args.batch))
    med = {k: float(np.median(v)) for k, v in seconds.items()}
    result = {
        "stack_size": args.sizes[0],
        "tiles": tiles,
        "repeats": args.repeats,
        "end_to_end_s": round(med["rts_fusion"], 2),
        "bare_forward_s": round(med["forward"], 2),
        "end_to_end_tiles_per_s": round(tiles / med["rts_fusion"], 2),
        "bare_forward_tiles_per_s": round(tiles / med["forward"], 2),
        "throughput_ratio_end_to_end_vs_forward": round(med["forward"] / med["rts_fusion"], 3),
        "all_seconds": {k: [round(x, 2) for x in v] for k, v in seconds.items()},
    }
    if before:
        result["before_end_to_end_s"] = round(med[before], 2)
        result["before_throughput_ratio_end_to_end_vs_forward"] = round(med["forward"] / med[before], 3)
        result["speedup_vs_before"] = round(med[before] / med["rts_fusion"], 3)
    return result


def main() -> int:
    """Run the benchmarks and save bench/results/detect.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs=2, default=[2048, 8192], help="stack sizes for peak memory")
    parser.add_argument("--encoder", default="tiny")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--mask-size", type=int, default=4096)
    parser.add_argument("--before", help="git ref of an older engine to run side by side (e.g. 2ab7777)")
    parser.add_argument(
        "--parts", nargs="+", default=["throughput", "memory", "polygonize", "cuda"],
        choices=["throughput", "memory", "polygonize", "cuda"],
    )  # fmt: skip
    parser.add_argument("--output", default="detect", help="name of the results file in bench/results")
    args = parser.parse_args()
    import_plugin()
    import torch
    from rts_fusion.core.features import PAPER

    payload: dict = {"encoder": args.encoder, "tile": args.tile, "overlap": args.overlap, "batch": args.batch}
    payload["cpu_threads"] = len(os.sched_getaffinity(0))
    payload["load_average_at_start"] = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        before = None
        if args.before:
            folder = os.path.join(tmp, "before")
            os.mkdir(folder)
            before = load_version(args.before, folder, "rts_fusion_before")
            payload["before"] = args.before
        stacks = {}
        sizes = args.sizes if "memory" in args.parts else args.sizes[:1]
        for size in sizes if {"throughput", "memory", "cuda"} & set(args.parts) else []:
            stacks[size] = os.path.join(tmp, f"stack_{size}.tif")
            t0 = time.perf_counter()
            make_stack(stacks[size], size, PAPER)
            print(f"stack {size}² written in {time.perf_counter() - t0:.1f} s", flush=True)
        small = args.sizes[0]

        # 1. Throughput on the smaller stack: engine(s) vs bare forward, interleaved.
        if "throughput" in args.parts:
            payload["throughput_cpu"] = bench_throughput(args, stacks[small], tmp, before)
            print(json.dumps(payload["throughput_cpu"]), flush=True)

        # 2. Peak memory at two sizes, each in a fresh process.
        if "memory" in args.parts:
            mem = {}
            for size in args.sizes:
                code = MEMORY_CHILD.format(
                    bench=BENCH,
                    encoder=args.encoder,
                    tile=args.tile,
                    overlap=args.overlap,
                    stack=stacks[size],
                    out=os.path.join(tmp, f"mem_{size}"),
                    batch=args.batch,
                )
                res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                mem[size] = json.loads(res.stdout.strip().splitlines()[-1])
                print(f"{size}²: {mem[size]}", flush=True)
            a, b = args.sizes
            payload["memory"] = {
                "sizes": {str(k): {kk: round(vv, 1) for kk, vv in v.items()} for k, v in mem.items()},
                "pixel_ratio": (b / a) ** 2,
                "peak_ratio": round(mem[b]["peak_mb"] / mem[a]["peak_mb"], 2),
                "stack_gb_larger": round(b * b * len(PAPER) * 4 / 1e9, 2),
            }

        # 3. Polygonise vs GDAL.
        if "polygonize" in args.parts:
            payload["polygonize"] = bench_polygonize(tmp, args.mask_size, max(args.repeats, 3), before)
            print(json.dumps(payload["polygonize"]), flush=True)

        # 4. CUDA at 512 px in bf16.
        payload["cuda"] = None
        if "cuda" in args.parts and torch.cuda.is_available():
            model, card = make_model(args.encoder, 512, 128)
            detect(model, card, stacks[small], os.path.join(tmp, "warm"), "cuda", args.batch)  # warm-up
            seconds, tiles = detect(model, card, stacks[small], os.path.join(tmp, "cuda"), "cuda", args.batch)
            fwd_s = bare_forward(model, card, tiles, "cuda", args.batch)
            payload["cuda"] = {
                "device": torch.cuda.get_device_name(0),
                "dtype": "bfloat16" if torch.cuda.is_bf16_supported() else "float16",
                "tile": 512,
                "tiles": tiles,
                "end_to_end_tiles_per_s": round(tiles / seconds, 1),
                "bare_forward_tiles_per_s": round(tiles / fwd_s, 1),
            }
    payload["load_average_at_end"] = os.getloadavg()[0]
    print(save(args.output, payload))
    print(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
