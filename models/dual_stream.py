"""FusionSA-SegFormer-DS (ours, beyond the study): optical and auxiliary bands in two MiT streams.

Each stream encodes its own band group; at every stage an attention fusion block weighs the two streams per
channel (squeeze-and-excitation over both) and merges them; the merged stages feed the study's attention
decoder, as in SA-SegFormer.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import MIT_VARIANTS, ModelConfig
from .mit import MiTEncoder
from .sa_segformer import AttentionDecoder


class AttentionFusion(nn.Module):
    """Merge two (B, C, h, w) maps: gate g = σ(MLP(GAP([a, b]))) per channel, out = g·a + (1 − g)·b + conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(8, channels // 4)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(2 * channels, hidden, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1),
            nn.Sigmoid(),
        )
        self.mix = nn.Conv2d(2 * channels, channels, kernel_size=1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        both = torch.cat([a, b], dim=1)
        g = self.gate(both)
        return g * a + (1 - g) * b + self.mix(both)


class FusionSASegFormerDS(nn.Module):
    """Two MiT streams fused per stage + AttentionDecoder. (B, C, H, W) → logits (B, 1, H, W)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if not cfg.optical_channels or not cfg.auxiliary_channels:
            raise ValueError("The dual-stream model needs both optical and auxiliary bands.")
        self.register_buffer("optical_idx", torch.tensor(cfg.optical_channels, dtype=torch.long), persistent=False)
        self.register_buffer("aux_idx", torch.tensor(cfg.auxiliary_channels, dtype=torch.long), persistent=False)
        self.optical = MiTEncoder(len(cfg.optical_channels), cfg.encoder, stages=3)
        self.auxiliary = MiTEncoder(len(cfg.auxiliary_channels), cfg.encoder, stages=3)
        stage_dims = list(MIT_VARIANTS[cfg.encoder]["hidden_sizes"][:3])
        self.fusion = nn.ModuleList(AttentionFusion(c) for c in stage_dims)
        self.decoder = AttentionDecoder(
            [cfg.in_channels, *stage_dims], cfg.decoder_dim, cfg.attn_heads, cfg.attn_downsample, "self"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        opt = self.optical(x.index_select(1, self.optical_idx))
        aux = self.auxiliary(x.index_select(1, self.aux_idx))
        stages = [fuse(a, b) for fuse, a, b in zip(self.fusion, opt, aux)]
        return self.decoder([x, *stages], x.shape[-2:])
