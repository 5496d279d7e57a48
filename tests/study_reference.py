"""A plain-torch reference of the authors' network, with their module names, for the checkpoint-import tests.

It mirrors segmentation-models-pytorch's MiT (`patch_embedN`, `blockN`, `normN`, fused `attn.kv`, eps 1e-6 in
the block and stage norms, stage 4 built but unused at depth 4) and the authors' SA/CA decoder (`proj_heads`,
`sa`/`ca`, `attn_norm`, `classifier`), so its state dict has exactly the names and shapes their scripts save.
It is independent of transformers, which our network uses, so equal logits mean the mapping is right.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

B0 = {"dims": (32, 64, 160, 256), "depths": (2, 2, 2, 2), "heads": (1, 2, 5, 8), "sr": (8, 4, 2, 1)}


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, sr: int) -> None:
        super().__init__()
        self.heads, self.sr_ratio = heads, sr
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        if sr > 1:
            self.sr = nn.Conv2d(dim, dim, sr, stride=sr)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, self.heads, c // self.heads).permute(0, 2, 1, 3)
        if self.sr_ratio > 1:
            x = self.norm(self.sr(x.transpose(1, 2).reshape(b, c, h, w)).reshape(b, c, -1).transpose(1, 2))
        kv = self.kv(x).reshape(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ kv[0].transpose(-2, -1)) * (c // self.heads) ** -0.5
        return self.proj((attn.softmax(-1) @ kv[1]).transpose(1, 2).reshape(b, n, c))


class _DWConv(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        return self.dwconv(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)


class _Mlp(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1, self.dwconv, self.fc2 = nn.Linear(dim, 4 * dim), _DWConv(4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return self.fc2(F.gelu(self.dwconv(self.fc1(x), h, w)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, sr: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn, self.mlp = _Attention(dim, heads, sr), _Mlp(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.mlp(self.norm2(x), h, w)


class _PatchEmbed(nn.Module):
    def __init__(self, cin: int, dim: int, patch: int, stride: int) -> None:
        super().__init__()
        self.proj, self.norm = nn.Conv2d(cin, dim, patch, stride, patch // 2), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class ReferenceMiT(nn.Module):
    """smp's MixVisionTransformer layout; forward returns stages 1–3 (depth 4: stage 4 stays unused)."""

    def __init__(self, in_channels: int, spec: dict = B0) -> None:
        super().__init__()
        cins = (in_channels, *spec["dims"][:3])
        for s in range(4):
            patch, stride = (7, 4) if s == 0 else (3, 2)
            setattr(self, f"patch_embed{s + 1}", _PatchEmbed(cins[s], spec["dims"][s], patch, stride))
            blocks = [_Block(spec["dims"][s], spec["heads"][s], spec["sr"][s]) for _ in range(spec["depths"][s])]
            setattr(self, f"block{s + 1}", nn.ModuleList(blocks))
            setattr(self, f"norm{s + 1}", nn.LayerNorm(spec["dims"][s], eps=1e-6))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for s in (1, 2, 3):
            t, h, w = getattr(self, f"patch_embed{s}")(x)
            for blk in getattr(self, f"block{s}"):
                t = blk(t, h, w)
            x = getattr(self, f"norm{s}")(t).transpose(1, 2).reshape(t.shape[0], -1, h, w)
            out.append(x)
        return out


class _SA(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Conv2d(dim, 3 * dim, 1, bias=False), nn.Conv2d(dim, dim, 1, bias=False)

    def attend(self, q, k, v, shape):
        b, c, h, w = shape

        def split(t):
            return t.reshape(b, self.heads, c // self.heads, -1).permute(0, 1, 3, 2)

        a = (split(q) @ split(k).transpose(-2, -1)) * (c // self.heads) ** -0.5
        return self.proj((a.softmax(-1) @ split(v)).permute(0, 1, 3, 2).reshape(b, c, h, w))

    def forward(self, x):
        return self.attend(*self.qkv(x).chunk(3, 1), x.shape)


class _CA(_SA):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__(dim, heads)
        del self.qkv
        self.query, self.key_value = nn.Conv2d(dim, dim, 1, bias=False), nn.Conv2d(dim, 2 * dim, 1, bias=False)

    def forward(self, x, context):
        return self.attend(self.query(x), *self.key_value(context).chunk(2, 1), x.shape)


class ReferenceStudyNet(nn.Module):
    """The authors' SASegFormer (attention "self"), CASegFormer ("cross") or SegFormer baseline ("none")."""

    def __init__(self, in_channels: int, attention: str = "self", dim: int = 256, heads: int = 4) -> None:
        super().__init__()
        self.encoder = ReferenceMiT(in_channels)
        self.proj_heads = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in (in_channels, *B0["dims"][:3]))
        self.attention = attention
        if attention == "self":
            self.sa = _SA(dim, heads)
        elif attention == "cross":
            self.ca = _CA(dim, heads)
        if attention != "none":
            self.attn_norm = nn.BatchNorm2d(dim)
        self.classifier = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1), nn.BatchNorm2d(dim), nn.ReLU(inplace=True), nn.Conv2d(dim, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        projected = [p(f) for p, f in zip(self.proj_heads, [x, *self.encoder(x)])]
        fusion = torch.stack([F.interpolate(p, size=size, mode="bilinear") for p in projected]).sum(0)
        if self.attention != "none":
            small = F.interpolate(fusion, size=(size[0] // 8, size[1] // 8), mode="bilinear")
            if self.attention == "self":
                att = self.sa(small)
            else:
                att = self.ca(small, F.interpolate(projected[-1], size=small.shape[-2:], mode="bilinear"))
            fusion = fusion + F.interpolate(self.attn_norm(small + att), size=size, mode="bilinear")
        return self.classifier(fusion)


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Give every parameter and BatchNorm statistic non-trivial random values (eval-mode logits then test all)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                if name.endswith("running_var"):
                    t.copy_(0.5 + torch.rand(t.shape, generator=g))
                elif name.endswith(".weight") and t.dim() == 1:  # norm scales
                    t.copy_(1.0 + 0.2 * torch.randn(t.shape, generator=g))
                else:
                    t.copy_(0.1 * torch.randn(t.shape, generator=g))
    return model.eval()
