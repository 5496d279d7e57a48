"""Training augmentation on a batch: random resized crop (scale 0.5–1), flips and 90° rotations.

Defaults are ours (crop aspect 3/4–4/3, a random quarter turn on every chip); the study's are aspect 0.9–1.1
and a quarter turn with probability 0.5 (albumentations RandomRotate90(p=0.5)). Flips have p 0.5 in both.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment(
    x: torch.Tensor,
    y: torch.Tensor,
    valid: torch.Tensor,
    gen: torch.Generator,
    scale: tuple[float, float] = (0.5, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    rot90_p: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augment (B, C, H, W) images with their (B, 1, H, W) labels and valid masks alike, per sample.

    Args:
        x: images (B, C, H, W).
        y: labels (B, 1, H, W).
        valid: valid-pixel masks (B, 1, H, W).
        gen: random generator.
        scale: range of the crop's share of the chip area.
        ratio: range of the crop's aspect ratio (sampled log-uniformly).
        rot90_p: probability of a rotation by k·90°, k drawn from 0–3 (albumentations' RandomRotate90).

    """
    b, _, h, w = x.shape
    xs, ys, vs = [], [], []
    for i in range(b):
        xi, yi, vi = x[i : i + 1], y[i : i + 1], valid[i : i + 1]
        area = float(torch.empty(1).uniform_(*scale, generator=gen)) * h * w
        aspect = math.exp(float(torch.empty(1).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=gen)))
        ch = min(h, max(8, int(round(math.sqrt(area / aspect)))))
        cw = min(w, max(8, int(round(math.sqrt(area * aspect)))))
        r0 = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
        c0 = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
        xi = F.interpolate(xi[..., r0 : r0 + ch, c0 : c0 + cw], size=(h, w), mode="bilinear", align_corners=False)
        yi = F.interpolate(yi[..., r0 : r0 + ch, c0 : c0 + cw], size=(h, w), mode="nearest")
        vi = F.interpolate(vi[..., r0 : r0 + ch, c0 : c0 + cw], size=(h, w), mode="nearest")
        if bool(torch.randint(0, 2, (1,), generator=gen)):
            xi, yi, vi = xi.flip(-1), yi.flip(-1), vi.flip(-1)
        if bool(torch.randint(0, 2, (1,), generator=gen)):
            xi, yi, vi = xi.flip(-2), yi.flip(-2), vi.flip(-2)
        rotate = rot90_p >= 1 or float(torch.rand(1, generator=gen)) < rot90_p
        k = int(torch.randint(0, 4, (1,), generator=gen))
        if rotate and k and h == w:
            xi, yi, vi = (t.rot90(k, dims=(-2, -1)) for t in (xi, yi, vi))
        xs.append(xi)
        ys.append(yi)
        vs.append(vi)
    return torch.cat(xs), torch.cat(ys), torch.cat(vs)
