"""One device and dtype policy for every model that runs on a GPU (the MagicFace editor, ``generate.py
generator=sd_lora``): ``device: auto|cpu|cuda|cuda:N`` and ``dtype: auto|float32|bfloat16|float16``.

``auto`` device: CUDA when available, else CPU. ``auto`` dtype: bfloat16 on a CUDA device that supports it,
float16 on one that does not, float32 on the CPU. Training has its own switch (``trainer.precision``).
"""

from __future__ import annotations

import torch

from complexface.settings import SettingError, require

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def resolve_device(device: str | None) -> torch.device:
    """``auto`` (or None) -> CUDA when available, else CPU; SettingError for a device this machine does not have."""
    device = device or "auto"
    try:
        chosen = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    except (RuntimeError, TypeError):
        raise SettingError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    require(chosen.type in ("cpu", "cuda"), f"unsupported device {device!r}; use auto, cpu, cuda or cuda:N")
    if chosen.type == "cuda":
        require(torch.cuda.is_available(),
                f"device {device!r} asked for, but CUDA is not available here; use auto or cpu")
        require(chosen.index is None or chosen.index < torch.cuda.device_count(),
                f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return chosen


def resolve_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """``auto`` (or None) -> bfloat16 on CUDA with bf16 support, float16 on other CUDA devices, float32 on CPU."""
    dtype = dtype or "auto"
    if dtype == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    require(dtype in DTYPES, f"unknown dtype {dtype!r}; use auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]
