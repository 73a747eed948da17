"""The object an ``srresnet`` / ``srgan`` checkpoint loads as.

    sr = medsyn.generators.load_checkpoint("runs/srgan-cxr3-x4/last.pt")
    sr.kind, sr.scale, sr.channels, sr.metadata["content_loss"]
    hr = sr.upscale(lr_uint8)          # uint8 [N, C, h, w] -> uint8 [N, C, h x scale, w x scale]
"""

from __future__ import annotations

from pathlib import Path

import torch

from medsyn.errors import CheckpointError, MedsynError
from medsyn.generators.checkpoint import checkpoint_metadata
from medsyn.generators.image_files import check_model_images
from medsyn.generators.interface import Task
from medsyn.generators.sr.networks import build_sr_networks, upscale_uint8


class SRInputError(MedsynError, ValueError):
    """LR images given to :meth:`SRCheckpoint.upscale` have the wrong type, shape or channels."""


class SRCheckpoint:
    """A trained super-resolution generator loaded from a checkpoint.

    ``kind`` ("srresnet" | "srgan"), ``scale``, ``channels``, ``hr_size`` / ``lr_size`` (the
    training data's), ``class_names`` (of the training data; SR does not use them),
    ``content_loss`` (what the adversarial phase minimised, :meth:`ContentLoss.info`),
    ``phase`` (of the saved epoch), ``epoch``, ``step``, ``metadata`` (the checkpoint without
    network/optimizer/RNG state), ``generator`` (eval mode, on ``device``), ``path``.
    """

    def __init__(self, payload: dict, device: torch.device, path: Path | None = None):
        self.path = path
        self.device = device
        self.metadata = checkpoint_metadata(payload)
        self.kind = payload["kind"]
        self.task = Task.SUPER_RESOLUTION
        arch = payload["arch"]
        self.arch = dict(arch)
        self.scale = int(arch["scale"])
        self.channels = int(arch["channels"])
        sr = payload.get("sr") or {}
        self.hr_size = sr.get("hr_size")
        self.lr_size = sr.get("lr_size")
        self.class_names = list((payload.get("dataset") or {}).get("class_names") or [])
        self.content_loss = dict(payload.get("content_loss") or {})
        self.phase = payload.get("phase")
        self.epoch = int(payload["epoch"])
        self.step = int(payload["step"])
        # only the generator is needed to upscale; the discriminator stays in the file
        generator, _ = build_sr_networks({**arch, "discriminator": None})
        try:
            generator.load_state_dict(payload["models"]["generator"])
        except (KeyError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"{path}: the generator weights do not match its recorded "
                                  f"{self.kind} architecture ({first}).") from None
        self.generator = generator.to(device).eval()

    def __repr__(self) -> str:
        return (f"SRCheckpoint(kind={self.kind!r}, scale={self.scale}, channels={self.channels}, "
                f"epoch={self.epoch}, step={self.step}, phase={self.phase!r}, "
                f"content_loss={self.content_loss.get('description')!r}, "
                f"path={str(self.path)!r})")

    def upscale(self, lr, batch_size: int = 16, amp: bool = False) -> torch.Tensor:
        """Super-resolve uint8 LR images ``[N, C, h, w]`` (or one ``[C, h, w]``) to uint8
        ``[N, C, h x scale, w x scale]`` on the CPU.

        Images go through the generator in eval mode
        (:func:`~medsyn.generators.sr.networks.upscale_uint8`); ``amp``: float16 autocast on
        CUDA.
        """
        lr, single = check_model_images(lr, self.channels, model=self.kind,
                                        noun="LR images", error=SRInputError)
        if lr.shape[0] == 0:
            return torch.empty(0, self.channels, lr.shape[2] * self.scale,
                               lr.shape[3] * self.scale, dtype=torch.uint8)
        out = upscale_uint8(self.generator, lr, batch_size=batch_size, device=self.device,
                            amp=amp)
        return out[0] if single else out


def load_sr_checkpoint(payload: dict, device: torch.device, path: Path | None = None):
    """Registered loader of the ``srresnet`` / ``srgan`` kinds."""
    return SRCheckpoint(payload, device, path)
