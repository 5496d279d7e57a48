"""The study's twelve-model comparison on a synthetic scene, plus FusionSA-SegFormer on the fused stack.

The twelve architectures are trained on RGB (the study's baselines), FusionSA-SegFormer on the paper preset
(13 channels), all with the same split, budget and seeds (tiny encoders on CPU; `--size-class standard` for
the study's encoder sizes on a GPU). Scores are on the held-out test blocks, pooled and averaged per chip, with
a 95 % bootstrap interval of the pooled F1 over test chips and seeds (core.metrics.bootstrap_f1), the number of
test chips (and of those holding a slump), and how stable the ranking is: a paired bootstrap over the same seeds
and chips for every model (core.metrics.bootstrap_ranks) gives each model's chance of ranking first and its 95 %
rank range, so a ranking decided by a few chips shows. Every figure is from a synthetic scene, not the study's
data; results go to bench/results/<name>.json, .md and .html.

    .venv/bin/python bench/model_study.py [--size 1536] [--slump-density 2] [--seeds 0 1 2] [--epochs 20]

A short run (14.7 min on a 2-core machine shared with other jobs, load about 8; 44 test chips of which 5 hold a
slump, so no model learns much and no ranking can be read from it; results in model_study_quick.md):

    .venv/bin/python bench/model_study.py --size 768 --slump-density 1 --seeds 0 1 --epochs 3 \
        --chips-per-epoch 32 --architectures cnn3 segformer sa_segformer --name model_study_quick

Full-budget runs (--epochs 20 --chips-per-epoch 128 --seeds 0 1 2, this 2-core machine, synthetic scene):

- the defaults, --size 1536 --slump-density 2, all twelve (model_study.md, 42 min): 49 of 176 test chips hold a
  slump. FusionSA-SegFormer (F1 0.970, 95 % CI 0.965-0.975) and the study's SegFormer baseline (0.969,
  0.963-0.975) share ranks 1-2 (P(best) 0.73 / 0.27); no other model ranks first in any resample; FCN and
  DeepLabV3+ rank last. The two leaders over six seeds (--architectures segformer_study --seeds 0 1 2 3 4 5
  --name model_study_top2, 17.5 min): a tie, both F1 0.966, P(best) 0.47 / 0.53.
- density 1 (the plain sample scene's slumps, which crowd the shores of a few large lakes): --size 1536 with seven
  of the twelve (model_study_1536.md, 25 min) had 15 slump chips in the test area, --size 2048 with all twelve
  (model_study_2048.md, 57 min) only 7, and their rankings disagreed (FusionSA-SegFormer first in every resample
  at 1536 px, 3rd-6th at 2048 px). A larger scene does not help there (the generator runs out of sites near
  water); --slump-density spreads small lakes, and slumps beside them, over the whole scene.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import import_plugin, sample_stack, save


def main() -> None:
    """Run the study and save bench/results/model_study.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1536)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--size-class", default="tiny", choices=["tiny", "standard"])
    parser.add_argument("--tile", type=int, default=64)
    parser.add_argument("--chips-per-epoch", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--architectures", nargs="+", default=None, help="a subset of the twelve (registry names)")
    parser.add_argument("--name", default="model_study", help="results name in bench/results")
    parser.add_argument("--test-fraction", type=float, default=0.3, help="share of blocks held out for testing")
    parser.add_argument(
        "--slump-density",
        type=float,
        default=2.0,
        help="slumps per area relative to the sample scene's; above 1 the scene also gets small lakes all over it, "
        "so the slumps spread over more chips (see core.synthetic.generate_sample_scene)",
    )
    args = parser.parse_args()
    import_plugin()
    import torch
    from rts_fusion.core.features import PAPER, PRESETS
    from rts_fusion.models.registry import ARCHITECTURES, STUDY_TWELVE
    from rts_fusion.models.study import StudyRun, run_model_study, study_report
    from rts_fusion.models.train import TrainConfig

    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="model_study_"))
    scene, stack = sample_stack(tmp, args.size, slump_density=args.slump_density)
    chosen = args.architectures or STUDY_TWELVE
    runs = [StudyRun(f"{ARCHITECTURES[a][0]} [rgb]", a, PRESETS["rgb"]) for a in chosen]
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
        test_fraction=args.test_fraction,
    )
    print(
        f"scene {args.size} px, {scene.n_slumps} slumps (density {args.slump_density:g}); "
        f"{len(runs)} models × seeds {args.seeds}; "
        f"{args.size_class} encoders, tile {args.tile}, {args.epochs} epochs × {args.chips_per_epoch} chips; "
        f"torch threads {torch.get_num_threads()}",
        flush=True,
    )
    result = run_model_study(runs, base, args.seeds, str(tmp / "runs"), stack, scene.slumps, log=print)
    add_intervals(result.summary, runs, args.seeds, tmp / "runs")
    print(f"\nSYNTHETIC SCENE ({args.size} px) — not the study's data")
    seconds = time.perf_counter() - t0
    print(f"{'rank':<5}{'model':<52}{'params':>11}{'F1':>14}{'F1 95% CI':>16}{'chips':>6}{'IoU':>8}{'OA':>7}"
          f"{'F1/chip':>9}{'F1 study':>9}{'P(best)':>8}{'s/run':>7}")  # fmt: skip
    for s in result.summary:
        print(
            f"{s['rank']:<5}{s['model']:<52}{s['params']:>11,}{s['f1']:>8.3f}±{s['f1_std']:.3f}"
            f"   [{s['f1_ci95'][0]:.3f}, {s['f1_ci95'][1]:.3f}]{s['test_chips']:>6}{s['iou']:>8.3f}"
            f"{s['overall_accuracy']:>7.3f}{s['f1_per_chip']:>9.3f}{s['f1_study']:>9.3f}{s['p_best']:>8.2f}"
            f"{s['train_seconds']:>7.0f}"
        )
    report = Path(__file__).resolve().parent / "results" / f"{args.name}.html"
    study_report(str(report), result, {"size": args.size, "seeds": args.seeds, **vars(args)})
    path = save(args.name, {"data": "synthetic scene", **vars(args), "summary": result.summary, "rows": result.rows,
                            "seconds": round(seconds)})  # fmt: skip
    write_markdown(path.with_suffix(".md"), result.summary, args, seconds)
    print(f"saved {path}, {path.with_suffix('.md')} and {report} ({seconds / 60:.1f} min)")


