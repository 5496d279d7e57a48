"""Device and precision choice shared by training, detection, importance and the study (torch imported lazily)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..core.errors import RtsFusionError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> torch.device:
    """'auto' → CUDA when available, else CPU; 'cuda' without a GPU is a clear error."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RtsFusionError("CUDA was requested but no CUDA GPU is available to PyTorch; use 'cpu' or 'auto'.")
    if device not in ("cpu", "cuda"):
        raise RtsFusionError(f"Unknown device {device!r}; use auto, cpu or cuda.")
    return torch.device(device)


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed-precision type on CUDA (bf16 where supported, else fp16); None on CPU."""
    import torch

    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def usable_cores() -> int | None:
    """The CPU cores this process may run on, or None where the system does not say (not Linux).

    This is the process's affinity, which a container or a job scheduler can narrow below the machine's count.
    """
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def use_all_cpu_cores() -> None:
    """Let PyTorch use every core this process may run on (its default can be lower in containers).

    OMP_NUM_THREADS, when set, caps it: Dask's worker processes (region mapping) set it to their 1 thread each.
    """
    import torch

    cores = usable_cores() or os.cpu_count()
    cap = os.environ.get("OMP_NUM_THREADS", "")
    if cap.isdigit() and int(cap) > 0:
        cores = min(cores or 1, int(cap))
    torch.set_num_threads(cores or 1)
