"""The study's training protocol as data (no torch: the Processing help reads it).

The protocol itself is models.train.study_preset; this table says where our defaults differ and why.
"""

from __future__ import annotations

# Spatial transfer between the real Peel clip's halves by normalisation (bench/results/normalisation_peel.md).
PEEL_FIGURES = (
    "F1 0.49 with training statistics, 0.48 per-scene (seeds' spreads 0.45–0.61 and 0.44–0.54), 0.12 per-chip "
    "min–max (mean over both directions and six seeds)"
)
STUDY_EPOCHS_FUSED = 400
STUDY_EPOCHS_BASELINE = 200
# What study_preset() sets, for help texts and reports: (setting, the study's value, our default and why).
STUDY_DIFFERENCES = (
    ("epochs", "400 (fused model), 200 (baselines), no early stopping",
     "50 with early stopping after 10 epochs without a better validation F1: CPU time"),
    ("learning-rate schedule", "OneCycle to 1e-3 from 1e-3/25, 10 % warm-up, linear annealing",
     "OneCycle to 1e-3 from 3e-4, 30 % warm-up, cosine annealing (PyTorch's defaults, smoother start)"),
    ("best epoch", "highest validation F1 averaged over chips (empty chips count 0), ties to the lower loss",
     "highest pooled validation F1: not swayed by chips without slumps"),
    ("augmentation", "crop aspect 0.9–1.1, quarter turns with p 0.5", "crop aspect 3/4–4/3, quarter turns always"),
    ("Dice loss", "zero on batches without slump pixels", "smoothed, also acting on batches without slumps"),
    ("split", "random chips (neighbouring chips can share ground)",
     "blocked: whole spatial blocks held out, no leakage"),
    ("input scaling", "factor bands min–max per chip; 8-bit RGB ÷ 255, then ImageNet mean/std",
     "per-band standardisation with training statistics: one scaling for the whole scene; to the unseen half of "
     "the real Peel clip it transferred as well as per-scene standardisation and far better than per-chip "
     "min–max (" + PEEL_FIGURES + "); on the synthetic three-region sample per-chip min–max did better"),
)  # fmt: skip
