"""The study's comparison models beyond the SegFormer family, for any number of input bands.

Encoders are transformers backbones built from their configs (ResNet, ConvNeXt, Swin; random weights, no
download); decoders are plain torch. Every model maps (B, C, H, W) to logits (B, 1, H, W) for H, W multiples
of 32. Sizes: "standard" is the size the study names (ResNet-34 / ResNet-50 / ConvNeXt-T / Swin-T), "tiny" a
narrow, shallow version for tests and quick experiments.

As the study built them (its baselines.py: torchvision and segmentation-models-pytorch): FCN-ResNet-50 is
dilated to output stride 8 (stages 3 and 4 at rates 2 and 4, as torchvision's fcn_resnet50); DeepLabV3+ runs
at output stride 16 (stage 4 at rate 2, ASPP rates 12, 24, 36, as smp's default); the Swin-T U-Net takes the
outputs of all four Swin stages (1/4 … 1/32, before each patch merging, as timm's features). Differences that
remain (models.registry.STUDY_DIFFERENCES): the encoders are transformers' (the study's were smp's and timm's;
all of these started from random weights there too, as here); U-Net/U-Net++ decoders are ours and take a
full-resolution convolution of the input as the finest skip; DeepLabV3+'s decoder uses plain, not depth-wise
separable, convolutions. (Only the study's MiT and attention-ConvNeXt models loaded ImageNet weights, and only on
RGB: models.registry.differs_from_study.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig

SIZES = ("tiny", "standard")
RESNET = {
    "resnet34": {
        "standard": {"hidden_sizes": [64, 128, 256, 512], "depths": [3, 4, 6, 3], "embedding_size": 64},
        "tiny": {"hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 1, 1], "embedding_size": 16},
        "layer_type": "basic",
    },
    "resnet50": {
        "standard": {"hidden_sizes": [256, 512, 1024, 2048], "depths": [3, 4, 6, 3], "embedding_size": 64},
        "tiny": {"hidden_sizes": [32, 64, 128, 256], "depths": [1, 1, 1, 1], "embedding_size": 16},
        "layer_type": "bottleneck",
    },
}
CONVNEXT = {
    "standard": {"hidden_sizes": [96, 192, 384, 768], "depths": [3, 3, 9, 3]},
    "tiny": {"hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 1, 1]},
}
SWIN = {
    "standard": {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24], "window_size": 7},
    "tiny": {"embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 2, 4, 8], "window_size": 2},
}


def _size(cfg: ModelConfig) -> str:
    if cfg.encoder not in SIZES:
        raise ValueError(f"Unknown encoder size {cfg.encoder!r} for {cfg.architecture}; known: {', '.join(SIZES)}.")
    return cfg.encoder


def conv_block(cin: int, cout: int) -> nn.Sequential:
    """Two 3×3 conv, BatchNorm, ReLU layers."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


# ----- encoders: (B, C, H, W) → [1/4, 1/8, 1/16, 1/32] feature maps ------------------------------------------
class ResNetEncoder(nn.Module):
    """transformers ResNet (basic blocks: ResNet-34 layout; bottleneck: ResNet-50 layout)."""

    def __init__(self, in_channels: int, kind: str, size: str, dilations: tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        from transformers import ResNetConfig, ResNetModel

        spec = RESNET[kind]
        self.model = ResNetModel(ResNetConfig(num_channels=in_channels, layer_type=spec["layer_type"], **spec[size]))
        self.dims = list(spec[size]["hidden_sizes"])
        self._dilate(dilations)

    def _dilate(self, dilations: tuple[int, int]) -> None:
        """Trade the strides of stages 3 and 4 for dilation (torchvision's replace_stride_with_dilation).

        (1, 1): output stride 32; (1, 2): 16; (2, 4): 8. As in torchvision, a stage's first block keeps the
        previous stage's dilation and the others take the new one.
        """
        previous = 1
        for stage, rate in zip(self.model.encoder.stages[2:], dilations):
            if rate == 1:
                continue
            for b, layer in enumerate(stage.layers):
                d = previous if b == 0 else rate
                for m in layer.modules():
                    if isinstance(m, nn.Conv2d):
                        m.stride = (1, 1)
                        if m.kernel_size == (3, 3):
                            m.dilation, m.padding = (d, d), (d, d)
            previous = rate

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.model(x, output_hidden_states=True).hidden_states[1:])


