"""The architecture configuration recorded in every model card, and the MiT encoder sizes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# Mix Transformer (SegFormer encoder) sizes, as published with SegFormer; "tiny" is ours, for CPU tests.
MIT_VARIANTS: dict[str, dict[str, tuple[int, ...]]] = {
    "tiny": {"hidden_sizes": (16, 32, 64, 128), "depths": (1, 1, 1, 1), "heads": (1, 2, 4, 8)},
    "b0": {"hidden_sizes": (32, 64, 160, 256), "depths": (2, 2, 2, 2), "heads": (1, 2, 5, 8)},
    "b1": {"hidden_sizes": (64, 128, 320, 512), "depths": (2, 2, 2, 2), "heads": (1, 2, 5, 8)},
    "b2": {"hidden_sizes": (64, 128, 320, 512), "depths": (3, 4, 6, 3), "heads": (1, 2, 5, 8)},
    "b3": {"hidden_sizes": (64, 128, 320, 512), "depths": (3, 4, 18, 3), "heads": (1, 2, 5, 8)},
    "b4": {"hidden_sizes": (64, 128, 320, 512), "depths": (3, 8, 27, 3), "heads": (1, 2, 5, 8)},
    "b5": {"hidden_sizes": (64, 128, 320, 512), "depths": (3, 6, 40, 3), "heads": (1, 2, 5, 8)},
}


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network (weights aside).

    Attributes:
        architecture: a name in models.registry.ARCHITECTURES.
        in_channels: number of input bands.
        encoder: MiT size, "b0"–"b5" or "tiny".
        decoder_dim: width of the projected multi-scale features (the study: 256).
        attn_heads: heads of the decoder attention (the study: 4).
        attn_downsample: the decoder attention runs at 1/attn_downsample of the input size (the study: 8).
        optical_channels: input band indices of the optical stream (dual-stream model only).
        auxiliary_channels: input band indices of the auxiliary stream (dual-stream model only).
        block_norm_eps: epsilon of the layer norms inside the MiT blocks and after each stage: 1e-5 as in
            transformers (ours), 1e-6 for networks imported from segmentation-models-pytorch checkpoints
            (the authors' MiT), so their weights give their logits.

    """

    architecture: str
    in_channels: int
    encoder: str = "b0"
    decoder_dim: int = 256
    attn_heads: int = 4
    attn_downsample: int = 8
    optical_channels: tuple[int, ...] = field(default_factory=tuple)
    auxiliary_channels: tuple[int, ...] = field(default_factory=tuple)
    block_norm_eps: float = 1e-5

    def to_dict(self) -> dict:
        """JSON-ready form."""
        d = asdict(self)
        d["optical_channels"] = list(self.optical_channels)
        d["auxiliary_channels"] = list(self.auxiliary_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Inverse of to_dict; unknown keys are an error."""
        d = dict(d)
        d["optical_channels"] = tuple(d.get("optical_channels", ()))
        d["auxiliary_channels"] = tuple(d.get("auxiliary_channels", ()))
        return cls(**d)
