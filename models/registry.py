"""One registry from an architecture name to its builder; the model card records the name."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .config import MIT_VARIANTS, ModelConfig

if TYPE_CHECKING:  # importing the registry needs no torch: the Processing provider reads its names
    from torch import nn


def _segformer(cfg: ModelConfig) -> nn.Module:
    from .segformer import SegFormer

    return SegFormer(cfg)


def _sa(cfg: ModelConfig) -> nn.Module:
    from .sa_segformer import SASegFormer

    return SASegFormer(cfg, attention="self")


def _ca(cfg: ModelConfig) -> nn.Module:
    from .sa_segformer import SASegFormer

    return SASegFormer(cfg, attention="cross")


def _plain(cfg: ModelConfig) -> nn.Module:
    from .sa_segformer import SASegFormer

    return SASegFormer(cfg, attention="none")


def _light(cfg: ModelConfig) -> nn.Module:
    from .sa_segformer import SASegFormer

    return SASegFormer(cfg, attention="self", fuse_stride=4)


def _ds(cfg: ModelConfig) -> nn.Module:
    from .dual_stream import FusionSASegFormerDS

    return FusionSASegFormerDS(cfg)


def _zoo(name: str) -> Callable[[ModelConfig], nn.Module]:
    def build(cfg: ModelConfig) -> nn.Module:
        from . import zoo

        return getattr(zoo, f"build_{name}")(cfg)

    return build


# FusionSA-SegFormer is SA-SegFormer on the fused multi-source stack: the same network, named apart so the
# card says which experiment a package comes from. New names are appended (Processing enums index this order).
ARCHITECTURES: dict[str, tuple[str, Callable[[ModelConfig], nn.Module]]] = {
    "cnn3": ("3-layer CNN", _zoo("cnn3")),
    "unet_resnet34": ("U-Net (ResNet-34 encoder)", _zoo("unet_resnet34")),
    "unetpp_resnet34": ("U-Net++ (ResNet-34 encoder)", _zoo("unetpp_resnet34")),
    "deeplabv3plus_resnet34": ("DeepLabV3+ (ResNet-34 encoder)", _zoo("deeplabv3plus_resnet34")),
    "fcn_resnet50": ("FCN (ResNet-50 encoder)", _zoo("fcn_resnet50")),
    "unet_convnext": ("U-Net (ConvNeXt-T encoder)", _zoo("unet_convnext")),
    "unet_swin": ("U-Net (Swin-T encoder)", _zoo("unet_swin")),
    "segformer": ("SegFormer-MLP (MiT + the original all-MLP head; not the study's SegFormer)", _segformer),
    "sa_segformer": ("SA-SegFormer (decoder self-attention)", _sa),
    "ca_segformer": ("CA-SegFormer (decoder cross-attention)", _ca),
    "sa_convnext": ("SA-ConvNeXt (ConvNeXt + decoder self-attention)", _zoo("sa_convnext")),
    "ca_convnext": ("CA-ConvNeXt (ConvNeXt + decoder cross-attention)", _zoo("ca_convnext")),
    "fusion_sa_segformer": ("FusionSA-SegFormer (the study's model, fused input)", _sa),
    "fusion_sa_segformer_ds": ("FusionSA-SegFormer-DS (dual-stream, ours)", _ds),
    "segformer_study": ("SegFormer (the study's baseline: MiT + multi-scale-sum decoder, no attention)", _plain),
    "fusion_sa_segformer_light": (
        "FusionSA-SegFormer-Light (the study's model with fusion and head at 1/4 resolution; ours, for CPUs)",
        _light,
    ),
}
# The study's comparison of twelve models; its "SegFormer" is the SA-SegFormer decoder without attention.
STUDY_TWELVE = (
    "cnn3",
    "unet_resnet34",
    "unetpp_resnet34",
    "deeplabv3plus_resnet34",
    "fcn_resnet50",
    "unet_convnext",
    "unet_swin",
    "segformer_study",
    "sa_segformer",
    "ca_segformer",
    "sa_convnext",
    "ca_convnext",
)
# How a model differs from the study's build of it (reported by the model study); others are built as the study.
STUDY_DIFFERENCES = {
    "unet_resnet34": "decoder ours (smp's U-Net decoder in the study); full-resolution input skip",
    "unetpp_resnet34": "decoder ours (smp's U-Net++ in the study); full-resolution input skip",
    "deeplabv3plus_resnet34": "output stride 16 as the study; plain instead of separable decoder convolutions",
    "fcn_resnet50": "output stride 8 as the study (torchvision's, without its auxiliary head as in the study)",
    "unet_convnext": "transformers ConvNeXt-T (timm in the study); decoder ours",
    "unet_swin": "all four Swin-T stages as the study; transformers Swin (timm in the study); decoder ours",
    "segformer": "the original all-MLP SegFormer head: not the study's SegFormer (that is segformer_study)",
    "fusion_sa_segformer_ds": "ours, not in the study",
    "fusion_sa_segformer_light": "ours, not in the study: decoder fusion and head at 1/4 resolution, logits upsampled",
    "cnn3": "as the study (3 conv layers 32-64-64 at the standard size)",
    "sa_convnext": "transformers ConvNeXt-T stages 1–3 (timm in the study); the study's attention decoder",
    "ca_convnext": "transformers ConvNeXt-T stages 1–3 (timm in the study); the study's attention decoder",
}


# The study's model.py starts these encoders from ImageNet weights when the input has 3 bands (RGB): not here.
IMAGENET_ON_RGB_IN_STUDY = (
    "segformer_study",
    "sa_segformer",
    "ca_segformer",
    "fusion_sa_segformer",
    "sa_convnext",
    "ca_convnext",
)
RANDOM_START = "random start (the study started this encoder from ImageNet weights on 3-band input; no download here)"


def differs_from_study(architecture: str, bands: int | None = None) -> str:
    """How the model differs from the study's build, in a few words ("as the study" when it does not).

    With bands = 3 the MiT and attention-ConvNeXt models also differ in their start: the study's code loads
    ImageNet weights for them on RGB input, ours start from random weights (no model hub). On other band counts
    the study started them from random weights too.
    """
    text = STUDY_DIFFERENCES.get(architecture, "")
    if bands == 3 and architecture in IMAGENET_ON_RGB_IN_STUDY:
        text = f"{text}; {RANDOM_START}" if text else RANDOM_START
    return text or "as the study"


MIT_BASED = (
    "segformer",
    "segformer_study",
    "sa_segformer",
    "ca_segformer",
    "fusion_sa_segformer",
    "fusion_sa_segformer_ds",
    "fusion_sa_segformer_light",
)


def encoder_sizes(architecture: str) -> tuple[str, ...]:
    """The encoder sizes an architecture accepts: MiT variants for the SegFormer family, else tiny/standard."""
    from .zoo import SIZES

    return tuple(MIT_VARIANTS) if architecture in MIT_BASED else SIZES


def encoder_for(architecture: str, size: str) -> str:
    """The encoder name for a size class ("tiny" or "standard"; "standard" is MiT-b0 for the SegFormer family)."""
    if architecture in MIT_BASED:
        return "b0" if size == "standard" else size
    return size


def build_model(cfg: ModelConfig) -> nn.Module:
    """Build the network a config describes (random weights).

    Raises:
        ValueError: unknown architecture or encoder, with the known names.

    """
    if cfg.architecture not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {cfg.architecture!r}; known: {', '.join(ARCHITECTURES)}.")
    sizes = encoder_sizes(cfg.architecture)
    if cfg.encoder not in sizes:
        raise ValueError(f"Unknown encoder {cfg.encoder!r} for {cfg.architecture}; known: {', '.join(sizes)}.")
    return ARCHITECTURES[cfg.architecture][1](cfg)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
