"""The study's segmentation loss: 0.5·BCE (positive weight 5) + Dice + Focal (α 0.8, γ 2).

Dice comes in two forms. "smoothed" (ours): 1 − (2·Σpt + 1)/(Σp + Σt + 1) over the batch, which still pushes
predictions down on a batch without slump pixels. "study": segmentation-models-pytorch's binary DiceLoss as
the authors used it, 1 − 2·Σpt/max(Σp + Σt, 1e-7) over the batch and 0 on a batch without slump pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def combined_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    pos_weight: float = 5.0,
    alpha: float = 0.8,
    gamma: float = 2.0,
    dice: str = "smoothed",
) -> torch.Tensor:
    """Loss over valid pixels of (B, 1, H, W) logits and 0/1 targets; invalid pixels are ignored.

    Raises:
        ValueError: an unknown Dice form.

    """
    logits = logits.float()
    w = valid.float()
    n = w.sum().clamp(min=1.0)
    bce_px = F.binary_cross_entropy_with_logits(
        logits, target, pos_weight=torch.tensor(pos_weight, device=logits.device), reduction="none"
    )
    bce = (bce_px * w).sum() / n
    prob = torch.sigmoid(logits)
    inter = (prob * target * w).sum()
    positives = (target * w).sum()
    if dice == "smoothed":
        dice_term = 1 - (2 * inter + 1.0) / ((prob * w).sum() + positives + 1.0)
    elif dice == "study":
        dice_term = (1 - 2 * inter / ((prob * w).sum() + positives).clamp(min=1e-7)) * (positives > 0).float()
    else:
        raise ValueError(f"Unknown Dice form {dice!r}; use 'smoothed' or 'study'.")
    plain = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    focal = (a_t * (1 - p_t) ** gamma * plain * w).sum() / n
    return 0.5 * bce + dice_term + focal
