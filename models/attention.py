"""Multi-head self- and cross-attention over the spatial positions of a feature map."""

from __future__ import annotations

import torch
from torch import nn


class _SpatialAttention(nn.Module):
    """Shared machinery: 1×1-conv projections, heads over flattened positions, output projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"Attention width {dim} must be divisible by the number of heads {heads}.")
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.proj = nn.Conv2d(dim, dim, kernel_size=1, bias=False)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) → (B, heads, H·W, C/heads)
        b, c, h, w = t.shape
        return t.reshape(b, self.heads, c // self.heads, h * w).transpose(2, 3)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        b, c, h, w = shape
        out = torch.nn.functional.scaled_dot_product_attention(self._split(q), self._split(k), self._split(v))
        # (B, heads, H·W, C/heads) → (B, C, H, W)
        return self.proj(out.transpose(2, 3).reshape(b, c, h, w))


class SelfAttention2d(_SpatialAttention):
    """Every position attends to every position of the same map."""

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__(dim, heads)
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=1)
        return self._attend(q, k, v, x.shape)


class CrossAttention2d(_SpatialAttention):
    """Positions of a query map attend to the positions of a context map of the same width."""

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__(dim, heads)
        self.q = nn.Conv2d(dim, dim, kernel_size=1, bias=False)
        self.kv = nn.Conv2d(dim, dim * 2, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        k, v = self.kv(context).chunk(2, dim=1)
        return self._attend(self.q(x), k, v, x.shape)
