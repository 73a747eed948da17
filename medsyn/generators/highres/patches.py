"""MEGAN's scales and patches: resampling between scales, edge conditions, patch crops, and
the assembly of a whole image from tiles.

**The seam rule.** A scale above the low resolution is cut into a grid of non-overlapping
``patch x patch`` tiles (row-major, stride = patch size; the patch size divides the scale, so
the grid covers it exactly). Each tile is generated on its own, from the crops of the
conditions at its position (upscaled previous scale, edge map, noise plane), and written to its
place unchanged: no overlap, no blending, no cropping of borders. The only thing that keeps
neighbouring tiles consistent is their conditioning on the previous scale, which the tiles
share (the MEGAN paper's argument); whatever seams remain are measured by the seam statistic
(:mod:`medsyn.evaluators.metrics.highres`, docs/highres.md), not hidden.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from medsyn.data.transforms.edges import DEFAULT_CANNY, CannyParams, canny_edges
from medsyn.model_range import to_model_range, to_uint8


def upscale(x: torch.Tensor) -> torch.Tensor:
    """2x bilinear upsampling (``align_corners=False``): the previous scale as the next one
    sees it, in training and sampling alike."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def downscale(x: torch.Tensor, size: int) -> torch.Tensor:
    """Average pooling of square images to ``size`` (a divisor of their size)."""
    return x if x.shape[-1] == size else F.avg_pool2d(x, x.shape[-1] // size)


def edge_condition(x: torch.Tensor, params: CannyParams = DEFAULT_CANNY) -> torch.Tensor:
    """Canny edges (:func:`medsyn.data.transforms.edges.canny_edges`) of images in [-1, 1], as
    a [-1, 1] map on the same device."""
    edges = canny_edges(to_uint8(x.detach().float()).cpu(), params)
    return to_model_range(torch.from_numpy(edges).to(x.device))


def tile_positions(size: int, patch: int) -> list[tuple[int, int]]:
    """``(top, left)`` of the non-overlapping tiles covering a ``size`` image, row-major."""
    return [(top, left) for top in range(0, size, patch) for left in range(0, size, patch)]


def crop(x: torch.Tensor, tops: Sequence[int], lefts: Sequence[int], patch: int,
         images: Sequence[int] | None = None) -> torch.Tensor:
    """The ``patch x patch`` crops at ``(tops[j], lefts[j])`` of image ``images[j]`` (default:
    image j)."""
    images = range(len(tops)) if images is None else images
    return torch.stack([x[i, :, t:t + patch, left:left + patch]
                        for i, t, left in zip(images, tops, lefts, strict=True)])


def assemble(tile_fn: Callable[..., torch.Tensor], conditions: Sequence[torch.Tensor],
             labels: torch.Tensor | None, patch: int, out_channels: int,
             tile_batch: int = 64) -> torch.Tensor:
    """A whole image ``[N, out_channels, S, S]`` from tiles (the seam rule above).

    ``conditions``: tensors ``[N, *, S, S]`` cropped at each tile; ``tile_fn(*crops, labels)``
    returns the tile ``[n, out_channels, patch, patch]``. At most ``tile_batch`` tiles go
    through ``tile_fn`` at once, which bounds the memory of the networks whatever ``S``.
    """
    n, size = conditions[0].shape[0], conditions[0].shape[-1]
    if size % patch:
        raise ValueError(f"patch size {patch} does not divide the image size {size}")
    out = conditions[0].new_empty(n, out_channels, size, size)
    jobs = [(i, top, left) for top, left in tile_positions(size, patch) for i in range(n)]
    for start in range(0, len(jobs), max(1, tile_batch)):
        chunk = jobs[start:start + tile_batch]
        index = [i for i, _, _ in chunk]
        tops = [t for _, t, _ in chunk]
        lefts = [left for _, _, left in chunk]
        crops = [crop(c, tops, lefts, patch, index) for c in conditions]
        tiles = tile_fn(*crops, None if labels is None else labels[index])
        for (i, top, left), tile in zip(chunk, tiles, strict=True):
            out[i, :, top:top + patch, left:left + patch] = tile
    return out
