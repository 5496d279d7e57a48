"""The study preset's learning-rate curve beside ours, at the study's size (837 training chips, batch 8).

Writes bench/results/study_lr_curve.csv (the rate at the start of every epoch, both configurations) and
study_lr_curve.png. Run: .venv/bin/python bench/study_lr_curve.py
"""

from __future__ import annotations

import csv
import math

from _common import RESULTS, import_plugin

STUDY_TRAIN_CHIPS = 837


def main() -> None:
    import_plugin()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rts_fusion.models.train import TrainConfig, lr_curve, study_preset

    steps = math.ceil(STUDY_TRAIN_CHIPS / 8)
    configs = {"study preset (400 epochs)": study_preset(), "RTS Fusion default (50 epochs)": TrainConfig()}
    rates = {name: lr_curve(cfg, steps) for name, cfg in configs.items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "study_lr_curve.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", *rates])
        for epoch in range(400):
            w.writerow(
                [epoch + 1, *(f"{r[epoch * steps]:.6g}" if epoch * steps < len(r) else "" for r in rates.values())]
            )
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for name, r in rates.items():
        ax.plot([i / steps for i in range(len(r))], r, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title(f"OneCycle learning rate, {steps} steps per epoch (837 chips, batch 8)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "study_lr_curve.png", dpi=110)
    study = rates["study preset (400 epochs)"]
    peak = max(range(len(study)), key=study.__getitem__)
    print(f"study preset: start {study[0]:.3g}, peak {study[peak]:.3g} at step {peak} (epoch {peak / steps:.1f}), "
          f"end {study[-1]:.3g}; {len(study)} steps")  # fmt: skip


if __name__ == "__main__":
    main()
