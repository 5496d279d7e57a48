"""The model package: one .safetensors file with the weights and, in its metadata, the model card.

Never pickle: loading reads tensors and JSON only. Hashes of the card and of the weights are stored beside
them, so an edited card or altered weights are refused instead of silently giving wrong results.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

from ..core.errors import RtsFusionError
from ..core.outputs import atomic_output
from .card import ModelCard
from .registry import build_model

if TYPE_CHECKING:  # torch is imported where weights are touched: reading a card needs none
    import torch
    from torch import nn

CARD_KEY = "rtsfusion_card"
CARD_HASH_KEY = "rtsfusion_card_sha256"
WEIGHTS_HASH_KEY = "rtsfusion_weights_sha256"


class ModelPackageError(ValueError):
    """The model file cannot be used; the message says why."""


def _weights_hash(state: dict[str, torch.Tensor]) -> str:
    import torch

    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_package(path: str, model: nn.Module, card: ModelCard) -> None:
    """Write the model and its card to one safetensors file (replaced atomically)."""
    from safetensors.torch import save_file

    card.validate()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    text = card.to_json()
    metadata = {
        CARD_KEY: text,
        CARD_HASH_KEY: hashlib.sha256(text.encode()).hexdigest(),
        WEIGHTS_HASH_KEY: _weights_hash(state),
    }
    with atomic_output(path, "model package") as tmp:  # a failed write leaves no partial package
        save_file(state, tmp, metadata=metadata)


def read_card(path: str) -> ModelCard:
    """Read and validate only the card of a package or of an exported .onnx model (cheap: no weights are loaded).

    Raises:
        ModelPackageError: not a readable package, no card, an edited card or an invalid one.

    """
    from .onnx_runtime import is_onnx, read_onnx_card

    if is_onnx(path):
        try:
            return read_onnx_card(path)
        except RtsFusionError as exc:
            raise ModelPackageError(str(exc)) from exc
    from safetensors import safe_open

    if not os.path.isfile(path):
        raise ModelPackageError(f"The model file '{path}' does not exist.")
    try:
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises several types for corrupt headers
        raise ModelPackageError(f"'{path}' is not a readable model package (safetensors): {exc}") from exc
    text = meta.get(CARD_KEY)
    if not text:
        raise ModelPackageError(
            f"'{path}' has no RTS Fusion model card; it was not written by RTS Fusion (train a model with "
            "'Train RTS model')."
        )
    if hashlib.sha256(text.encode()).hexdigest() != meta.get(CARD_HASH_KEY):
        raise ModelPackageError(f"The model card in '{path}' was modified after training; refusing to use it.")
    try:
        return ModelCard.from_json(text)
    except ValueError as exc:
        raise ModelPackageError(f"The model card in '{path}' is invalid: {exc}.") from exc


def load_package(path: str, device: str = "cpu") -> tuple[nn.Module, ModelCard]:
    """Load a package: validated card, the network rebuilt from its config, the weights checked and loaded.

    Returns:
        (model in eval mode on `device`, card).

    Raises:
        ModelPackageError: unreadable file, missing/edited/invalid card, weights that do not match.

    """
    from .onnx_runtime import is_onnx

    if is_onnx(path):
        raise ModelPackageError(
            f"'{path}' is an exported ONNX model, which serves mapping only; this step needs the model package "
            "(.safetensors) it was exported from, and PyTorch."
        )
    from safetensors import safe_open
    from safetensors.torch import load_file

    card = read_card(path)
    try:
        state = load_file(path, device="cpu")
        with safe_open(path, framework="pt") as f:
            expected = (f.metadata() or {}).get(WEIGHTS_HASH_KEY)
    except Exception as exc:
        raise ModelPackageError(f"The weights in '{path}' cannot be read: {exc}") from exc
    if _weights_hash(state) != expected:
        raise ModelPackageError(f"The weights in '{path}' were altered after training; refusing to use them.")
    try:
        model = build_model(card.config)
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError) as exc:
        raise ModelPackageError(f"The weights in '{path}' do not fit the architecture in its card: {exc}") from exc
    return model.to(device).eval(), card
