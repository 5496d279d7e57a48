"""The Mix Transformer (MiT) encoder of SegFormer, from transformers, on any number of bands."""

from __future__ import annotations

import torch
from torch import nn

from .config import MIT_VARIANTS


def segformer_config(in_channels: int, variant: str, num_labels: int = 1, decoder_hidden_size: int = 256):
    """A transformers SegformerConfig for an MiT size and band count (built locally, never from a hub)."""
    from transformers import SegformerConfig

    if variant not in MIT_VARIANTS:
        raise ValueError(f"Unknown MiT encoder {variant!r}; choose one of {', '.join(MIT_VARIANTS)}.")
    v = MIT_VARIANTS[variant]
    return SegformerConfig(
        num_channels=in_channels,
        hidden_sizes=list(v["hidden_sizes"]),
        depths=list(v["depths"]),
        num_attention_heads=list(v["heads"]),
        decoder_hidden_size=decoder_hidden_size,
        num_labels=num_labels,
    )


class MiTEncoder(nn.Module):
    """MiT encoder returning the feature maps of its first `stages` stages.

    Input (B, C, H, W) → [(B, h1, H/4, W/4), (B, h2, H/8, W/8), (B, h3, H/16, W/16), (B, h4, H/32, W/32)][:stages].
    Stages beyond `stages` are dropped from the network (the study's decoder uses stages 1–3 only), so they
    cost neither parameters nor compute.
    """

    def __init__(self, in_channels: int, variant: str = "b0", stages: int = 4, block_norm_eps: float = 1e-5) -> None:
        super().__init__()
        from transformers import SegformerModel

        self.model = SegformerModel(segformer_config(in_channels, variant))
        enc = self.model.encoder
        for name in ("patch_embeddings", "block", "layer_norm"):
            setattr(enc, name, getattr(enc, name)[:stages])
        # segmentation-models-pytorch's MiT uses eps 1e-6 in these norms (patch-embedding and
        # reduction norms keep 1e-5 in both); transformers uses 1e-5 throughout.
        for norm in enc.layer_norm:
            norm.eps = block_norm_eps
        for stage in enc.block:
            for layer in stage:
                layer.layer_norm_1.eps = block_norm_eps
                layer.layer_norm_2.eps = block_norm_eps

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.model(pixel_values=x, output_hidden_states=True, return_dict=True).hidden_states)
