"""The README's main job, headless, through the plugin's Processing algorithms.

1. Create two sample scenes (one to train on, one unseen to map).
2. Fuse the training scene (paper preset) and train a small FusionSA-SegFormer once (cached in demo_output/model).
3. Map thaw slumps on the unseen scene in one run (align → detect → polygonise).
4. Evaluate the mapped slumps against the scene's outlines and print the metrics and where the outputs are.
5. Analyse the unseen scene's multi-year inventory: where slumps occur (frequency ratios), how NDVI and LST
   change inside them (Sen's slope, Mann-Kendall), and what changed between 2019 and 2024.
6. Quick experiments (small budgets; skip with --no-experiments): a three-model comparison, spatial transfer
   across the regions of a three-region scene, temporal transfer from 2019 to 2024.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_qgis():
    """A headless QgsApplication with Processing initialised."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append("/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing

    Processing.initialize()
    return app


def register_provider():
    """Import the repository root as rts_fusion and register its provider; returns the provider."""
    if "rts_fusion" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "rts_fusion", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["rts_fusion"] = module
        spec.loader.exec_module(module)
    from qgis.core import QgsApplication
    from rts_fusion.processing_provider.provider import RtsFusionProvider

    provider = RtsFusionProvider()  # keep a reference: the registry does not own the Python object
    QgsApplication.processingRegistry().addProvider(provider)
    return provider


def _rows(layer_or_id) -> list[dict]:
    from qgis.core import QgsProject, QgsVectorLayer

    layer = layer_or_id if isinstance(layer_or_id, QgsVectorLayer) else QgsProject.instance().mapLayer(layer_or_id)
    names = [f.name() for f in layer.fields()]
    return [dict(zip(names, f.attributes())) for f in layer.getFeatures()]


def inventory_analysis(processing, scene: dict, out: Path) -> None:
    """Inventory statistics, temporal trends and the 2019→2024 comparison on the scene's multi-year series."""
    years = Path(scene["YEARS_FOLDER"])
    stats = processing.run(
        "rtsfusion:inventorystats",
        {
            "SLUMPS": str(years / "slumps_2024.gpkg"),
            "DEM": scene["DEM"],
            "OPTICAL": scene["OPTICAL"],
            "OUTPUT": "memory:",
            "HTML": str(out / "inventory_statistics.html"),
        },
    )
    print(f"\nInventory statistics ({stats['N_SLUMPS']} slumps, {stats['STUDY_AREA_KM2']:.1f} km²):")
    rows = _rows(stats["OUTPUT"])
    for factor in dict.fromkeys(r["factor"] for r in rows):
        fr = [r for r in rows if r["factor"] == factor]
        most = max(fr, key=lambda r: r["slump_share"])
        top = max((r for r in fr if r["frequency_ratio"] is not None), key=lambda r: r["frequency_ratio"])
        print(
            f"  {factor:<18} most slump area in {most['class']} ({100 * most['slump_share']:.0f} %); "
            f"highest frequency ratio {top['frequency_ratio']:.2f} in {top['class']}"
        )
    rasters = sorted(str(p) for p in years.glob("ndvi_*.tif")) + sorted(str(p) for p in years.glob("lst_*.tif"))
    trends = processing.run(
        "rtsfusion:temporaltrends",
        {
            "SLUMPS": str(years / "slumps_2024.gpkg"),
            "RASTERS": rasters,
            "PER_SLUMP": False,
            "OUTPUT": "memory:",
            "HTML": str(out / "temporal_trends.html"),
        },
    )
    print("Temporal trends 2019–2024 (Sen's slope per year, Mann-Kendall p):")
    for r in _rows(trends["OUTPUT"]):
        print(f"  {r['variable']:<5} {r['zone']:<11} {r['sen_slope']:+.4f}  p={r['mk_p']:.3f}  {r['trend']}")
    change = processing.run(
        "rtsfusion:changedetect",
        {
            "BEFORE": str(years / "slumps_2019.gpkg"),
            "AFTER": str(years / "slumps_2024.gpkg"),
            "OUTPUT": str(out / "slump_changes_2019_2024.gpkg"),
        },
    )
    print(
        f"Changes 2019→2024: {change['N_NEW']} new, {change['N_GROWN']} grown, {change['N_STABLE']} stable, "
        f"{change['N_SHRUNK']} shrunk, {change['N_VANISHED']} vanished; area {change['AREA_CHANGE_M2']:+.0f} m², "
        f"mean retreat of grown slumps {change['MEAN_RETREAT_M']:.1f} m"
    )


