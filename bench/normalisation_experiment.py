"""Which input normalisation transfers best to unseen ground: a leave-one-region-out experiment.

Three normalisations, each scored by spatial transfer (train on the other regions, test on the held-out one):

- **training statistics** ("standardize", our default): every band standardised with the mean/std of the
  training area, the same numbers for every tile of every scene the model is applied to;
- **per-chip min–max** ("study", the authors' data.py): each factor band min–max scaled per chip, RGB jointly
  min–max scaled per chip, then ImageNet mean/std;
- **per-scene standardisation**: the training regions standardised by their own statistics (the same model as
  the first), the held-out region by *its own* mean/std, computed over its valid pixels before prediction.

Two cases: the synthetic sample scene with REGIONS strips of different relief and surface (fused, extended
preset), and the real Peel Plateau clip (Sentinel-2, no thermal or DEM: an optical preset RED, GREEN, BLUE,
NIR, NDVI) cut into a west and an east half, labelled by the slumps at least half of the twelve experts drew.
Tiny encoders, short budgets: differences within the seeds' spread are not evidence.

    .venv/bin/python bench/normalisation_experiment.py [--seeds 0 1] [--epochs 10] [--size 384] [--regions 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _common import RESULTS, import_plugin, sample_stack, save

PEEL = Path(__file__).resolve().parents[2] / "shared" / "data" / "peel_labelling_experiment"
PEEL_S2 = "S2_20210821T210019_20210821T210020_T08WMA.tif"
# Bands 1–3 are B2, B3, B4 in both readings of the clip's README; band 7 is B8 (NIR) in the order
# B2, B3, B4, B5, B6, B7, B8 that the seven bands' means follow (red edge rising to NIR over tundra).
PEEL_BANDS = {"blue": 1, "green": 2, "red": 3, "nir": 7, "scale": 1e-4}
PEEL_FEATURES = ("RED", "GREEN", "BLUE", "NIR", "NDVI")
METHODS = ("training statistics", "per-chip min–max (study)", "per-scene standardisation")


def synthetic_case(folder: Path, size: int, regions: int, seed: int = 42, slump_density: float = 1.0) -> dict:
    """The multi-region sample scene fused with the extended preset."""
    scene, stack = sample_stack(folder, size, seed, regions, slump_density)
    name = f"synthetic, {regions} regions, {size} px" + (
        f", slump density {slump_density:g}" if slump_density != 1 else ""
    )
    return {"name": name, "stack": stack, "inventory": scene.slumps,
            "regions": str(Path(scene.slumps).parent / "regions.gpkg"), "field": "region"}  # fmt: skip


def peel_case(folder: Path, min_votes: int = 6) -> dict | None:
    """The Peel clip: optical stack, consensus labels of the twelve experts, west and east halves."""
    import rasterio
    from rasterio.features import shapes
    from rts_fusion.core.grid import TargetGrid
    from rts_fusion.core.labels import rasterize_polygons
    from rts_fusion.core.stack import FusionInputs, OpticalBands, build_fused_stack
    from rts_fusion.core.vector import PolygonRecord, write_polygons

    if not (PEEL / PEEL_S2).exists():
        return None
    stack = build_fused_stack(
        FusionInputs(str(PEEL / PEEL_S2), None, None, OpticalBands(**PEEL_BANDS)), PEEL_FEATURES,
        str(folder / "peel_stack.tif"),
    ).path  # fmt: skip
    with rasterio.open(stack) as ds:
        grid = TargetGrid(ds.crs.to_wkt(), tuple(ds.transform)[:6], ds.width, ds.height)
        transform = ds.transform
    experts = sorted((PEEL / "labels").glob("user*_peel.shp"))
    votes = sum(rasterize_polygons(str(p), grid).astype(np.int32) for p in experts)
    consensus = (votes >= min_votes).astype(np.uint8)
    records = [
        PolygonRecord([tuple(pt) for pt in geom["coordinates"][0]], {"votes": min_votes},
                      tuple([tuple(pt) for pt in ring] for ring in geom["coordinates"][1:]))
        for geom, _ in shapes(consensus, mask=consensus > 0, transform=transform)
    ]  # fmt: skip
    inventory = str(folder / "peel_consensus.gpkg")
    write_polygons(inventory, "slumps", grid.crs_wkt, records, fields=[("votes", 0)])
    x0, y0 = transform * (0, grid.height)
    x1, y1 = transform * (grid.width, 0)
    xm = (x0 + x1) / 2
    halves = [
        PolygonRecord([(a, y0), (b, y0), (b, y1), (a, y1), (a, y0)], {"region": name})
        for name, a, b in (("west", x0, xm), ("east", xm, x1))
    ]
    regions = str(folder / "peel_halves.gpkg")
    write_polygons(regions, "halves", grid.crs_wkt, halves, fields=[("region", "")])
    labels = f"{len(records)} consensus slumps ({int(consensus.sum())} px, ≥ {min_votes} of {len(experts)} experts)"
    return {"name": f"real Peel clip (S2, {grid.width} × {grid.height} px), west/east halves", "stack": stack,
            "inventory": inventory, "regions": regions, "field": "region", "labels": labels}  # fmt: skip


def own_statistics(card, stack: str, inventory: str, aoi: str):
    """The held-out area's slump pixels, and a card standardising with the area's own band mean/std (per scene)."""
    from rts_fusion.models.card import Normalization
    from rts_fusion.models.importance import read_area

    x, valid, truth, _ = read_area(card, stack, inventory, aoi, require_truth=False)
    px = x[:, valid]  # (C, n) valid pixels of the held-out area
    std = np.where(px.std(axis=1) > 0, px.std(axis=1), 1.0)
    norm = Normalization("standardize", tuple(map(float, px.mean(axis=1))), tuple(map(float, std)))
    return int((truth.astype(bool) & valid).sum()), replace(card, normalization=norm)


def run_case(case: dict, cfg, seeds: list[int], work: Path, log) -> list[dict]:
    """Per seed, fold and normalisation: the held-out region's scores."""
    from rts_fusion.models.package import load_package
    from rts_fusion.models.study import evaluate_area, split_regions
    from rts_fusion.models.train import train_from_stack

    folds = split_regions(case["regions"], case["field"], str(work))
    rows = []
    for seed in seeds:
        for k, (name, held_out, others) in enumerate(folds):
            for method, norm in (("training statistics", "standardize"), ("per-chip min–max (study)", "study")):
                out = str(work / f"{norm}_{seed}_{k}.safetensors")
                t0 = time.perf_counter()
                train_from_stack(case["stack"], case["inventory"], out, replace(cfg, seed=seed, normalization=norm),
                                 aoi_path=others)  # fmt: skip
                model, card = load_package(out)
                truth_px, own = own_statistics(card, case["stack"], case["inventory"], held_out)
                cards = [(method, card)] + ([(METHODS[2], own)] if norm == "standardize" else [])
                for label, c in cards:
                    s = evaluate_area(model, c, case["stack"], case["inventory"], held_out, cfg.device)
                    row = {"case": case["name"], "seed": seed, "held_out": name, "truth_px": truth_px,
                           "normalisation": label,
                           "f1": s["pooled"]["f1"], "iou": s["pooled"]["iou"],
                           "overall_accuracy": s["pooled"]["overall_accuracy"],
                           "f1_study": s["study"].get("f1", float("nan")),
                           "object_f1_chips": s["objects"].get("f1", float("nan")),
                           "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
                    rows.append(row)
                    oa = row["overall_accuracy"]
                    log(f"  seed {seed}, held out {name}, {label}: F1 {row['f1']:.3f}, OA {oa:.3f}")
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Per case and normalisation: mean over folds and seeds, and the spread of the per-seed means.

    A held-out region without a slump pixel has no F1 to speak of (any detection there scores 0): it counts in
    the overall accuracy (its false alarms) but not in the slump scores.
    """
    out = []
    for case in dict.fromkeys(r["case"] for r in rows):
        for method in METHODS:
            group = [r for r in rows if r["case"] == case and r["normalisation"] == method]
            scored = [r for r in group if r["truth_px"] > 0]
            if not scored:
                continue
            per_seed = [statistics.mean(r["f1"] for r in scored if r["seed"] == s)
                        for s in dict.fromkeys(r["seed"] for r in scored)]  # fmt: skip
            out.append({
                "case": case, "normalisation": method, "runs": len(group), "runs_with_slumps": len(scored),
                **{k: round(statistics.mean(r[k] for r in scored), 4) for k in ("f1", "iou", "f1_study",
                                                                                  "object_f1_chips")},
                "overall_accuracy": round(statistics.mean(r["overall_accuracy"] for r in group), 4),
                "f1_seed_min": round(min(per_seed), 4), "f1_seed_max": round(max(per_seed), 4),
            })  # fmt: skip
    return out


def write_markdown(path: Path, summary: list[dict], rows: list[dict], cases: list[dict], args, seconds: float) -> None:
    """bench/results/normalisation.md: the table per case, the settings and the machine."""
    import platform

    lines = [
        "# Normalisation experiment: spatial transfer (leave one region out)",
        "",
        f"Command: `.venv/bin/python bench/normalisation_experiment.py {' '.join(args.argv)}`  ",
        f"Machine: {platform.platform()}, {args.cpus} CPU cores shared with other engineers' jobs (timings noisy); "
        f"whole run {seconds / 60:.1f} min.  ",
        f"Training: MiT-tiny FusionSA-SegFormer, tile {args.tile}, {args.epochs} epochs × {args.chips} chips, "
        f"seeds {args.seeds}; scored on the held-out region at threshold 0.4.",
        "",
        "F1/IoU/OA pooled over the held-out region's pixels; f1_study the authors' per-chip convention; "
        "object_f1_chips the study's per-chip object F1 (8-connected). F1 seed range: the lowest and highest "
        "per-seed mean over folds. A held-out region without slump pixels counts in OA (its false alarms) but not "
        "in the slump scores (F1 there is 0 whatever the model does).",
        "",
    ]
    for case in cases:
        lines += [f"## {case['name'].upper() if case['name'].startswith('synthetic') else case['name']}", ""]
        if case.get("labels"):
            lines += [f"Labels: {case['labels']}.", ""]
        lines += ["| normalisation | F1 | F1 seed range | IoU | OA | F1 (study, per chip) | object F1 (chips) |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for s in (s for s in summary if s["case"] == case["name"]):
            lines.append(f"| {s['normalisation']} | {s['f1']:.3f} | {s['f1_seed_min']:.3f}–{s['f1_seed_max']:.3f} | "
                         f"{s['iou']:.3f} | {s['overall_accuracy']:.3f} | {s['f1_study']:.3f} | "
                         f"{s['object_f1_chips']:.3f} |")  # fmt: skip
        lines += ["", "Per fold:", "", "| seed | held out (slump px) | normalisation | F1 | OA |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for r in (r for r in rows if r["case"] == case["name"]):
            lines.append(f"| {r['seed']} | {r['held_out']} ({r['truth_px']}) | {r['normalisation']} | "
                         f"{r['f1']:.3f} | {r['overall_accuracy']:.3f} |")  # fmt: skip
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    """Run both cases and write bench/results/normalisation.md and .json."""
    import os
    import sys

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--chips", type=int, default=64, help="training chips per epoch")
    parser.add_argument("--tile", type=int, default=64)
    parser.add_argument("--size", type=int, default=384, help="synthetic scene side (px)")
    parser.add_argument("--regions", type=int, default=3)
    parser.add_argument("--slump-density", type=float, default=1.0, help="of the synthetic scene (see model_study)")
    parser.add_argument("--no-peel", action="store_true")
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--name", default="normalisation", help="results name in bench/results")
    args = parser.parse_args()
    args.argv, args.cpus = sys.argv[1:], os.cpu_count()
    import_plugin()
    from rts_fusion.models.train import TrainConfig

    cfg = TrainConfig(encoder="tiny", decoder_dim=64, tile_size=args.tile, epochs=args.epochs,
                      chips_per_epoch=args.chips, batch_size=8, lr=1e-3, max_lr=3e-3, patience=args.epochs,
                      device="cpu", split="random")  # fmt: skip
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="normalisation_"))
    cases = (
        [] if args.no_synthetic else [synthetic_case(tmp, args.size, args.regions, slump_density=args.slump_density)]
    )
    if not args.no_peel:
        peel = peel_case(tmp)
        if peel is None:
            print(f"{PEEL} is absent: the real case is skipped")
        else:
            cases.append(peel)
    rows = []
    for i, case in enumerate(cases):
        print(case["name"], flush=True)
        work = tmp / f"case_{i}"
        work.mkdir()
        rows += run_case(case, cfg, args.seeds, work, lambda m: print(m, flush=True))
    summary = summarise(rows)
    seconds = time.perf_counter() - t0
    for s in summary:
        print(json.dumps(s))
    write_markdown(RESULTS / f"{args.name}.md", summary, rows, cases, args, seconds)
    save(args.name, {"data": [c["name"] for c in cases], "settings": {k: v for k, v in vars(args).items()},
                           "summary": summary, "rows": rows, "seconds": round(seconds)})  # fmt: skip
    print(f"saved {RESULTS / args.name}.md in {seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
