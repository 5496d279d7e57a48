"""Export a model package to ONNX: dynamic batch and tile size, the card and Deepness/GeoDeep keys in its metadata.

The graph takes normalised tiles (B, C, H, W), the card's bands in its order, and returns slump probabilities
(B, 1, H, W) (the sigmoid is part of the graph). The full card is stored under the package's card key, so RTS
Fusion's ONNX Runtime backend (models/onnx_runtime.py) maps with it exactly as with the package; the keys
other QGIS tools read (Deepness, GeoDeep) are written beside it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..core.errors import RtsFusionError
from ..core.outputs import atomic_output, check_not_input
from .card import ModelCard
from .onnx_runtime import CARD_KEY, INPUT_NAME, OUTPUT_NAME

# The TorchScript exporter (dynamo=False: seconds, where the dynamo exporter takes half a minute) at opset 17, which
# has LayerNormalization and which every ONNX Runtime since 1.12 runs.
OPSET = 17


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: the file, its opset, the largest |Δprobability| against PyTorch on a test batch."""

    path: str
    opset: int
    max_abs_diff: float
    metadata: dict[str, str]


class WithSigmoid(nn.Module):
    """The network's logits → probabilities, so the exported graph gives what Deepness/GeoDeep expect."""

    def __init__(self, net: nn.Module) -> None:
        """Wrap a network that returns logits (B, 1, H, W)."""
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) normalised tiles → (B, 1, H, W) probabilities."""
        return self.net(x).sigmoid()


def deepness_metadata(card: ModelCard) -> dict[str, str]:
    """The keys Deepness and GeoDeep read from an ONNX segmentation model, from the card.

    Deepness wants the resolution in cm per pixel and the tile overlap in percent of the tile size; its
    standardisation is one mean/std per band, which equals the card's only for "standardize" cards (the
    per-chip schemes are stated in the card, and mean 0 / std 1 is written for them).
    """
    norm = card.normalization
    n = len(card.bands)
    standardized = norm.method == "standardize"
    return {
        "model_type": json.dumps("Segmentor"),
        "class_names": json.dumps({str(i): name for i, name in enumerate(card.classes)}),
        "resolution": json.dumps(round(card.pixel_size * 100.0, 6)),
        "tiles_size": json.dumps(card.tile_size),
        "tiles_overlap": json.dumps(round(100.0 * card.overlap / card.tile_size)),
        "standardization_mean": json.dumps(list(norm.mean) if standardized else [0.0] * n),
        "standardization_std": json.dumps(list(norm.std) if standardized else [1.0] * n),
        "seg_thresh": json.dumps(card.threshold),
    }


def export_onnx(
    package_path: str, onnx_path: str, opset: int = OPSET, log: Callable[[str], None] | None = None
) -> ExportResult:
    """Export a model package to an .onnx file (written beside the target and moved into place when checked).

    The exported graph is run once with ONNX Runtime on a random batch of two tiles of the card's size and
    compared with PyTorch; a difference above 1e-4 is refused.

    Raises:
        RtsFusionError: the package cannot be read, the network cannot be exported, or the export disagrees.

    """
    import onnx

    from .onnx_runtime import _ort
    from .package import load_package

    log = log or (lambda _m: None)
    check_not_input(onnx_path, {"model package": package_path}, "ONNX model")
    try:
        model, card = load_package(package_path)
    except ValueError as exc:
        raise RtsFusionError(str(exc)) from exc
    net = WithSigmoid(model).eval()
    x = torch.randn(2, len(card.bands), card.tile_size, card.tile_size, generator=torch.Generator().manual_seed(0))
    metadata = {CARD_KEY: card.to_json(), **deepness_metadata(card)}
    with atomic_output(onnx_path, "ONNX model") as tmp:
        try:
            with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer notes
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    net,
                    (x,),
                    tmp,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_axes={n: {0: "batch", 2: "height", 3: "width"} for n in (INPUT_NAME, OUTPUT_NAME)},
                    opset_version=opset,
                    dynamo=False,
                )
        except Exception as exc:  # the exporter raises many types for unsupported operators
            raise RtsFusionError(
                f"The {card.config.architecture} network in '{package_path}' cannot be exported to ONNX: {exc}"
            ) from exc
        proto = onnx.load(tmp)
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "RTS Fusion"
        onnx.save(proto, tmp)
        session = _ort().InferenceSession(tmp, providers=["CPUExecutionProvider"])
        got = session.run(None, {INPUT_NAME: x.numpy()})[0]
        with torch.inference_mode():
            want = net(x).numpy()
        diff = float(np.abs(got - want).max())
        if not diff <= 1e-4:
            raise RtsFusionError(
                f"The exported model disagrees with the package (max |Δprobability| {diff:.2g} > 1e-4); not written."
            )
    log(f"Exported {card.config.architecture} to '{onnx_path}' (opset {opset}); max |Δprobability| {diff:.1e}.")
    return ExportResult(onnx_path, opset, diff, metadata)
