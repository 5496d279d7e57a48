"""First model comparison on the sample scene: same split and budget for every model, several seeds.

SegFormer and SA-SegFormer on RGB (the study's baselines), FusionSA-SegFormer on the paper preset (13 channels)
and on the extended preset (22), and FusionSA-SegFormer-DS (dual stream, paper preset). Scores are pooled over
the held-out test blocks of a spatially blocked split; the table gives the mean ± std over seeds.

    .venv/bin/python bench/compare_models.py [--size 768] [--seeds 0 1 2] [--epochs 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _common import import_plugin, sample_stack, save

RUNS = (
    ("SegFormer", "segformer", "rgb"),
    ("SA-SegFormer", "sa_segformer", "rgb"),
    ("FusionSA-SegFormer (paper)", "fusion_sa_segformer", "paper"),
    ("FusionSA-SegFormer (extended)", "fusion_sa_segformer", "extended"),
    ("FusionSA-SegFormer-DS (paper)", "fusion_sa_segformer_ds", "paper"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--encoder", default="tiny")
    parser.add_argument("--decoder-dim", type=int, default=64)
    parser.add_argument("--tile", type=int, default=64)
    parser.add_argument("--chips-per-epoch", type=int, default=128)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    import_plugin()
    import torch
    from rts_fusion.core.features import EXTENDED, PRESETS
    from rts_fusion.models.train import TrainConfig, train_from_stack

    tmp = Path(tempfile.mkdtemp(prefix="compare_"))
    scene, stack = sample_stack(tmp, args.size)
    print(
        f"scene {args.size} px, {scene.n_slumps} slumps; {args.encoder} encoder, decoder {args.decoder_dim}, "
        f"tile {args.tile}, {args.epochs} epochs x {args.chips_per_epoch} chips, seeds {args.seeds}, "
        f"torch threads {torch.get_num_threads()}"
    )
    results = []
    for label, arch, preset in RUNS:
        bands = PRESETS.get(preset, EXTENDED)
        per_seed = []
        for seed in args.seeds:
            cfg = TrainConfig(
                architecture=arch,
                encoder=args.encoder,
                decoder_dim=args.decoder_dim,
                tile_size=args.tile,
                epochs=args.epochs,
                chips_per_epoch=args.chips_per_epoch,
                batch_size=8,
                lr=1e-3,
                max_lr=3e-3,
                patience=args.epochs,
                seed=seed,
                device=args.device,
            )
            r = train_from_stack(
                stack, scene.slumps, str(tmp / f"{arch}_{preset}_{seed}.safetensors"), cfg, bands=bands
            )
            test = r.card.metrics.test
            per_seed.append(
                {
                    **{k: test[k] for k in ("precision", "recall", "f1", "iou")},
                    "seconds": r.card.training.train_seconds,
                    "params": r.card.training.parameters,
                }
            )
            print(f"  {label} seed {seed}: F1 {test['f1']:.3f} IoU {test['iou']:.3f} ({per_seed[-1]['seconds']} s)")
        row = {"model": label, "bands": len(bands), "params": per_seed[0]["params"]}
        for k in ("precision", "recall", "f1", "iou", "seconds"):
            vals = [s[k] for s in per_seed]
            row[k] = round(statistics.mean(vals), 4)
            row[f"{k}_std"] = round(statistics.stdev(vals), 4) if len(vals) > 1 else 0.0
        row["per_seed_f1"] = [round(s["f1"], 4) for s in per_seed]
        results.append(row)
    print(f"\n{'model':<32}{'bands':>6}{'params':>10}{'P':>8}{'R':>8}{'F1':>15}{'IoU':>15}{'s/run':>8}")
    for r in results:
        print(
            f"{r['model']:<32}{r['bands']:>6}{r['params']:>10,}{r['precision']:>8.3f}{r['recall']:>8.3f}"
            f"{r['f1']:>8.3f}±{r['f1_std']:.3f}{r['iou']:>8.3f}±{r['iou_std']:.3f}{r['seconds']:>8.1f}"
        )
    path = save(
        "compare_models",
        {
            "size": args.size,
            "seeds": args.seeds,
            "epochs": args.epochs,
            "encoder": args.encoder,
            "decoder_dim": args.decoder_dim,
            "tile": args.tile,
            "chips_per_epoch": args.chips_per_epoch,
            "results": results,
        },
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
