"""Import a checkpoint saved by the authors' training code (SA-SegFormer-RTS-open) into a model package.

Their scripts save `torch.save(model.state_dict())` of `SASegFormer` / `CASegFormer` / `FusionSASegFormer`:
an MiT encoder from segmentation-models-pytorch (`encoder.patch_embed1…4`, `encoder.block1…4`,
`encoder.norm1…4`; built with depth 4, so stage 4 is stored but never used), then `proj_heads.k` (the
input and stages 1–3 projected), `sa.*` or `ca.*` with `attn_norm.*` (absent in their SegFormer baseline)
and `classifier.{0,1,3}`. Here the MiT blocks are transformers' modules, so names are mapped and their fused
key/value matrix is split; the decoder maps one to one onto models.sa_segformer.AttentionDecoder.

Only tensors are read (`torch.load(..., weights_only=True)`): a file that needs anything else unpickled is
refused.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

import torch

from ..core.errors import RtsFusionError
from ..core.features import FEATURES, PAPER
from .card import ModelCard, Normalization, TrainingInfo
from .config import MIT_VARIANTS, ModelConfig
from .registry import build_model

# The study's settings (their constants.py and training scripts).
STUDY_TILE = 256
STUDY_THRESHOLD = 0.4
STUDY_HEADS = 4
STUDY_ATTN_DOWNSAMPLE = 8
SMP_BLOCK_NORM_EPS = 1e-6  # segmentation-models-pytorch MiT: norm_layer=LayerNorm(eps=1e-6)
RGB = ("RED", "GREEN", "BLUE")

_ENC = "encoder.model.encoder."
_BLOCK_PARTS = {
    "norm1": "layer_norm_1",
    "attn.q": "attention.self.query",
    "attn.sr": "attention.self.sr",
    "attn.norm": "attention.self.layer_norm",
    "attn.proj": "attention.output.dense",
    "norm2": "layer_norm_2",
    "mlp.fc1": "mlp.dense1",
    "mlp.dwconv.dwconv": "mlp.dwconv.dwconv",
    "mlp.fc2": "mlp.dense2",
}
_DECODER_PARTS = {
    "sa.qkv": "attention.qkv",
    "sa.proj": "attention.proj",
    "ca.query": "attention.q",
    "ca.key_value": "attention.kv",
    "ca.proj": "attention.proj",
    "attn_norm": "norm",
    "classifier": "head",
    "proj_heads": "projections",
}
_PATCH = re.compile(r"^encoder\.patch_embed(\d)\.(proj|norm)\.(\w+)$")
_BLOCK = re.compile(r"^encoder\.block(\d)\.(\d+)\.(.+)\.(\w+)$")
_STAGE_NORM = re.compile(r"^encoder\.norm(\d)\.(\w+)$")
_DECODER = re.compile(r"^(sa\.qkv|sa\.proj|ca\.query|ca\.key_value|ca\.proj|attn_norm|classifier|proj_heads)\.(.+)$")


class CheckpointError(RtsFusionError):
    """The checkpoint cannot be imported; the message says why."""


@dataclass(frozen=True)
class StudyCheckpoint:
    """What a checkpoint's tensors say about the network that wrote them.

    Attributes:
        architecture: our registry name (fusion_sa_segformer, sa_segformer, ca_segformer, segformer_study).
        in_channels: input bands of the first patch embedding.
        encoder: the MiT size ("b0"–"b5").
        decoder_dim: width of the projected features.
        attention: "self", "cross" or "none".
        dropped: names of stored tensors the network does not use (MiT stage 4).

    """

    architecture: str
    in_channels: int
    encoder: str
    decoder_dim: int
    attention: str
    dropped: tuple[str, ...]


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Read a state dict of tensors only; unwrap {"state_dict": …}-style files and "module." prefixes.

    Raises:
        CheckpointError: missing file, a file that needs arbitrary objects unpickled, or no tensors.

    """
    if not os.path.isfile(path):
        raise CheckpointError(f"The checkpoint file '{path}' does not exist.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for objects beyond tensors; RuntimeError for non-torch files
        raise CheckpointError(
            f"'{os.path.basename(path)}' cannot be read as a weights-only PyTorch checkpoint (it is not one, or "
            f"it holds Python objects beyond tensors, which are not unpickled for safety): {exc}"
        ) from exc
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)} if isinstance(obj, dict) else {}
    if not state:
        raise CheckpointError(f"'{os.path.basename(path)}' holds no state dict of tensors.")
    if all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def inspect_checkpoint(state: dict[str, torch.Tensor]) -> StudyCheckpoint:
    """Recognise the authors' SA-/CA-/FusionSA-SegFormer or SegFormer baseline from its tensors.

    Raises:
        CheckpointError: not an MiT-based checkpoint of the authors' code, or an unsupported shape (named).

    """
    if "encoder.patch_embed1.proj.weight" not in state or "proj_heads.0.weight" not in state:
        hint = ""
        if any(k.startswith("encoder.model.") for k in state) or any(k.startswith("decoder.") for k in state):
            hint = " (it looks like a ConvNeXt/U-Net baseline or a model of another code base)"
        raise CheckpointError(
            "This is not a checkpoint of the authors' SegFormer family: it lacks 'encoder.patch_embed1' (their "
            f"MiT encoder) or 'proj_heads' (their decoder){hint}. Only FusionSA-, SA-, CA-SegFormer and their "
            "SegFormer baseline can be imported."
        )
    dims, depths = [], []
    for s in (1, 2, 3):
        w = state.get(f"encoder.patch_embed{s}.proj.weight")
        if w is None:
            raise CheckpointError(f"The checkpoint lacks the MiT stage {s} patch embedding.")
        dims.append(int(w.shape[0]))
        depths.append(len({k.split(".")[2] for k in state if k.startswith(f"encoder.block{s}.")}))
    encoder = next(
        (
            name
            for name, v in MIT_VARIANTS.items()
            if name != "tiny" and list(v["hidden_sizes"][:3]) == dims and list(v["depths"][:3]) == depths
        ),
        None,
    )
    if encoder is None:
        raise CheckpointError(
            f"The MiT encoder in the checkpoint (stage widths {dims}, depths {depths}) is none of MiT-b0…b5."
        )
    n_out = int(state["classifier.3.weight"].shape[0]) if "classifier.3.weight" in state else -1
    if n_out != 1:
        raise CheckpointError(
            f"The checkpoint's classifier has {n_out} outputs; only binary slump models (one output) are supported."
        )
    has_sa, has_ca = "sa.qkv.weight" in state, "ca.query.weight" in state
    attention = "self" if has_sa else "cross" if has_ca else "none"
    in_channels = int(state["encoder.patch_embed1.proj.weight"].shape[1])
    if int(state["proj_heads.0.weight"].shape[1]) != in_channels:
        raise CheckpointError(
            "The checkpoint's first decoder projection does not take the input bands; it is not the authors' "
            "decoder (which projects the input and stages 1–3)."
        )
    if attention == "self":
        architecture = "fusion_sa_segformer" if in_channels == len(PAPER) else "sa_segformer"
    else:
        architecture = "ca_segformer" if attention == "cross" else "segformer_study"
    dropped = tuple(sorted(k for k in state if re.match(r"^encoder\.(patch_embed4|block4|norm4|head)\.", k)))
    return StudyCheckpoint(
        architecture, in_channels, encoder, int(state["proj_heads.0.weight"].shape[0]), attention, dropped
    )


