"""Plain SegFormer: transformers' MiT encoder with its all-MLP decoder, one logit per pixel, any bands."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .mit import segformer_config


class SegFormer(nn.Module):
    """(B, C, H, W) → logits (B, 1, H, W); the all-MLP head predicts at H/4 and is upsampled bilinearly."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        from transformers import SegformerForSemanticSegmentation

        config = segformer_config(cfg.in_channels, cfg.encoder, num_labels=1, decoder_hidden_size=cfg.decoder_dim)
        self.model = SegformerForSemanticSegmentation(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(pixel_values=x, return_dict=True).logits  # (B, 1, H/4, W/4)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
