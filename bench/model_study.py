"""The study's twelve-model comparison on the sample scene, plus FusionSA-SegFormer on the fused stack.

The twelve architectures are trained on RGB (the study's baselines), FusionSA-SegFormer on the paper preset
(13 channels), all with the same split, budget and seeds (tiny encoders on CPU; `--size-class standard` for
the study's encoder sizes on a GPU). Scores are on the held-out test blocks, pooled and averaged per chip.

    .venv/bin/python bench/model_study.py [--size 768] [--seeds 0 1 2] [--epochs 20] [--size-class tiny]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import import_plugin, sample_stack, save


def main() -> None:
    """Run the study and save bench/results/model_study.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--size-class", default="tiny", choices=["tiny", "standard"])
    parser.add_argument("--tile", type=int, default=64)
    parser.add_argument("--chips-per-epoch", type=int, default=128)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    import_plugin()
    import torch
    from rts_fusion.core.features import PAPER, PRESETS
    from rts_fusion.models.registry import ARCHITECTURES, STUDY_TWELVE
    from rts_fusion.models.study import StudyRun, run_model_study, study_report
    from rts_fusion.models.train import TrainConfig

    tmp = Path(tempfile.mkdtemp(prefix="model_study_"))
    scene, stack = sample_stack(tmp, args.size)
    runs = [StudyRun(f"{ARCHITECTURES[a][0]} [rgb]", a, PRESETS["rgb"]) for a in STUDY_TWELVE]
    runs.append(StudyRun("FusionSA-SegFormer [paper]", "fusion_sa_segformer", PAPER))
    base = TrainConfig(
        encoder=args.size_class,
        decoder_dim=64,
        tile_size=args.tile,
        epochs=args.epochs,
        chips_per_epoch=args.chips_per_epoch,
        batch_size=8,
        lr=1e-3,
        max_lr=3e-3,
        patience=args.epochs,
        device=args.device,
    )
    print(
        f"scene {args.size} px, {scene.n_slumps} slumps; {len(runs)} models × seeds {args.seeds}; "
        f"{args.size_class} encoders, tile {args.tile}, {args.epochs} epochs × {args.chips_per_epoch} chips; "
        f"torch threads {torch.get_num_threads()}",
        flush=True,
    )
    result = run_model_study(runs, base, args.seeds, str(tmp / "runs"), stack, scene.slumps, log=print)
    print(f"\n{'rank':<5}{'model':<52}{'params':>11}{'F1':>14}{'IoU':>14}{'P':>7}{'R':>7}{'F1/chip':>9}{'s/run':>7}")
    for s in result.summary:
        print(
            f"{s['rank']:<5}{s['model']:<52}{s['params']:>11,}{s['f1']:>8.3f}±{s['f1_std']:.3f}"
            f"{s['iou']:>8.3f}±{s['iou_std']:.3f}{s['precision']:>7.3f}{s['recall']:>7.3f}"
            f"{s['f1_per_chip']:>9.3f}{s['train_seconds']:>7.0f}"
        )
    report = Path(__file__).resolve().parent / "results" / "model_study.html"
    study_report(str(report), result, {"size": args.size, "seeds": args.seeds, **vars(args)})
    path = save("model_study", {**vars(args), "summary": result.summary, "rows": result.rows})
    print(f"saved {path} and {report}")


if __name__ == "__main__":
    main()
