"""Region mapping on Dask against mapslumps, each pair measured side by side in one run on the same machine.

1. Same map: a region run in units smaller than the scene against one mapslumps run over it: max |Δprobability|,
   mask pixels that differ, polygon count and total area of each.
2. Overhead: the region run on 1 worker (1 thread) against mapslumps in this process (1 thread), the model
   loaded beforehand in both; once with one unit covering the scene (the engine's own cost) and once in units.
3. Scaling: the same region on 2 workers against 1 worker (1 thread each): throughput ratio. Beside it, the
   machine's own ceiling for this work without Dask: mapslumps over the scene in 2 plain processes at once against
   1 (1 thread each, started together after an untimed run), so the region runner's share of any shortfall shows.
4. Memory: peak resident memory per worker for the scene and for the scene repeated 2 × 2 (4× the area, same
   content and slump density, so the same threshold gives the same kind of map), same unit size, fresh clusters.

Clusters are started, each worker loads the model and each cluster maps the scene once, untimed,
before the clock starts (a long region run pays those first calls once). The model is an untrained
FusionSA-SegFormer (paper bands, MiT-tiny): speed does not depend on weights.
The scene is the synthetic sample scene (core/synthetic.py): every figure is a synthetic-scene figure.

    .venv/bin/python bench/bench_region.py [--size 512] [--unit 256] [--tile 64] [--overlap 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # mapslumps in this process: 1 thread, as each Dask worker

import numpy as np  # noqa: E402
from _common import RESULTS, import_plugin, save  # noqa: E402


def _tile_raster(path: str, repeat: int) -> str:
    """A copy of a raster with its pixels repeated `repeat` × `repeat` times (same origin and pixel size)."""
    import rasterio

    out = path.replace(".tif", f"_x{repeat}.tif")
    with rasterio.open(path) as src:
        data, profile = src.read(), src.profile
        tags = {i: src.tags(i) for i in range(1, src.count + 1)}
        descriptions, dataset_tags = src.descriptions, src.tags()
        scales, offsets, units = src.scales, src.offsets, src.units
    profile.update(width=profile["width"] * repeat, height=profile["height"] * repeat)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(np.tile(data, (1, repeat, repeat)))
        dst.scales, dst.offsets, dst.units = scales, offsets, units
        dst.update_tags(**dataset_tags)
        for i, desc in enumerate(descriptions, 1):
            if desc:
                dst.set_band_description(i, desc)
            dst.update_tags(i, **tags[i])
    return out


def scene_inputs(folder: str, size: int, seed: int = 42, repeat: int = 1):
    """The synthetic sample scene as MapInputs; with `repeat` > 1 the scene repeated repeat × repeat times.

    A repeated scene is a larger region with the same content and slump density, so the same model and threshold
    give it the same kind of map (a new scene of another size would not: the untrained model's probabilities
    depend on the scene's statistics).
    """
    from rts_fusion.core.stack import FusionInputs, OpticalBands
    from rts_fusion.core.synthetic import generate_sample_scene
    from rts_fusion.pipeline.map_slumps import MapInputs

    scene = generate_sample_scene(folder, size=size, seed=seed)
    paths = [scene.optical, scene.thermal, scene.dem, scene.temperature_series]
    if repeat > 1:
        paths = [_tile_raster(p, repeat) for p in paths]
    optical, thermal, dem, series = paths
    fusion = FusionInputs(
        optical, thermal, dem, OpticalBands(1, 2, 3, 4, 5, 6, sensor="sentinel2"), temperature_series=series
    )
    return MapInputs(fusion)


def make_package(path: str, tile: int, overlap: int, stack: str | None = None) -> str:
    """An untrained tiny FusionSA-SegFormer package (bench_detect's model; standardised with `stack`'s statistics)."""
    from dataclasses import replace

    from bench_detect import make_model
    from rts_fusion.models.card import CardMetrics, Normalization, TrainingInfo
    from rts_fusion.models.package import save_package

    model, card = make_model("tiny", tile, overlap)
    # A package needs the training record a trained model has (read back by every worker).
    card = replace(card, training=TrainingInfo(epochs_run=1, best_epoch=1), metrics=CardMetrics(val={"f1": 0.0}))
    if stack:  # standardise with the scene's own statistics, or the untrained network saturates (p = 1 everywhere)
        import rasterio

        with rasterio.open(stack) as ds:
            data = ds.read().astype(np.float64)
            valid = (data != ds.nodata).all(axis=0)
        mean = tuple(float(b[valid].mean()) for b in data)
        std = tuple(float(b[valid].std() or 1.0) for b in data)
        card = replace(card, normalization=Normalization(mean=mean, std=std))
    save_package(path, model, card)
    return path


def warm_cluster(workers: int, model: str):
    """A local cluster whose workers have imported torch and loaded the model."""
    from distributed import Client
    from rts_fusion.pipeline.region import _cached_model, local_cluster

    cluster = local_cluster(workers)
    client = Client(cluster)
    client.run(lambda: bool(_cached_model(model, "cpu")))
    return cluster, client


def read(path: str) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read(1)


def polygons(path: str) -> tuple[int, float]:
    from osgeo import ogr

    ds = ogr.Open(path)
    areas = [f["area_m2"] for f in ds.GetLayer(0)]
    return len(areas), round(float(sum(areas)), 1)


def worker_cpu_seconds(client) -> float:
    """User + system CPU seconds the cluster's worker processes have used so far, summed."""

    def used() -> float:
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    return sum(client.run(used).values())


def timed_runs(workers: int, model: str, inputs, options, tmp: str, runs: list[tuple[str, int]], warm_unit: int):
    """Region runs on one fresh, warmed cluster of `workers`: (seconds, result, worker cores busy) per (name, unit)."""
    cluster, client = warm_cluster(workers, model)
    address = cluster.scheduler_address
    try:
        run_region(inputs, model, os.path.join(tmp, f"warm{workers}"), options, warm_unit, address)
        out = []
        for name, unit in runs:
            cpu0 = worker_cpu_seconds(client)
            seconds, result = run_region(inputs, model, os.path.join(tmp, name), options, unit, address)
            out.append((seconds, result, (worker_cpu_seconds(client) - cpu0) / seconds))
        return out
    finally:
        client.close()
        cluster.close()


def run_region(inputs, model, folder, options, unit, address) -> tuple[float, object]:
    from rts_fusion.pipeline.region import RegionOptions, map_region

    t0 = time.perf_counter()
    result = map_region(inputs, model, folder, options, RegionOptions(unit_size=unit, scheduler=address))
    return time.perf_counter() - t0, result


def plain_child(job: bytes, barrier, results) -> None:
    """One plain process (no Dask): load the model, map the scene once untimed, wait for the others, map it timed.

    `job` is the pickled (inputs, model, options, folder): the plugin package must be importable before it is read.
    """
    import pickle

    import_plugin()
    import torch

    torch.set_num_threads(1)
    from rts_fusion.pipeline.map_slumps import MapOutputs, load_model, map_slumps

    inputs, model, options, folder = pickle.loads(job)
    loaded = load_model(model)
    out = MapOutputs(*(os.path.join(folder, n) for n in ("s.tif", "p.tif", "m.tif", "s.gpkg")))
    map_slumps(inputs, loaded, out, options)
    barrier.wait()
    t0 = time.perf_counter()
    map_slumps(inputs, loaded, out, options)
    results.put(time.perf_counter() - t0)


def plain_processes(k: int, inputs, model: str, options, tmp: str) -> float:
    """Seconds the slowest of `k` plain processes took to map the scene, all started together."""
    import multiprocessing
    import pickle
    import queue

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(k), ctx.Queue()
    jobs = [pickle.dumps((inputs, model, options, os.path.join(tmp, f"plain{k}_{i}"))) for i in range(k)]
    procs = [ctx.Process(target=plain_child, args=(job, barrier, results)) for job in jobs]
    for proc in procs:
        proc.start()
    seconds: list[float] = []
    while len(seconds) < k:
        try:
            seconds.append(results.get(timeout=5))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode]
            if dead:
                raise RuntimeError(f"a plain process exited with {dead[0]}") from None
    for proc in procs:
        proc.join()
    return max(seconds)