def add_intervals(summary: list[dict], runs: list, seeds: list[int], folder: Path) -> None:
    """Per model: the 95 % bootstrap interval of the pooled test F1, the chip counts and the rank stability."""
    from rts_fusion.core.metrics import Confusion, bootstrap_f1, bootstrap_ranks
    from rts_fusion.models.package import read_card

    k = 0
    groups: dict[str, list[list[Confusion]]] = {}
    for run in runs:
        for seed in seeds:
            path = folder / f"{run.architecture}_{k}_{seed}.safetensors"
            k += 1
            if path.exists():
                chips = read_card(str(path)).metrics.test_chips
                groups.setdefault(run.label, []).append([Confusion(*c) for c in chips])
    complete = {m: g for m, g in groups.items() if len(g) == len(seeds)}
    ranks = bootstrap_ranks(complete) if len(complete) > 1 else {}
    for s in summary:
        g = groups.get(s["model"], [])
        s["f1_ci95"] = [round(v, 4) for v in bootstrap_f1(g)]
        s["test_chips"] = len(g[0]) if g else 0
        s["test_chips_with_slumps"] = sum(c.tp + c.fn > 0 for c in g[0]) if g else 0
        r = ranks.get(s["model"], {})
        s["p_best"] = round(r.get("p_best", float("nan")), 3)
        s["rank_ci95"] = [r.get("rank_low", float("nan")), r.get("rank_high", float("nan"))]


def write_markdown(path: Path, summary: list[dict], args, seconds: float) -> None:
    """The table as Markdown, headed SYNTHETIC SCENE, with the command and the machine."""
    import os
    import platform
    import sys

    lines = [
        f"# Model study — SYNTHETIC SCENE ({args.size} px, slump density {args.slump_density:g}), not the study's data",
        "",
        f"Command: `.venv/bin/python bench/model_study.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPU cores shared with other jobs; "
        f"run {seconds / 60:.1f} min.  ",
        f"{args.size_class} encoders, tile {args.tile}, {args.epochs} epochs × {args.chips_per_epoch} chips, "
        f"seeds {args.seeds}, {int(args.test_fraction * 100)} % of the blocks held out for testing.",
        "",
        "F1, IoU, OA pooled over the test chips' pixels (mean over seeds ± std); F1 95 % CI: bootstrap over seeds "
        "and chips; P(best) and rank 95 %: paired bootstrap of the ranking over the same seeds and chips; "
        "f1_study / macro_f1_study: the authors' per-chip convention; object F1: the study's per-chip object count "
        "(8-connected).",
        "",
    ]
    few = min((s["test_chips_with_slumps"] for s in summary), default=0)
    if few < 20:
        lines += [f"**Only {few} test chips hold a slump**: every score rests on them; read the intervals, not "
                  "the ranks. A larger --size does not help (the scene runs out of sites near water); a larger "
                  "--slump-density does (2 at 1536 px: 49 slump chips).", ""]  # fmt: skip
    lines += [
        "| rank | model | F1 | F1 95 % CI | P(best) | rank 95 % | test chips (with slumps) | IoU | OA | F1 study "
        "| macro F1 study | object F1 | s/run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        lo, hi = s["rank_ci95"]
        lines.append(
            f"| {s['rank']} | {s['model']} | {s['f1']:.3f} ± {s['f1_std']:.3f} | {s['f1_ci95'][0]:.3f}–"
            f"{s['f1_ci95'][1]:.3f} | {s['p_best']:.2f} | {lo:.0f}–{hi:.0f} | {s['test_chips']} "
            f"({s['test_chips_with_slumps']}) | {s['iou']:.3f} | {s['overall_accuracy']:.3f} | {s['f1_study']:.3f} | "
            f"{s['macro_f1_study']:.3f} | {s['object_f1_chips']:.3f} | {s['train_seconds']:.0f} |"
        )
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