class ConvNextEncoder(nn.Module):
    """transformers ConvNeXt (standard: ConvNeXt-T)."""

    def __init__(self, in_channels: int, size: str, stages: int = 4) -> None:
        super().__init__()
        from transformers import ConvNextConfig, ConvNextModel

        self.model = ConvNextModel(ConvNextConfig(num_channels=in_channels, **CONVNEXT[size]))
        self.model.encoder.stages = self.model.encoder.stages[:stages]  # unused stages cost nothing
        self.model.layernorm = nn.Identity()  # the pooled-output norm: no part of a dense head
        self.dims = list(CONVNEXT[size]["hidden_sizes"])[:stages]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.model(x, output_hidden_states=True).hidden_states[1:])


class SwinEncoder(nn.Module):
    """transformers Swin (standard: Swin-T). Inputs are zero-padded to at least 32 × window size."""

    def __init__(self, in_channels: int, size: str) -> None:
        super().__init__()
        from transformers import SwinConfig, SwinModel

        spec = SWIN[size]
        self.min_side = 32 * spec["window_size"]
        self.model = SwinModel(SwinConfig(num_channels=in_channels, image_size=self.min_side, **spec))
        self.model.layernorm = nn.Identity()  # the pooled-output norm: no part of a dense head
        self.model.pooler = None
        self.dims = [spec["embed_dim"] * 2**i for i in range(4)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # Each of the four stages' outputs before its patch merging: 1/4 d, 1/8 2d, 1/16 4d, 1/32 8d.
        emb, dims = self.model.embeddings(x)
        out = self.model.encoder(
            emb, dims, output_hidden_states=True, output_hidden_states_before_downsampling=True, return_dict=True
        )
        return list(out.reshaped_hidden_states[1:5])


# ----- decoders and models ------------------------------------------------------------------------------------
class UNet(nn.Module):
    """U-Net decoder over a 4-stage encoder, with a full-resolution convolution of the input as finest skip."""

    def __init__(self, cfg: ModelConfig, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        d = encoder.dims
        stem = max(8, d[0] // 2)
        self.stem = conv_block(cfg.in_channels, stem)
        self.dec3 = conv_block(d[3] + d[2], d[2])
        self.dec2 = conv_block(d[2] + d[1], d[1])
        self.dec1 = conv_block(d[1] + d[0], d[0])
        self.dec0 = conv_block(d[0] + stem, stem)
        self.head = nn.Conv2d(stem, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1, s2, s3, s4 = self.encoder(x)
        y = self.dec3(torch.cat([_up(s4, s3), s3], 1))
        y = self.dec2(torch.cat([_up(y, s2), s2], 1))
        y = self.dec1(torch.cat([_up(y, s1), s1], 1))
        full = self.stem(x)
        y = self.dec0(torch.cat([_up(y, full), full], 1))
        return self.head(y)


class PaddedUNet(UNet):
    """U-Net whose encoder needs a minimum input side (Swin): pad, decode, crop."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        side = self.encoder.min_side
        ph, pw = max(0, side - h), max(0, side - w)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        return super().forward(x)[..., :h, :w]


class UNetPlusPlus(nn.Module):
    """U-Net++ (nested dense skips) over a 4-stage encoder; X[i][j] at level i after j nested steps."""

    def __init__(self, cfg: ModelConfig, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        d = encoder.dims
        self.nodes = nn.ModuleDict()
        for j in range(1, 4):
            for i in range(0, 4 - j):
                cin = d[i] * j + d[i + 1]  # X[i][0..j-1] and the upsampled X[i+1][j-1]
                self.nodes[f"{i}_{j}"] = conv_block(cin, d[i])
        stem = max(8, d[0] // 2)
        self.stem = conv_block(cfg.in_channels, stem)
        self.final = conv_block(d[0] + stem, stem)
        self.head = nn.Conv2d(stem, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = {(i, 0): f for i, f in enumerate(self.encoder(x))}
        for j in range(1, 4):
            for i in range(0, 4 - j):
                inputs = [grid[(i, k)] for k in range(j)] + [_up(grid[(i + 1, j - 1)], grid[(i, 0)])]
                grid[(i, j)] = self.nodes[f"{i}_{j}"](torch.cat(inputs, 1))
        full = self.stem(x)
        return self.head(self.final(torch.cat([_up(grid[(0, 3)], full), full], 1)))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1×1, three dilated 3×3 and image pooling branches."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, ...] = (12, 24, 36)) -> None:
        super().__init__()

        def branch(k: int, r: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, k, padding=0 if k == 1 else r, dilation=r, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

        self.branches = nn.ModuleList([branch(1, 1), *(branch(3, r) for r in rates)])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True))
        self.project = nn.Sequential(
            nn.Conv2d(cout * (len(rates) + 2), cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches] + [self.pool(x).expand(-1, -1, *x.shape[-2:])]
        return self.project(torch.cat(outs, 1))


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ at output stride 16: ASPP on the dilated deepest stage + reduced 1/4 features, upsampled ×4."""

    def __init__(self, cfg: ModelConfig, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        d = encoder.dims
        width = max(32, d[3] // 2)
        low = max(12, d[0] // 2)
        self.aspp = ASPP(d[3], width)
        self.reduce = nn.Sequential(nn.Conv2d(d[0], low, 1, bias=False), nn.BatchNorm2d(low), nn.ReLU(inplace=True))
        self.fuse = conv_block(width + low, width)
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1, _, _, s4 = self.encoder(x)
        y = self.fuse(torch.cat([_up(self.aspp(s4), s1), self.reduce(s1)], 1))
        return F.interpolate(self.head(y), size=x.shape[-2:], mode="bilinear", align_corners=False)


class FCN(nn.Module):
    """FCN head (3×3 conv to width/4, BN, ReLU, dropout, 1×1) on the deepest stage (1/8 when dilated), upsampled."""

    def __init__(self, cfg: ModelConfig, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        c = encoder.dims[3]
        self.head = nn.Sequential(
            nn.Conv2d(c, c // 4, 3, padding=1, bias=False),
            nn.BatchNorm2d(c // 4),
            nn.ReLU(inplace=True),
            nn.Dropout(0.1),
            nn.Conv2d(c // 4, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.head(self.encoder(x)[3]), size=x.shape[-2:], mode="bilinear", align_corners=False)


class SmallCNN(nn.Module):
    """A plain 3-layer CNN at full resolution (the study's simplest baseline)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        w = 32 if _size(cfg) == "standard" else 8
        layers, cin = [], cfg.in_channels
        for cout in (w, 2 * w, 2 * w):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(cin, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class AttentionConvNeXt(nn.Module):
    """SA/CA-ConvNeXt: the SA/CA-SegFormer attention decoder over a ConvNeXt encoder (stages 1–3 and the input)."""

    def __init__(self, cfg: ModelConfig, attention: str) -> None:
        super().__init__()
        from .sa_segformer import AttentionDecoder

        self.encoder = ConvNextEncoder(cfg.in_channels, _size(cfg), stages=3)
        self.decoder = AttentionDecoder(
            [cfg.in_channels, *self.encoder.dims], cfg.decoder_dim, cfg.attn_heads, cfg.attn_downsample, attention
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stages = self.encoder(x)
        return self.decoder([x, *stages], x.shape[-2:])


# ----- builders for the registry ------------------------------------------------------------------------------------
def build_cnn3(cfg: ModelConfig) -> nn.Module:
    """Build cnn3 from its config."""
    return SmallCNN(cfg)


def build_unet_resnet34(cfg: ModelConfig) -> nn.Module:
    """Build unet_resnet34 from its config."""
    return UNet(cfg, ResNetEncoder(cfg.in_channels, "resnet34", _size(cfg)))


def build_unetpp_resnet34(cfg: ModelConfig) -> nn.Module:
    """Build unetpp_resnet34 from its config."""
    return UNetPlusPlus(cfg, ResNetEncoder(cfg.in_channels, "resnet34", _size(cfg)))


def build_deeplabv3plus_resnet34(cfg: ModelConfig) -> nn.Module:
    """Build deeplabv3plus_resnet34 from its config."""
    return DeepLabV3Plus(cfg, ResNetEncoder(cfg.in_channels, "resnet34", _size(cfg), dilations=(1, 2)))


def build_fcn_resnet50(cfg: ModelConfig) -> nn.Module:
    """Build fcn_resnet50 from its config."""
    return FCN(cfg, ResNetEncoder(cfg.in_channels, "resnet50", _size(cfg), dilations=(2, 4)))


def build_unet_convnext(cfg: ModelConfig) -> nn.Module:
    """Build unet_convnext from its config."""
    return UNet(cfg, ConvNextEncoder(cfg.in_channels, _size(cfg)))


def build_unet_swin(cfg: ModelConfig) -> nn.Module:
    """Build unet_swin from its config."""
    return PaddedUNet(cfg, SwinEncoder(cfg.in_channels, _size(cfg)))


def build_sa_convnext(cfg: ModelConfig) -> nn.Module:
    """Build sa_convnext from its config."""
    return AttentionConvNeXt(cfg, "self")


def build_ca_convnext(cfg: ModelConfig) -> nn.Module:
    """Build ca_convnext from its config."""
    return AttentionConvNeXt(cfg, "cross")