def experiments(processing, train_scene: dict, out: Path) -> None:
    """A small model comparison, spatial transfer over three regions and temporal transfer 2019 → 2024."""
    quick = {"EPOCHS": 8, "CHIPS_PER_EPOCH": 64, "TILE_SIZE": 64, "DEVICE": 0}
    stack = str(out / "train_scene" / "fused_stack.tif")
    study = processing.run(
        "rtsfusion:modelstudy",
        {
            "STACK": stack,
            "INVENTORY": train_scene["SLUMPS"],
            "ARCHITECTURES": [0, 7, 12],  # 3-layer CNN, SegFormer, FusionSA-SegFormer
            "BAND_SETS": [0, 1],  # RGB and the paper preset
            "SEEDS": "0",
            **quick,
            "OUTPUT": "memory:",
            "HTML": str(out / "model_study.html"),
        },
    )
    print("\nModel comparison (held-out test split; quick budget):")
    for r in sorted(_rows(study["OUTPUT"]), key=lambda r: -r["f1"]):
        print(f"  {r['model']:<40} F1 {r['f1']:.3f}  per chip {r['f1_per_chip']:.3f}  IoU {r['iou']:.3f}")

    def fused(folder: Path, **scene) -> tuple[dict, str]:
        s = processing.run("rtsfusion:samplescene", {"SIZE": 384, "FOLDER": str(folder), **scene})
        fused_stack = processing.run(
            "rtsfusion:alignfuse",
            {
                "OPTICAL": s["OPTICAL"],
                "THERMAL": s["THERMAL"],
                "DEM": s["DEM"],
                "TEMPERATURE_SERIES": s["TEMPERATURE_SERIES"],
                "OUTPUT": str(folder / "fused_stack.tif"),
            },
        )["OUTPUT"]
        return s, fused_stack

    regions, regions_stack = fused(out / "regions_scene", SEED=16, REGIONS=3)
    spatial = processing.run(
        "rtsfusion:spatialtransfer",
        {
            "STACK": regions_stack,
            "INVENTORY": regions["SLUMPS"],
            "REGIONS": regions["REGIONS_LAYER"],
            "REGION_FIELD": "region",
            "BAND_SET": 1,
            **quick,
            "OUTPUT": "memory:",
        },
    )
    print("Spatial transfer (train on two regions, test on the third):")
    for r in _rows(spatial["OUTPUT"]):
        print(f"  {r['fold']:<22} F1 {r['f1']:.3f}  IoU {r['iou']:.3f}  (in-sample F1 {r['in_sample_f1']:.3f})")
    early, early_stack = fused(out / "scene_2019", SEED=6, YEAR=2019)
    late, late_stack = fused(out / "scene_2024", SEED=6, YEAR=2024)
    temporal = processing.run(
        "rtsfusion:temporaltransfer",
        {
            "TRAIN_STACK": early_stack,
            "TRAIN_INVENTORY": early["SLUMPS"],
            "TEST_STACKS": [late_stack],
            "TEST_INVENTORIES": [late["SLUMPS"]],
            "LABELS": "2019,2024",
            "BAND_SET": 1,
            **quick,
            "OUTPUT": "memory:",
        },
    )
    print("Temporal transfer:")
    for r in _rows(temporal["OUTPUT"]):
        print(f"  {r['fold']:<28} F1 {r['f1']:.3f}  IoU {r['iou']:.3f}")