def peak_memory(size: int, unit: int, model: str, threshold: float, repeat: int = 1) -> float:
    """Peak RSS (MiB) of the busiest worker of a fresh 2-worker cluster mapping the scene repeated repeat²×."""
    bench = os.path.dirname(os.path.abspath(__file__))
    code = (
        f"import sys; sys.path.insert(0, {bench!r}); import bench_region as b; "
        f"b.memory_child({size}, {unit}, {model!r}, {threshold!r}, {repeat})"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def memory_child(size: int, unit: int, model: str, threshold: float, repeat: int = 1) -> None:
    import resource

    import_plugin()
    from rts_fusion.pipeline.map_slumps import MapOptions

    with tempfile.TemporaryDirectory() as tmp:
        inputs = scene_inputs(os.path.join(tmp, "scene"), size, repeat=repeat)
        cluster, client = warm_cluster(2, model)
        try:
            options = MapOptions(device="cpu", threshold=threshold, min_area_m2=0)
            run_region(inputs, model, os.path.join(tmp, "out"), options, unit, cluster.scheduler_address)
            peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        finally:
            client.close()
            cluster.close()
    print(max(peaks.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="scene side in pixels")
    parser.add_argument("--unit", type=int, default=256, help="unit side in pixels")
    parser.add_argument("--tile", type=int, default=64)
    parser.add_argument("--overlap", type=int, default=16)
    args = parser.parse_args()
    import_plugin()
    from rts_fusion.pipeline.map_slumps import MapOptions, MapOutputs, load_model, map_slumps

    load = os.getloadavg()
    figures: dict = {"settings": vars(args), "load_before": [round(v, 2) for v in load]}
    figures["threshold"] = None
    with tempfile.TemporaryDirectory() as tmp:
        inputs = scene_inputs(os.path.join(tmp, "scene"), args.size)
        model = make_package(os.path.join(tmp, "m.safetensors"), args.tile, args.overlap)
        single_out = MapOutputs(*(os.path.join(tmp, "single", n) for n in ("s.tif", "p.tif", "m.tif", "s.gpkg")))
        first = map_slumps(inputs, load_model(model), single_out, MapOptions(device="cpu"))
        model = make_package(os.path.join(tmp, "m2.safetensors"), args.tile, args.overlap, first.stack)
        loaded = load_model(model)
        # The untrained model's probabilities are smooth noise: its top 0.5 % of pixels make small slump-like
        # objects (as a real map has), for the polygon, overhead and memory figures.
        first = map_slumps(inputs, loaded, single_out, MapOptions(device="cpu"))
        prob = read(first.probability)
        options = MapOptions(device="cpu", threshold=float(np.quantile(prob[prob >= 0], 0.995)), min_area_m2=0)
        t0 = time.perf_counter()
        single = map_slumps(inputs, loaded, single_out, options)
        t_single = time.perf_counter() - t0

        # Each cluster maps once, untimed, first: a worker's first unit pays one-off costs (imports, the model's
        # first forward) that a long region run pays once.
        (t_one_unit, _, _), (t_units_1, units_1, cores_1) = timed_runs(
            1, model, inputs, options, tmp, [("r1a", args.size), ("r1", args.unit)], args.size
        )
        ((t_units_2, units_2, cores_2),) = timed_runs(2, model, inputs, options, tmp, [("r2", args.unit)], args.unit)
        t_plain_1 = plain_processes(1, inputs, model, options, tmp)
        t_plain_2 = plain_processes(2, inputs, model, options, tmp)

        figures["threshold"] = options.threshold
        small = peak_memory(args.size, args.unit, model, options.threshold)
        large = peak_memory(args.size, args.unit, model, options.threshold, repeat=2)
        p_single, p_region = read(single.probability), read(units_2.probability)
        valid = p_single >= 0
        m_single, m_region = read(single.mask), read(units_2.mask)
        figures["same_map"] = {
            "units": units_2.units,
            "max_abs_dprob": float(np.abs(p_single[valid] - p_region[valid]).max()),
            "mask_pixels_differing": int((m_single != m_region).sum()),
            "pixels": int(valid.sum()),
            "single_polygons_count_area_m2": polygons(single.polygons),
            "region_polygons_count_area_m2": polygons(units_2.polygons),
        }
        figures["overhead"] = {
            "mapslumps_s": round(t_single, 2),
            "region_1_worker_one_unit_s": round(t_one_unit, 2),
            "ratio_one_unit": round(t_one_unit / t_single, 3),
            "region_1_worker_units_s": round(t_units_1, 2),
            "ratio_units": round(t_units_1 / t_single, 3),
            "tiles_mapslumps": single.tiles,
            "tiles_region_units": units_1.tiles,
            "tiles_per_s_1_worker": round(units_1.tiles / t_units_1, 2),
        }
        figures["scaling"] = {
            "region_2_workers_s": round(t_units_2, 2),
            "throughput_ratio_2_vs_1": round(t_units_1 / t_units_2, 3),
            # Cores the workers kept busy (CPU seconds ÷ wall seconds): one worker's reader and writer threads
            # use part of the second core, so 2 workers can gain at most cores_2 ÷ cores_1.
            "worker_cores_busy_1": round(cores_1, 2),
            "worker_cores_busy_2": round(cores_2, 2),
            # The same engine without Dask: 2 plain processes mapping the scene at once vs 1 (the machine's ceiling).
            "plain_1_process_s": round(t_plain_1, 2),
            "plain_2_processes_s": round(t_plain_2, 2),
            "plain_throughput_ratio_2_vs_1": round(2 * t_plain_1 / t_plain_2, 3),
        }
    figures["memory"] = {
        "peak_rss_per_worker_mib_1x": round(small, 1),
        "peak_rss_per_worker_mib_4x": round(large, 1),
        "ratio_4x_vs_1x": round(large / small, 3),
    }
    figures["load_after"] = [round(v, 2) for v in os.getloadavg()]
    path = save("region", figures)
    write_markdown({**figures, "machine": json.loads(path.read_text())["machine"]})
    print(path.read_text())


def write_markdown(f: dict) -> None:
    """bench/results/region.md: the figures as a table, with the load they were measured under."""
    s, o, sc, m = f["same_map"], f["overhead"], f["scaling"], f["memory"]
    units = s["units"]
    rows = [
        (f"same map: max abs(Δp), {units} units vs one run", f"{s['max_abs_dprob']:.2e}", "float rounding"),
        (f"same map: mask pixels differing (of {s['pixels']})", s["mask_pixels_differing"], "0 (or on the threshold)"),
        (
            "same map: polygons (count, m²) single / region",
            f"{s['single_polygons_count_area_m2']} / {s['region_polygons_count_area_m2']}",
            "identical",
        ),
        (
            "overhead: 1 worker, one unit vs mapslumps",
            f"{o['ratio_one_unit']}× ({o['region_1_worker_one_unit_s']} s vs {o['mapslumps_s']} s)",
            "≤ 1.10×",
        ),
        (
            f"overhead: 1 worker, {units} units vs mapslumps",
            f"{o['ratio_units']}× ({o['region_1_worker_units_s']} s; tiles {o['tiles_region_units']} vs "
            f"{o['tiles_mapslumps']})",
            "≤ 1.10×",
        ),
        ("scaling: 2 workers vs 1 (throughput)", f"{sc['throughput_ratio_2_vs_1']}×", "≥ 1.8×"),
        (
            "ceiling without Dask: mapslumps in 2 plain processes at once vs 1 (throughput)",
            f"{sc['plain_throughput_ratio_2_vs_1']}× ({sc['plain_2_processes_s']} s vs {sc['plain_1_process_s']} s)",
            "—",
        ),
        (
            "cores the workers kept busy, 1 worker / 2 workers",
            f"{sc['worker_cores_busy_1']} / {sc['worker_cores_busy_2']}",
            "—",
        ),
        (
            "memory: peak RSS per worker, 4× area (the scene repeated 2 × 2) vs 1×",
            f"{m['ratio_4x_vs_1x']}× ({m['peak_rss_per_worker_mib_4x']} vs {m['peak_rss_per_worker_mib_1x']} MiB)",
            "≤ 1.2×",
        ),
        (f"tiles/s per CPU worker (1 thread, {f['settings']['tile']} px tiles)", o["tiles_per_s_1_worker"], "—"),
    ]
    lines = [
        "# Region mapping on Dask (bench/bench_region.py)",
        "",
        f"Synthetic sample scene, settings {f['settings']}; load average before {f['load_before']}, after "
        f"{f['load_after']} on {f.get('machine', 'this machine')} (2 cores; other jobs running make timings noisy). "
        "Measured side by side in one run.",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        "",
    ]
    (RESULTS / "region.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
