"""Where and how the networks run: precision (fp32 / bf16 / fp16 autocast with a grad scaler),
cuDNN / TF32 settings, channels_last, ``torch.compile`` and unwrapping of DDP / compiled modules."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from medsyn.errors import ConfigError

PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Precision:
    """How forward passes run: ``fp32``, or autocast to ``bf16`` / ``fp16`` (with a grad scaler).

    Weights, optimizer state and losses stay float32 in every mode; only the forward
    computations inside :meth:`autocast` use the lower precision.
    """

    name: str
    device_type: str

    @property
    def dtype(self) -> torch.dtype:
        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.name]

    @property
    def uses_grad_scaler(self) -> bool:
        return self.name == "fp16"

    def autocast(self):
        if self.name == "fp32":
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A scaler that is a pass-through unless the precision is fp16, so loops need no branch."""
        return torch.amp.GradScaler(self.device_type, enabled=self.uses_grad_scaler)


def resolve_precision(spec: str, device: torch.device) -> Precision:
    """``auto``: bf16 on a GPU that supports it, fp16 + grad scaling on older GPUs, fp32 on CPU."""
    text = str(spec).strip().lower()
    if text not in PRECISION_CHOICES:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISION_CHOICES)}, "
                          f"got {spec!r}.")
    if text == "auto":
        if device.type == "cuda":
            text = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            text = "fp32"
    if text == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"--precision bf16: GPU {torch.cuda.get_device_name(device)} does not "
                          "support bfloat16; use --precision fp16 or auto.")
    return Precision(text, device.type)


def configure_backends(device: torch.device, deterministic: bool = False) -> None:
    """cuDNN autotuning and TF32 on GPUs; ``deterministic`` trades speed for repeatable GPU runs."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.allow_tf32 = not deterministic
    torch.backends.cuda.matmul.allow_tf32 = not deterministic


def use_channels_last(spec: bool | None, device: torch.device) -> bool:
    """channels_last memory format: on by default on GPUs (tensor cores), off on CPU."""
    return device.type == "cuda" if spec is None else bool(spec)


def maybe_compile(module: nn.Module, enabled: bool) -> nn.Module:
    return torch.compile(module) if enabled else module


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module under DistributedDataParallel and ``torch.compile`` wrappers."""
    while True:
        if isinstance(module, nn.parallel.DistributedDataParallel):
            module = module.module
        elif hasattr(module, "_orig_mod"):
            module = module._orig_mod
        else:
            return module
