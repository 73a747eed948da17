"""Differentiable augmentation of the discriminator's inputs (DiffAugment, Zhao et al. 2020),
restricted to transforms that are safe for medical images.

The same random transform family is applied to real and to generated images every time the
discriminator sees them, and gradients flow through it to the generator. The discriminator then
cannot memorise the few thousand training images of a small dataset, while the generator is
still asked to match the un-augmented distribution (the transforms are applied to both sides,
so they do not "leak" into the generated images; Zhao et al. 2020, Karras et al. 2020).

Transforms, each drawn independently per image, on images in ``[-1, 1]``:

| name          | what                                                                  |
|---------------|-----------------------------------------------------------------------|
| `translation` | shift by up to 1/8 of the size in x and y (whole pixels), zeros fill  |
| `cutout`      | one square of half the size set to 0, centre anywhere in the image    |
| `brightness`  | add U(-0.5, 0.5)                                                      |
| `contrast`    | scale the deviation from the image mean by U(0.5, 1.5)                |

These are DiffAugment's ``translation``, ``cutout`` and the brightness and contrast parts of its
``color`` policy, with its constants. Left out on purpose: saturation (colour; radiographs are
grey), and flips and rotations (they change anatomy: a mirrored chest radiograph shows the
heart on the wrong side). The random numbers come from torch's global generator, so they are
part of the checkpointed RNG state and a resumed run stays exact.
"""

from __future__ import annotations

import torch
from torch import Tensor

from medsyn.errors import ConfigError

TRANSFORMS = ("translation", "cutout", "brightness", "contrast")
ORDER = ("brightness", "contrast", "translation", "cutout")    # DiffAugment's: color, then geometry
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """``"translation,cutout"`` -> the transforms in the order they are applied; ``"none"`` or
    an empty string -> ``()``."""
    if policy is None:
        return ()
    names = [p.strip() for p in str(policy).split(",") if p.strip()]
    if names in ([], ["none"]):
        return ()
    unknown = [n for n in names if n not in TRANSFORMS]
    if unknown:
        raise ConfigError(f"--augment: unknown transform(s) {', '.join(unknown)}; use a comma "
                          f"list of {', '.join(TRANSFORMS)}, or none.")
    return tuple(n for n in ORDER if n in names)


def brightness(x: Tensor) -> Tensor:
    return x + (torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) - 0.5)


def contrast(x: Tensor) -> Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)
                         + 0.5) + mean


def translate(x: Tensor, shift_y: Tensor, shift_x: Tensor) -> Tensor:
    """Each image moved by whole pixels (``shift_y[i]`` down, ``shift_x[i]`` right); pixels
    moved in from outside are 0."""
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device)[None, :] - shift_y[:, None]        # [N, H] source row
    cols = torch.arange(w, device=x.device)[None, :] - shift_x[:, None]        # [N, W]
    inside = (((rows >= 0) & (rows < h))[:, :, None]
              & ((cols >= 0) & (cols < w))[:, None, :])                         # [N, H, W]
    rows = rows.clamp(0, h - 1)
    cols = cols.clamp(0, w - 1)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = x.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]    # [N, H, W, C]
    return out.permute(0, 3, 1, 2) * inside[:, None].to(x.dtype)


def translation(x: Tensor, ratio: float = TRANSLATION_RATIO) -> Tensor:
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    shift_y = torch.randint(-sy, sy + 1, (n,), device=x.device)
    shift_x = torch.randint(-sx, sx + 1, (n,), device=x.device)
    return translate(x, shift_y, shift_x)


def cutout_mask(shape, centre_y: Tensor, centre_x: Tensor, size_y: int, size_x: int,
                device=None, dtype=torch.float32) -> Tensor:
    """``[N, 1, H, W]``: 0 inside the square of ``size_y x size_x`` whose centre is
    (``centre_y[i]``, ``centre_x[i]``) (clipped at the border), 1 elsewhere."""
    n, _, h, w = shape
    rows = torch.arange(h, device=device)[None, :]
    cols = torch.arange(w, device=device)[None, :]
    top, left = centre_y[:, None] - size_y // 2, centre_x[:, None] - size_x // 2
    in_rows = (rows >= top) & (rows < top + size_y)
    in_cols = (cols >= left) & (cols < left + size_x)
    return (~(in_rows[:, :, None] & in_cols[:, None, :]))[:, None].to(dtype)


def cutout(x: Tensor, ratio: float = CUTOUT_RATIO) -> Tensor:
    n, _, h, w = x.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    centre_y = torch.randint(0, h + (1 - size_y % 2), (n,), device=x.device)
    centre_x = torch.randint(0, w + (1 - size_x % 2), (n,), device=x.device)
    return x * cutout_mask(x.shape, centre_y, centre_x, size_y, size_x, x.device, x.dtype)


_FUNCTIONS = {"brightness": brightness, "contrast": contrast, "translation": translation,
              "cutout": cutout}


class DiffAugment:
    """Callable applying the transforms of ``policy`` (see :func:`parse_policy`) to a batch.
    Falsy when the policy is empty (then the discriminator sees the images as they are)."""

    def __init__(self, policy: str | None):
        self.transforms = parse_policy(policy)

    def __bool__(self) -> bool:
        return bool(self.transforms)

    def __call__(self, x: Tensor) -> Tensor:
        for name in self.transforms:
            x = _FUNCTIONS[name](x)
        return x
