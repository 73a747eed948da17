"""LR/HR image pairs for super-resolution, from any dataset of the data layer.

HR images are whole images (cut to a multiple of the scale), centre or random crops of
``hr_size``, or whole images resized to ``hr_size``; LR images are made from them with
MATLAB-compatible bicubic :func:`medsyn.data.transforms.matlab_resize.imresize` (1/scale), as
in the SR literature. Everything stays uint8 ``[N, C, H, W]``.

    pairs = load_sr_pairs("cxr3", split="train", scale=4)        # HR 256 px, LR 64 px
    pairs.lr, pairs.hr, pairs.describe()
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from medsyn.data.transforms.matlab_resize import imresize_batch
from medsyn.errors import ConfigError

HR_MODES = ("center", "random", "resize")


@dataclass(eq=False)
class SRPairs:
    """LR and HR uint8 tensors ``[N, C, H/scale, W/scale]`` / ``[N, C, H, W]``, row-aligned."""

    lr: torch.Tensor
    hr: torch.Tensor
    scale: int
    labels: torch.Tensor
    class_names: list[str]
    hr_mode: str
    dataset: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.hr.shape[0])

    @property
    def channels(self) -> int:
        return int(self.hr.shape[1])

    @property
    def hr_size(self) -> tuple[int, int]:
        return int(self.hr.shape[2]), int(self.hr.shape[3])

    @property
    def lr_size(self) -> tuple[int, int]:
        return int(self.lr.shape[2]), int(self.lr.shape[3])

    def describe(self) -> dict:
        return {"scale": self.scale, "n": len(self), "channels": self.channels,
                "hr_size": list(self.hr_size), "lr_size": list(self.lr_size),
                "hr_mode": self.hr_mode,
                "degradation": "MATLAB imresize bicubic 1/scale (antialiased), uint8",
                "dataset": self.dataset}


def _check_scale(scale) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ConfigError(f"scale must be an int >= 1, got {scale!r}.")
    return int(scale)


def _as_uint8_batch(images) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise ConfigError(
            f"images must be uint8 [N, C, H, W], got "
            f"{getattr(images, 'dtype', type(images).__name__)} "
            f"{tuple(getattr(images, 'shape', ()))}.")
    return images


def crop_hr(images, scale: int, hr_size: int | None = None, crop: str = "center",
            seed: int = 0) -> torch.Tensor:
    """HR images from uint8 ``[N, C, H, W]``: whole (``hr_size`` None) or ``hr_size`` crops.

    ``hr_size=None`` keeps whole images, cutting the bottom/right rows and columns that are
    not a multiple of ``scale`` (MATLAB ``modcrop``). Otherwise each image gives one
    ``hr_size`` x ``hr_size`` crop, centred (``crop="center"``) or at a random position per
    image drawn from ``seed`` (``crop="random"``); ``hr_size`` must divide by ``scale``.
    """
    images = _as_uint8_batch(images)
    scale = _check_scale(scale)
    n, _, h, w = images.shape
    if hr_size is None:
        hh, ww = h - h % scale, w - w % scale
        if hh == 0 or ww == 0:
            raise ConfigError(f"images of {h}x{w} px are smaller than scale {scale}.")
        return images[:, :, :hh, :ww].clone()
    if isinstance(hr_size, bool) or not isinstance(hr_size, (int, np.integer)) or hr_size < 1:
        raise ConfigError(f"hr_size must be a positive int, got {hr_size!r}.")
    if hr_size % scale:
        raise ConfigError(f"hr_size {hr_size} is not a multiple of scale {scale}; use e.g. "
                          f"{hr_size - hr_size % scale or scale}.")
    if hr_size > h or hr_size > w:
        raise ConfigError(
            f"hr_size {hr_size} is larger than the images ({h}x{w}); crops cannot be larger "
            "than the image. Use a smaller hr_size, or crop='resize' to resize whole images.")
    if crop == "center":
        top, left = (h - hr_size) // 2, (w - hr_size) // 2
        return images[:, :, top:top + hr_size, left:left + hr_size].clone()
    if crop == "random":
        gen = torch.Generator().manual_seed(seed)
        tops = torch.randint(0, h - hr_size + 1, (n,), generator=gen)
        lefts = torch.randint(0, w - hr_size + 1, (n,), generator=gen)
        rows = tops[:, None] + torch.arange(hr_size)          # [N, hr]
        cols = lefts[:, None] + torch.arange(hr_size)         # [N, hr]
        idx = torch.arange(n)[:, None, None]
        # images[n, :, rows[n], cols[n]] for every n in one gather
        out = images.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]]
        return out.permute(0, 3, 1, 2).contiguous()
    raise ConfigError(f"crop must be 'center' or 'random' here, got {crop!r}.")


def make_lr(hr, scale: int) -> torch.Tensor:
    """LR images: MATLAB bicubic ``imresize(hr, 1/scale)`` of uint8 ``[N, C, H, W]``."""
    hr = _as_uint8_batch(hr)
    scale = _check_scale(scale)
    if hr.shape[2] % scale or hr.shape[3] % scale:
        raise ConfigError(f"HR images of {hr.shape[2]}x{hr.shape[3]} px are not multiples of "
                          f"scale {scale}; crop them first (crop_hr).")
    return imresize_batch(hr, 1.0 / scale)


def load_sr_pairs(name: str, split: str = "train", scale: int = 4, hr_size: int | None = None,
                  crop: str = "center", root: str | os.PathLike | None = None,
                  seed: int = 0) -> SRPairs:
    """LR/HR pairs from ``medsyn.data.load_dataset(name, split)``.

    ``hr_size=None``: whole images (cxr3: 256 px HR, 64 px LR at scale 4). With ``hr_size``:
    ``crop`` = "center" / "random" crops of that size, or "resize" to resize whole images to
    it (the data layer's bicubic resize) before the LR images are made.
    """
    from medsyn.data import load_dataset

    scale = _check_scale(scale)
    if crop not in HR_MODES:
        raise ConfigError(f"crop must be one of {', '.join(HR_MODES)}, got {crop!r}.")
    if crop == "resize":
        if hr_size is None:
            raise ConfigError("crop='resize' needs an hr_size to resize to.")
        if hr_size % scale:
            raise ConfigError(f"hr_size {hr_size} is not a multiple of scale {scale}.")
        ds = load_dataset(name, split, image_size=hr_size, root=root)
        hr = ds.images
        mode = f"whole images resized to {hr_size} px"
    else:
        ds = load_dataset(name, split, root=root)
        hr = crop_hr(ds.images, scale, hr_size, crop, seed)
        h, w = ds.image_size
        if hr_size is None or (hr_size == h and hr_size == w):
            mode = "whole images" + ("" if hr.shape[2:] == ds.images.shape[2:]
                                     else f" cut to multiples of {scale}")
        else:
            mode = f"{crop} crops of {hr_size} px" + (f" (seed {seed})" if crop == "random"
                                                      else "")
    lr = make_lr(hr, scale)
    info = {"name": ds.name, "split": ds.split, "fingerprint": ds.fingerprint,
            "class_names": list(ds.class_names), "image_size": list(ds.image_size),
            "channels": ds.channels}
    return SRPairs(lr=lr, hr=hr, scale=scale, labels=ds.labels.clone(),
                   class_names=list(ds.class_names), hr_mode=mode, dataset=info)


def paired_random_crop(lr: torch.Tensor, hr: torch.Tensor, hr_patch: int, scale: int,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
    """Aligned random patches (one per image): HR ``hr_patch`` px, LR ``hr_patch/scale`` px.

    For training on patches (the paper uses 96 px HR crops) from pre-computed pairs; the LR
    patch covers exactly the HR patch's area.
    """
    scale = _check_scale(scale)
    if hr_patch % scale:
        raise ConfigError(f"hr_patch {hr_patch} is not a multiple of scale {scale}.")
    n, _, h, w = lr.shape
    if hr.shape[0] != n or hr.shape[2] != h * scale or hr.shape[3] != w * scale:
        raise ConfigError(f"LR {tuple(lr.shape)} and HR {tuple(hr.shape)} are not a scale "
                          f"{scale} pair.")
    p = hr_patch // scale
    if p > h or p > w:
        raise ConfigError(f"hr_patch {hr_patch} is larger than the HR images "
                          f"({h * scale}x{w * scale}).")
    tops = torch.randint(0, h - p + 1, (n,), generator=generator).to(lr.device)
    lefts = torch.randint(0, w - p + 1, (n,), generator=generator).to(lr.device)
    idx = torch.arange(n, device=lr.device)[:, None, None]

    def gather(images, t, l_, size):
        offsets = torch.arange(size, device=images.device)
        rows = (t[:, None] + offsets)[:, :, None]
        cols = (l_[:, None] + offsets)[:, None, :]
        return images.permute(0, 2, 3, 1)[idx, rows, cols].permute(0, 3, 1, 2).contiguous()

    return (gather(lr, tops, lefts, p),
            gather(hr, tops * scale, lefts * scale, hr_patch))
