"""The study's segmentation loss: 0.5·BCE (positive weight 5) + Dice + Focal (α 0.8, γ 2)."""

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
) -> torch.Tensor:
    """Loss over valid pixels of (B, 1, H, W) logits and 0/1 targets; invalid pixels are ignored."""
    logits = logits.float()
    w = valid.float()
    n = w.sum().clamp(min=1.0)
    bce_px = F.binary_cross_entropy_with_logits(
        logits, target, pos_weight=torch.tensor(pos_weight, device=logits.device), reduction="none"
    )
    bce = (bce_px * w).sum() / n
    prob = torch.sigmoid(logits)
    inter = (prob * target * w).sum()
    dice = 1 - (2 * inter + 1.0) / ((prob * w).sum() + (target * w).sum() + 1.0)
    plain = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    focal = (a_t * (1 - p_t) ** gamma * plain * w).sum() / n
    return 0.5 * bce + dice + focal