def main() -> int:
    """Run the demo; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "demo_output"), help="output folder")
    parser.add_argument("--size", type=int, default=512, help="sample scene size in pixels")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (cached model reused)")
    parser.add_argument("--retrain", action="store_true", help="train again even if a cached model exists")
    parser.add_argument("--no-experiments", action="store_true", help="skip the quick experiments (step 6)")
    args = parser.parse_args()
    app = start_qgis()
    provider = register_provider()
    import processing

    out = Path(args.out)
    t0 = time.perf_counter()
    train_scene = processing.run(
        "rtsfusion:samplescene", {"SIZE": args.size, "SEED": 42, "FOLDER": str(out / "train_scene")}
    )
    map_scene = processing.run(
        "rtsfusion:samplescene", {"SIZE": args.size, "SEED": 7, "MULTIYEAR": True, "FOLDER": str(out / "scene")}
    )
    print(f"Sample scenes: {train_scene['N_SLUMPS']} slumps to train on, {map_scene['N_SLUMPS']} to map")

    model = out / "model" / "fusion_sa_segformer_tiny.safetensors"
    if args.retrain or not model.exists():
        stack = processing.run(
            "rtsfusion:alignfuse",
            {
                "OPTICAL": train_scene["OPTICAL"],
                "THERMAL": train_scene["THERMAL"],
                "DEM": train_scene["DEM"],
                "TEMPERATURE_SERIES": train_scene["TEMPERATURE_SERIES"],
                "PRESET": 0,
                "OUTPUT": str(out / "train_scene" / "fused_stack.tif"),
            },
        )["OUTPUT"]
        model.parent.mkdir(parents=True, exist_ok=True)
        trained = processing.run(
            "rtsfusion:train",
            {
                "STACK": stack,
                "INVENTORY": train_scene["SLUMPS"],
                "ARCHITECTURE": 0,
                "ENCODER": 6,
                "DECODER_DIM": 64,
                "TILE_SIZE": 64,
                "EPOCHS": args.epochs,
                "BATCH_SIZE": 8,
                "CHIPS_PER_EPOCH": 128,
                "LEARNING_RATE": 1e-3,
                "DEVICE": 0,
                "SEED": 1,
                "OUTPUT": str(model),
                "REPORT": str(out / "model" / "training_report.html"),
            },
        )
        print(
            f"Trained FusionSA-SegFormer (MiT-tiny): best epoch {trained['BEST_EPOCH']}, validation F1 "
            f"{trained['VAL_F1']:.3f}, IoU {trained['VAL_IOU']:.3f}, test F1 {trained['TEST_F1']:.3f}"
        )
    else:
        print(f"Using the cached model {model} (--retrain to train again)")

    mapped = processing.run(
        "rtsfusion:mapslumps",
        {
            "MODEL": str(model),
            "OPTICAL": map_scene["OPTICAL"],
            "THERMAL": map_scene["THERMAL"],
            "DEM": map_scene["DEM"],
            "TEMPERATURE_SERIES": map_scene["TEMPERATURE_SERIES"],
            "MIN_AREA": 1000,
            "STACK": str(out / "fused_stack.tif"),
            "PROBABILITY": str(out / "slump_probability.tif"),
            "MASK": str(out / "slump_mask.tif"),
            "POLYGONS": str(out / "thaw_slumps.gpkg"),
        },
    )
    ev = processing.run(
        "rtsfusion:evaluate",
        {
            "PREDICTION": mapped["POLYGONS"],
            "TRUTH": map_scene["SLUMPS"],
            "REFERENCE": mapped["STACK"],
            "CHIP_SIZE": 128,
            "OUTPUT": "memory:",
            "MATCHES": str(out / "evaluation_matches.gpkg"),
            "CSV": str(out / "evaluation.csv"),
            "HTML": str(out / "evaluation.html"),
        },
    )
    from qgis.core import QgsProject, QgsVectorLayer

    table = ev["OUTPUT"] if isinstance(ev["OUTPUT"], QgsVectorLayer) else QgsProject.instance().mapLayer(ev["OUTPUT"])
    print(f"\nMapped {mapped['COUNT']} thaw slumps on the unseen scene ({map_scene['N_SLUMPS']} true ones).")
    print(f"{'metric':<34}{'pooled':>10}{'per chip':>10}")
    for f in table.getFeatures():
        if f["metric"] == "warning":
            print(f"Warning: {f['note']}")
            continue
        # A score that has no value under one convention (NaN in the table) is a NULL field: left blank.
        pooled, per_chip = (f"{v:>10.3f}" if isinstance(v, float) else " " * 10 for v in (f["pooled"], f["per_chip"]))
        print(f"{f['metric']:<34}{pooled}{per_chip}")
    inventory_analysis(processing, map_scene, out)
    if not args.no_experiments:
        experiments(processing, train_scene, out)
    print("\nOutputs:")
    for label, path in (
        ("fused stack", mapped["STACK"]),
        ("probability", mapped["PROBABILITY"]),
        ("mask", mapped["MASK"]),
        ("slump polygons", mapped["POLYGONS"]),
        ("evaluation report", ev["HTML"]),
        ("matched polygons", ev["MATCHES"]),
        ("model package", str(model)),
        ("inventory report", str(out / "inventory_statistics.html")),
        ("trends report", str(out / "temporal_trends.html")),
        ("slump changes", str(out / "slump_changes_2019_2024.gpkg")),
        ("model comparison", str(out / "model_study.html")),
    ):
        print(f"  {label:<18} {path}")
    print(f"Done in {time.perf_counter() - t0:.0f} s.")
    del provider
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
