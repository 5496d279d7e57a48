"""Load local encoder weights (safetensors, by path) into matching layers; never from a hub."""

from __future__ import annotations

import re

import torch
from torch import nn

_CANONICAL = re.compile(r"encoder\.(patch_embeddings|block|layer_norm)\..*$")


def _canonical(key: str) -> str | None:
    """The part of a parameter name from the MiT encoder onwards, e.g. 'encoder.block.0.0.attention...'."""
    m = _CANONICAL.search(key)
    return m.group(0) if m else None


def load_encoder_weights(model: nn.Module, path: str) -> dict[str, int]:
    """Copy MiT encoder weights from a safetensors file into every MiT encoder of `model`.

    Names are matched from 'encoder.patch_embeddings/block/layer_norm' onwards, so checkpoints of
    transformers' SegFormer models (e.g. 'segformer.encoder...') fit. The first patch embedding of a model
    with more input bands than the checkpoint keeps the checkpoint's filters on the first bands and gives
    the others the mean filter; all are scaled by (checkpoint bands / model bands) so the activation
    magnitude stays the same.

    Returns:
        {"loaded": n, "adapted": n, "skipped": n} parameter counts.

    Raises:
        ValueError: the file holds no MiT encoder weight at all.

    """
    from safetensors.torch import load_file

    source = {}
    for k, v in load_file(path, device="cpu").items():
        c = _canonical(k)
        if c is not None:
            source[c] = v
    if not source:
        raise ValueError(f"'{path}' holds no MiT encoder weights (no 'encoder.patch_embeddings/block' tensors).")
    counts = {"loaded": 0, "adapted": 0, "skipped": 0}
    state = model.state_dict()
    with torch.no_grad():
        for key, target in state.items():
            c = _canonical(key)
            if c is None or c not in source:
                continue
            w = source[c].to(target.dtype)
            if w.shape == target.shape:
                target.copy_(w)
                counts["loaded"] += 1
            elif w.dim() == 4 and w.shape[0] == target.shape[0] and w.shape[2:] == target.shape[2:]:
                n_src, n_dst = w.shape[1], target.shape[1]
                adapted = w.mean(dim=1, keepdim=True).expand(-1, n_dst, -1, -1).clone()
                k = min(n_src, n_dst)
                adapted[:, :k] = w[:, :k]
                target.copy_(adapted * (n_src / n_dst))
                counts["adapted"] += 1
            else:
                counts["skipped"] += 1
    model.load_state_dict(state)
    return counts
