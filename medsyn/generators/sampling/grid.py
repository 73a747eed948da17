"""Sample grids: a PNG with one row per class, class names in a left margin."""

from __future__ import annotations

import math
import os

import torch
from PIL import Image, ImageDraw, ImageFont

from medsyn.utils import atomic_write

MIN_CELL = 64     # small images are enlarged (nearest neighbour, whole factor) to at least this
PAD = 2


def grid_image(images: torch.Tensor, rows: int, row_names: list[str] | None = None,
               min_cell: int = MIN_CELL) -> Image.Image:
    """A PIL image of uint8 ``images`` [rows * cols, C, H, W] laid out row by row."""
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError("images must be uint8 [N, C, H, W]")
    n, c, h, w = images.shape
    cols = math.ceil(n / rows)
    factor = max(1, math.ceil(min_cell / max(h, w)))
    ch, cw = h * factor, w * factor
    font = ImageFont.load_default()
    margin = 0
    if row_names:
        probe = ImageDraw.Draw(Image.new("L", (1, 1)))
        margin = max(int(probe.textlength(name, font=font)) for name in row_names) + 3 * PAD
    mode = "L" if c == 1 else "RGB"
    canvas = Image.new(mode, (margin + cols * (cw + PAD) + PAD, rows * (ch + PAD) + PAD),
                       255 if mode == "L" else (255, 255, 255))
    arr = images.permute(0, 2, 3, 1).numpy()
    for i in range(n):
        r, col = divmod(i, cols)
        tile = Image.fromarray(arr[i, :, :, 0] if c == 1 else arr[i], mode)
        if factor > 1:
            tile = tile.resize((cw, ch), Image.Resampling.NEAREST)
        canvas.paste(tile, (margin + PAD + col * (cw + PAD), PAD + r * (ch + PAD)))
    if row_names:
        draw = ImageDraw.Draw(canvas)
        for r, name in enumerate(row_names[:rows]):
            draw.text((PAD, PAD + r * (ch + PAD) + ch // 2 - 5), name,
                      fill=0 if mode == "L" else (0, 0, 0), font=font)
    return canvas


def save_grid(path: str | os.PathLike, images: torch.Tensor, rows: int,
              row_names: list[str] | None = None) -> None:
    """Write the grid atomically as PNG."""
    img = grid_image(images, rows, row_names)
    with atomic_write(path) as f:
        img.save(f, format="PNG")