def convert_state_dict(state: dict[str, torch.Tensor], info: StudyCheckpoint) -> dict[str, torch.Tensor]:
    """Rename the authors' tensors to ours (their fused key/value split into key and value).

    Raises:
        CheckpointError: a tensor this network does not know (named).

    """
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, t in state.items():
        if key in info.dropped:
            continue
        if m := _PATCH.match(key):
            out[f"{_ENC}patch_embeddings.{int(m[1]) - 1}.{'proj' if m[2] == 'proj' else 'layer_norm'}.{m[3]}"] = t
        elif m := _BLOCK.match(key):
            stage, j, part, leaf = int(m[1]) - 1, m[2], m[3], m[4]
            prefix = f"{_ENC}block.{stage}.{j}."
            if part == "attn.kv":  # (2C, C) rows: key then value, as smp's reshape(…, 2, heads, C/heads) reads them
                k, v = t.chunk(2, dim=0)
                out[f"{prefix}attention.self.key.{leaf}"] = k.clone()
                out[f"{prefix}attention.self.value.{leaf}"] = v.clone()
            elif part in _BLOCK_PARTS:
                out[f"{prefix}{_BLOCK_PARTS[part]}.{leaf}"] = t
            else:
                unknown.append(key)
        elif m := _STAGE_NORM.match(key):
            out[f"{_ENC}layer_norm.{int(m[1]) - 1}.{m[2]}"] = t
        elif m := _DECODER.match(key):
            out[f"decoder.{_DECODER_PARTS[m[1]]}.{m[2]}"] = t
        else:
            unknown.append(key)
    if unknown:
        shown = ", ".join(unknown[:5]) + (" …" if len(unknown) > 5 else "")
        raise CheckpointError(f"The checkpoint has {len(unknown)} tensor(s) the authors' network does not: {shown}.")
    return out


