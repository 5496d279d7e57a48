"""One registry from an architecture name to its builder; the model card records the name."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .config import MIT_VARIANTS, ModelConfig


def _segformer(cfg: ModelConfig) -> nn.Module:
    from .segformer import SegFormer

    return SegFormer(cfg)


def _sa(cfg: ModelConfig) -> nn.Module:
    from .sa_segformer import SASegFormer

    return SASegFormer(cfg, attention="self")


def _ca(cfg: ModelConfig) -> nn.Module:
    from .sa_segformer import SASegFormer

    return SASegFormer(cfg, attention="cross")


def _ds(cfg: ModelConfig) -> nn.Module:
    from .dual_stream import FusionSASegFormerDS

    return FusionSASegFormerDS(cfg)


# FusionSA-SegFormer is SA-SegFormer on the fused multi-source stack: the same network, named apart so the
# card says which experiment a package comes from.
ARCHITECTURES: dict[str, tuple[str, Callable[[ModelConfig], nn.Module]]] = {
    "segformer": ("SegFormer (MiT + all-MLP head)", _segformer),
    "sa_segformer": ("SA-SegFormer (decoder self-attention)", _sa),
    "ca_segformer": ("CA-SegFormer (decoder cross-attention)", _ca),
    "fusion_sa_segformer": ("FusionSA-SegFormer (the study's model, fused input)", _sa),
    "fusion_sa_segformer_ds": ("FusionSA-SegFormer-DS (dual-stream, ours)", _ds),
}


def build_model(cfg: ModelConfig) -> nn.Module:
    """Build the network a config describes (random weights).

    Raises:
        ValueError: unknown architecture or encoder, with the known names.

    """
    if cfg.architecture not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {cfg.architecture!r}; known: {', '.join(ARCHITECTURES)}.")
    if cfg.encoder not in MIT_VARIANTS:
        raise ValueError(f"Unknown encoder {cfg.encoder!r}; known: {', '.join(MIT_VARIANTS)}.")
    return ARCHITECTURES[cfg.architecture][1](cfg)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
