"""SA-SegFormer and its kin: a MiT encoder with the study's multi-scale-sum, attention decoder.

FusionSA-SegFormer is this network on the stacked multi-source input (13 bands in the study): pixel-level
fusion happens in the shared encoder, feature-level fusion in the multi-scale sum and the decoder attention.
CA-SegFormer swaps self-attention for cross-attention to the deepest projected stage. The study's
"SegFormer" baseline is the same decoder without the attention step. FusionSA-SegFormer-Light (ours, for CPUs)
keeps all of this but fuses and runs the head at 1/4 of the input size and upsamples the logits, as SegFormer's
own head does: the full-resolution 256-channel maps and 3×3 convolution are what make the study's decoder slow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import CrossAttention2d, SelfAttention2d
from .config import MIT_VARIANTS, ModelConfig
from .mit import MiTEncoder


class AttentionDecoder(nn.Module):
    """Project, upsample and sum multi-scale features; refine with attention; one logit per pixel.

    Inputs are the raw input (a full-resolution "stage 0") and encoder stages 1–3. Each is projected by a
    1×1 conv to `dim` channels, upsampled to the input size and summed: (B, dim, H, W). The sum is
    downsampled by `downsample`, passed through multi-head attention with a residual connection and
    BatchNorm, upsampled and added back (skipped with attention "none", the study's SegFormer baseline).
    A head of 3×3 conv, BN, ReLU and 1×1 conv gives (B, 1, H, W).

    With `fuse_stride` s > 1 the sum, the attention's residual and the head live at (H/s, W/s) instead (the raw
    input is resized to it before its projection) and the logits are upsampled bilinearly to (H, W).
    """

    def __init__(
        self, in_dims: list[int], dim: int, heads: int, downsample: int, attention: str, fuse_stride: int = 1
    ) -> None:
        super().__init__()
        self.fuse_stride = max(1, int(fuse_stride))
        if attention not in ("self", "cross", "none"):
            raise ValueError(f"attention must be 'self', 'cross' or 'none', not {attention!r}")
        self.projections = nn.ModuleList(nn.Conv2d(c, dim, kernel_size=1) for c in in_dims)
        self.attention_kind = attention
        if attention != "none":
            self.attention = SelfAttention2d(dim, heads) if attention == "self" else CrossAttention2d(dim, heads)
            self.norm = nn.BatchNorm2d(dim)
        self.downsample = max(1, int(downsample))
        self.head = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=3, padding=1),
            nn.BatchNorm2d(dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim, 1, kernel_size=1),
        )

    def forward(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        out_size = size
        if self.fuse_stride > 1:  # fuse at (H/s, W/s); the raw input is resized before its 1×1 projection
            size = (max(1, -(-size[0] // self.fuse_stride)), max(1, -(-size[1] // self.fuse_stride)))
            features = [F.interpolate(features[0], size=size, mode="bilinear", align_corners=False), *features[1:]]
        projected = [proj(f) for proj, f in zip(self.projections, features)]
        fused = sum(F.interpolate(p, size=size, mode="bilinear", align_corners=False) for p in projected)
        if self.attention_kind == "none":
            return self._logits(fused, out_size)
        # The attention runs at 1/downsample of the input size whatever the fusion size.
        small = (max(1, out_size[0] // self.downsample), max(1, out_size[1] // self.downsample))
        q = F.interpolate(fused, size=small, mode="bilinear", align_corners=False)  # (B, dim, H/8, W/8)
        if self.attention_kind == "self":
            attended = self.attention(q)
        else:
            context = F.interpolate(projected[-1], size=small, mode="bilinear", align_corners=False)
            attended = self.attention(q, context)
        refined = self.norm(q + attended)
        fused = fused + F.interpolate(refined, size=size, mode="bilinear", align_corners=False)
        return self._logits(fused, out_size)

    def _logits(self, fused: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        logits = self.head(fused)  # (B, 1, H/s, W/s)
        if logits.shape[-2:] != out_size:
            logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
        return logits


class SASegFormer(nn.Module):
    """MiT encoder (stages 1–3) + AttentionDecoder. (B, C, H, W) → logits (B, 1, H, W).

    `fuse_stride` 4 is the light variant: decoder fusion and head at 1/4 of the input size.
    """

    def __init__(self, cfg: ModelConfig, attention: str = "self", fuse_stride: int = 1) -> None:
        super().__init__()
        self.encoder = MiTEncoder(cfg.in_channels, cfg.encoder, stages=3, block_norm_eps=cfg.block_norm_eps)
        stage_dims = list(MIT_VARIANTS[cfg.encoder]["hidden_sizes"][:3])
        self.decoder = AttentionDecoder(
            [cfg.in_channels, *stage_dims], cfg.decoder_dim, cfg.attn_heads, cfg.attn_downsample, attention, fuse_stride
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stages = self.encoder(x)
        return self.decoder([x, *stages], x.shape[-2:])
