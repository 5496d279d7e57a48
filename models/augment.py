"""Training augmentation on a batch: random resized crop (scale 0.5–1), flips and 90° rotations."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment(
    x: torch.Tensor, y: torch.Tensor, valid: torch.Tensor, gen: torch.Generator, scale: tuple[float, float] = (0.5, 1.0)
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augment (B, C, H, W) images with their (B, 1, H, W) labels and valid masks alike, per sample."""
    b, _, h, w = x.shape
    xs, ys, vs = [], [], []
    for i in range(b):
        xi, yi, vi = x[i : i + 1], y[i : i + 1], valid[i : i + 1]
        area = float(torch.empty(1).uniform_(*scale, generator=gen)) * h * w
        ratio = math.exp(float(torch.empty(1).uniform_(math.log(3 / 4), math.log(4 / 3), generator=gen)))
        ch = min(h, max(8, int(round(math.sqrt(area / ratio)))))
        cw = min(w, max(8, int(round(math.sqrt(area * ratio)))))
        r0 = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
        c0 = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
        xi = F.interpolate(xi[..., r0 : r0 + ch, c0 : c0 + cw], size=(h, w), mode="bilinear", align_corners=False)
        yi = F.interpolate(yi[..., r0 : r0 + ch, c0 : c0 + cw], size=(h, w), mode="nearest")
        vi = F.interpolate(vi[..., r0 : r0 + ch, c0 : c0 + cw], size=(h, w), mode="nearest")
        if bool(torch.randint(0, 2, (1,), generator=gen)):
            xi, yi, vi = xi.flip(-1), yi.flip(-1), vi.flip(-1)
        if bool(torch.randint(0, 2, (1,), generator=gen)):
            xi, yi, vi = xi.flip(-2), yi.flip(-2), vi.flip(-2)
        k = int(torch.randint(0, 4, (1,), generator=gen))
        if k and h == w:
            xi, yi, vi = (t.rot90(k, dims=(-2, -1)) for t in (xi, yi, vi))
        xs.append(xi)
        ys.append(yi)
        vs.append(vi)
    return torch.cat(xs), torch.cat(ys), torch.cat(vs)