def study_card(
    info: StudyCheckpoint,
    bands: tuple[str, ...],
    rgb_divisor: float,
    pixel_size: float,
    source: dict,
    heads: int = STUDY_HEADS,
    attn_downsample: int = STUDY_ATTN_DOWNSAMPLE,
    threshold: float = STUDY_THRESHOLD,
    overlap: int = 64,
) -> ModelCard:
    """The card of an imported model: the study's bands, input scaling, tile 256 and threshold 0.4."""
    unknown = [b for b in bands if b not in FEATURES]
    if unknown:
        raise CheckpointError(
            f"Unknown band name(s) {', '.join(unknown)}; use the fused stack's names ({', '.join(FEATURES)})."
        )
    if len(bands) != info.in_channels:
        raise CheckpointError(
            f"The checkpoint takes {info.in_channels} input bands but {len(bands)} band names were given "
            f"({', '.join(bands)})."
        )
    cfg = ModelConfig(
        info.architecture,
        info.in_channels,
        encoder=info.encoder,
        decoder_dim=info.decoder_dim,
        attn_heads=heads,
        attn_downsample=attn_downsample,
        block_norm_eps=SMP_BLOCK_NORM_EPS,
    )
    card = ModelCard(
        config=cfg,
        bands=tuple(bands),
        groups=tuple(FEATURES[b].group for b in bands),
        normalization=Normalization("study", rgb_divisor=rgb_divisor),
        pixel_size=pixel_size,
        tile_size=STUDY_TILE,
        overlap=overlap,
        threshold=threshold,
        training=TrainingInfo.from_dict({**source, "selected_by": "the authors' checkpoint file"}),
    )
    card.validate()
    return card


def default_bands(in_channels: int) -> tuple[str, ...] | None:
    """The study's band order for its two input sets: RGB (baselines) or RGB + ten factors (13)."""
    return PAPER if in_channels == len(PAPER) else RGB if in_channels == len(RGB) else None


def import_study_checkpoint(
    path: str,
    out_path: str,
    bands: tuple[str, ...] | None = None,
    rgb_divisor: float = 0.0,
    pixel_size: float = 0.0,
    heads: int = STUDY_HEADS,
    attn_downsample: int = STUDY_ATTN_DOWNSAMPLE,
    threshold: float = STUDY_THRESHOLD,
    overlap: int = 64,
) -> ModelCard:
    """Convert an authors' checkpoint into an RTS Fusion model package (weights and card).

    Args:
        path: the .pth file their scripts saved (best.pth / last.pth).
        out_path: the .safetensors package to write (replaced atomically; the input is only read).
        bands: stack band names in the network's input order; None for the study's (3 → RGB, 13 → RGB and
            its ten factors).
        rgb_divisor: RGB scaling (see models.card.Normalization): 255 for stacks holding 8-bit RGB as the
            study's chips, 1 for reflectance 0–1, 0 for per-chip min–max of RGB.
        pixel_size: ground pixel size of the study's chips (0: not recorded, no check at inference).
        heads: decoder attention heads (not stored in the weights; the study used 4).
        attn_downsample: the decoder attention's downsampling (not stored; the study used 8).
        threshold: decision threshold (the study's 0.4).
        overlap: inference tile overlap in pixels (the study scored separate chips; tiles here overlap).

    Returns:
        The card written into the package.

    Raises:
        CheckpointError: an unreadable or unsupported checkpoint, or band names that do not fit (named).

    """
    from .package import save_package

    state = read_state_dict(path)
    info = inspect_checkpoint(state)
    if bands is None:
        bands = default_bands(info.in_channels)
        if bands is None:
            raise CheckpointError(
                f"The checkpoint takes {info.in_channels} input bands, neither the study's 3 (RGB) nor 13 (RGB and "
                "ten factors); give the band names in the network's input order."
            )
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    source = {
        "source": "imported from the authors' training code (SA-SegFormer-RTS-open)",
        "checkpoint": os.path.basename(path),
        "checkpoint_sha256": digest,
        "unused_tensors_dropped": len(info.dropped),
        "assumed": f"decoder attention heads {heads}, attention downsampling {attn_downsample} (not in the weights)",
    }
    card = study_card(info, tuple(bands), rgb_divisor, pixel_size, source, heads, attn_downsample, threshold, overlap)
    model = build_model(card.config)
    converted = convert_state_dict(state, info)
    try:
        result = model.load_state_dict(converted, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise CheckpointError(f"The checkpoint's tensors do not fit the {info.architecture} network: {exc}") from exc
    if result.missing_keys or result.unexpected_keys:
        problems = [*result.missing_keys[:3], *result.unexpected_keys[:3]]
        raise CheckpointError(
            f"The checkpoint does not fit the {info.architecture} network ({len(result.missing_keys)} tensors "
            f"missing, {len(result.unexpected_keys)} unexpected: {', '.join(problems)}); the decoder attention "
            "heads may differ from the ones given."
        )
    save_package(out_path, model, card)
    return card
