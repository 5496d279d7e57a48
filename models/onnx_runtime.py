"""ONNX Runtime backend: an exported model (.onnx carrying its card) run without PyTorch.

Nothing here imports torch: with onnxruntime alone, detection reads the card from the file's metadata and
predicts through the same tiling engine (core/tiling.py), normalisation and outputs as the PyTorch path. The
exported graph takes normalised tiles (B, C, H, W) and returns slump probabilities (B, 1, H, W).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import RtsFusionError
from .card import ModelCard
from .device import usable_cores

ONNX_SUFFIX = ".onnx"
# The card's metadata key, as in the safetensors package.
CARD_KEY = "rtsfusion_card"
INPUT_NAME = "input"
OUTPUT_NAME = "probability"

# Execution providers tried for device "auto", fastest first; CPU is always the fallback.
_ACCELERATED = ("CUDAExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider")
_PROVIDER_DEVICE = {
    "CUDAExecutionProvider": "cuda",
    "DmlExecutionProvider": "directml",
    "CoreMLExecutionProvider": "coreml",
    "CPUExecutionProvider": "cpu",
}
ORT_HINT = (
    "Mapping with an .onnx model needs the Python package onnxruntime in QGIS's Python: install 'Mapping only "
    "(ONNX Runtime)' from the menu Raster → RTS Fusion → Install deep-learning dependencies…, then restart QGIS."
)


def is_onnx(path: str) -> bool:
    """Whether a model path names an ONNX file (by its extension)."""
    return str(path).lower().endswith(ONNX_SUFFIX)


def _ort():
    try:
        import onnxruntime
    except ImportError as exc:
        raise RtsFusionError(f"onnxruntime is not installed. {ORT_HINT}") from exc
    return onnxruntime


def _session(path: str, providers: list[str]) -> Any:
    """An ONNX Runtime session on every core this process may use; a missing or corrupt file names the file."""
    if not os.path.isfile(path):
        raise RtsFusionError(f"The model file '{path}' does not exist.")
    ort = _ort()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the reason goes into our message, not onto stderr
    # Its default is the machine's physical cores, which can exceed what a container lets this process use.
    options.intra_op_num_threads = usable_cores() or 0  # 0: ONNX Runtime's own choice
    try:
        return ort.InferenceSession(path, options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own types for truncated or non-ONNX files
        raise RtsFusionError(f"'{path}' is not a readable ONNX model: {exc}") from exc


def card_from_metadata(path: str, meta: dict[str, str]) -> ModelCard:
    """The RTS Fusion card stored in an ONNX file's metadata.

    Raises:
        RtsFusionError: no card (an ONNX model not exported by RTS Fusion) or an invalid one, naming the file.

    """
    text = meta.get(CARD_KEY)
    if not text:
        raise RtsFusionError(
            f"'{path}' is an ONNX model without an RTS Fusion model card, so its bands, normalisation and threshold "
            "are unknown; export the model package with 'Export model to ONNX'."
        )
    try:
        return ModelCard.from_json(text)
    except ValueError as exc:
        raise RtsFusionError(f"The model card in '{path}' is invalid: {exc}.") from exc


def read_onnx_card(path: str) -> ModelCard:
    """Read and validate the card of an exported .onnx model.

    Raises:
        RtsFusionError: missing, unreadable or corrupt file; no card or an invalid one.

    """
    session = _session(path, ["CPUExecutionProvider"])
    return card_from_metadata(path, dict(session.get_modelmeta().custom_metadata_map))


def choose_providers(device: str, available: list[str]) -> tuple[list[str], str]:
    """Execution providers for a device choice, and the device name to report.

    "auto" takes the first accelerated provider installed (CUDA, DirectML, CoreML), else the CPU; "cuda" needs
    the CUDA provider; "cpu" is the CPU only.

    Raises:
        RtsFusionError: an unknown device, or CUDA asked for but not installed.

    """
    if device == "cpu":
        return ["CPUExecutionProvider"], "cpu"
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise RtsFusionError(
                "CUDA was requested but this ONNX Runtime has no CUDA execution provider (installed: "
                f"{', '.join(available)}); install onnxruntime-gpu, or use 'cpu' or 'auto'."
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda"
    if device != "auto":
        raise RtsFusionError(f"Unknown device {device!r}; use auto, cpu or cuda.")
    for name in _ACCELERATED:
        if name in available:
            return [name, "CPUExecutionProvider"], _PROVIDER_DEVICE[name]
    return ["CPUExecutionProvider"], "cpu"


@dataclass(frozen=True)
class OnnxModel:
    """An exported model ready for ONNX Runtime: its file and card.

    Sessions are made once per set of execution providers and reused (a LoadedModel mapping many units pays the
    graph optimisation once).
    """

    path: str
    card: ModelCard
    sessions: dict = field(default_factory=dict, compare=False, repr=False)

    def __reduce__(self):
        """Pickled without its sessions (they cannot be), e.g. to send to a worker process: made again there."""
        return (OnnxModel, (self.path, self.card))

    def predictor(
        self, device: str = "auto", tta: bool = False, log: Callable[[str], None] | None = None
    ) -> tuple[OrtPredictor, str]:
        """An engine PredictFn running this model on a device, and the device's name.

        Raises:
            RtsFusionError: the device cannot be used, or the file cannot be loaded.

        """
        providers, name = choose_providers(device, list(_ort().get_available_providers()))
        key = tuple(providers)
        if key not in self.sessions:
            self.sessions[key] = _session(self.path, providers)
        session = self.sessions[key]
        used = session.get_providers()
        if used and used[0] != providers[0]:
            (log or (lambda _m: None))(f"Warning: {providers[0]} could not start; ONNX Runtime runs on {used[0]}.")
            name = _PROVIDER_DEVICE.get(used[0], used[0])
        return OrtPredictor(session, tta), f"{name} (ONNX Runtime)"


def load_onnx(path: str) -> OnnxModel:
    """Open an exported model: its card is read and checked, the graph is loaded once to prove it runs.

    Raises:
        RtsFusionError: unreadable/corrupt file, no card, an invalid card, or inputs that do not match the card.

    """
    cpu = ["CPUExecutionProvider"]
    session = _session(path, cpu)
    card = card_from_metadata(path, dict(session.get_modelmeta().custom_metadata_map))
    inputs = session.get_inputs()
    channels = inputs[0].shape[1] if inputs and len(inputs[0].shape) == 4 else None
    if len(inputs) != 1 or channels != len(card.bands):
        raise RtsFusionError(
            f"'{path}' does not take the {len(card.bands)} bands its card lists (inputs: "
            f"{', '.join(f'{i.name} {i.shape}' for i in inputs)}); export it again."
        )
    return OnnxModel(path, card, {tuple(cpu): session})


class OrtPredictor:
    """The engine's PredictFn on an ONNX Runtime session: normalised tiles in, probabilities out."""

    def __init__(self, session: Any, tta: bool = False) -> None:
        """Keep the session; `tta` averages the four flips as the PyTorch path does."""
        self.session = session
        self.input = session.get_inputs()[0].name
        self.tta = tta

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (B, t, t) of normalised tiles (B, C, t, t)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        flips = [(), (-1,), (-2,), (-2, -1)] if self.tta else [()]
        out = None
        for axes in flips:
            xi = np.ascontiguousarray(np.flip(x, axes)) if axes else x
            p = self.session.run(None, {self.input: xi})[0][:, 0]  # (B, 1, t, t) → (B, t, t)
            p = np.flip(p, axes) if axes else p
            out = p if out is None else out + p
        return (out / len(flips)).astype(np.float32, copy=False)
