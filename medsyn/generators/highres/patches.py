"""MEGAN's scales and patches: resampling between scales, edge conditions, patch crops, and
the assembly of a whole image from tiles.

**The seam rule.** A scale above the low resolution is cut into a grid of non-overlapping
``patch x patch`` tiles (row-major, stride = patch size; the patch size divides the scale, so
the grid covers it exactly); every output pixel comes from exactly one tile: no blending.
Each tile is generated from the crops of the conditions (upscaled previous scale, edge map,
noise plane) around its position, widened by a context margin of ``margin`` pixels on every
side: the real neighbouring condition pixels where they exist, the reflection of the scale at
the image border (the scale is reflect-padded once). Only the tile's ``patch x patch`` centre is
kept, so the network's zero padding falls in the discarded margin. With ``norm_net``, the
network's instance-norm layers use statistics of the whole scale (per image and channel, over
the tile centres only), gathered tile by tile before the tiles are generated
(:class:`WholeScaleNorm`), so every tile is normalised alike and no step appears between
tiles. ``margin=0`` without ``norm_net`` is the plain tiling of the first runs (each tile alone,
normalised on its own statistics). Whatever seams remain are measured by the seam statistic
(:mod:`medsyn.evaluators.metrics.highres`, docs/highres.md), not hidden.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

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


class _Gathered(Exception):
    """Ends a gathering pass at the layer whose statistics it was gathering."""


class WholeScaleNorm:
    """Instance-norm statistics of a whole scale gathered tile by tile, then applied to every
    tile (the seam rule above).

    Forward hooks on ``net``'s :class:`~torch.nn.InstanceNorm2d` layers. A layer's statistics
    depend on the layers before it, so they are gathered one layer per pass: in each pass
    every tile goes through the network with the layers already gathered applying their fixed
    statistics, and the first layer not yet gathered adds the sums and sums of squares
    (float64) of its tile centres to its image's totals and ends that tile's forward there.
    Memory stays that of ``tile_batch`` tiles; the passes cost about half a forward each.
    """

    def __init__(self, net: nn.Module, n_images: int, tiles_per_image: int, tile_size: int,
                 margin: int):
        self.layers = [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]
        self.n_images, self.tiles_per_image = n_images, tiles_per_image
        self.tile_size, self.margin = tile_size, margin
        self.fixed: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
        self.totals: dict[nn.Module, list] = {}
        self.images: list[int] = []       # the image of each tile in the current batch
        self._handles: list = []

    def __enter__(self) -> WholeScaleNorm:
        self._handles = [layer.register_forward_hook(self._hook) for layer in self.layers]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @property
    def complete(self) -> bool:
        return len(self.fixed) == len(self.layers)

    def _centre(self, x: torch.Tensor) -> torch.Tensor:
        """The part of a feature map that lies over the tile's centre (the margin scales with
        the layer's resolution)."""
        size, tile = x.shape[-1], self.tile_size
        if (self.margin * size) % tile:
            raise ValueError(f"a context margin of {self.margin} px does not fall on whole "
                             f"pixels of a {size} px feature map of a {tile} px tile")
        m = self.margin * size // tile
        return x[:, :, m:size - m, m:size - m]

    def _hook(self, layer: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        x = inputs[0]
        if layer in self.fixed:
            mean, var = self.fixed[layer]
            index = torch.as_tensor(self.images, device=x.device)
            y = (x - mean[index, :, None, None]) / torch.sqrt(var[index, :, None, None]
                                                               + layer.eps)
            if layer.affine:
                y = y * layer.weight[None, :, None, None] + layer.bias[None, :, None, None]
            return y
        centre = self._centre(x).double()
        sums = self.totals.setdefault(layer, [
            x.new_zeros(self.n_images, x.shape[1], dtype=torch.float64),
            x.new_zeros(self.n_images, x.shape[1], dtype=torch.float64), 0])
        index = torch.as_tensor(self.images, device=x.device)
        sums[0].index_add_(0, index, centre.sum((2, 3)))
        sums[1].index_add_(0, index, (centre ** 2).sum((2, 3)))
        sums[2] = centre.shape[-1] * centre.shape[-2]
        raise _Gathered

    def finish_pass(self) -> None:
        """Fix the statistics of the layer gathered in the pass that just ended."""
        for layer, (total, squares, pixels_per_tile) in self.totals.items():
            count = pixels_per_tile * self.tiles_per_image   # the centres cover the scale once
            mean = total / count
            var = (squares / count - mean ** 2).clamp_min(0)
            self.fixed[layer] = (mean.float(), var.float())
        self.totals = {}

    def gather(self, send_every_tile: Callable[[], None]) -> None:
        """Gather every layer's statistics; ``send_every_tile()`` sends every tile of the
        scale through the network once, calling :meth:`tile_batch` before each batch."""
        while not self.complete:
            before = len(self.fixed)
            send_every_tile()
            self.finish_pass()
            if len(self.fixed) == before:
                raise RuntimeError("a gathering pass reached no instance-norm layer not yet "
                                   "gathered; the network does not use all its layers")

    def tile_batch(self, images: Sequence[int]) -> None:
        self.images = list(images)


def pad_for_context(x: torch.Tensor, margin: int) -> torch.Tensor:
    """The scale widened by ``margin`` pixels of reflection on every side (the context of the
    tiles at the image border)."""
    if margin and margin >= x.shape[-1]:
        raise ValueError(f"a context margin of {margin} px needs a scale larger than "
                         f"{x.shape[-1]} px")
    return F.pad(x, (margin,) * 4, mode="reflect") if margin else x


def _tile_batches(conditions: Sequence[torch.Tensor], labels: torch.Tensor | None, patch: int,
                  margin: int, tile_batch: int):
    """``(jobs, crops, labels)`` per batch of at most ``tile_batch`` tiles; a job is
    ``(image, top, left)``, the crops are ``patch + 2 margin`` wide (the seam rule)."""
    n, size = conditions[0].shape[0], conditions[0].shape[-1]
    if size % patch:
        raise ValueError(f"patch size {patch} does not divide the image size {size}")
    if margin < 0:
        raise ValueError(f"the context margin must be >= 0, not {margin}")
    padded = [pad_for_context(c, margin) for c in conditions]
    jobs = [(i, top, left) for top, left in tile_positions(size, patch) for i in range(n)]
    step = max(1, tile_batch)
    for start in range(0, len(jobs), step):
        chunk = jobs[start:start + step]
        index = [i for i, _, _ in chunk]
        tops = [t for _, t, _ in chunk]
        lefts = [left for _, _, left in chunk]
        crops = [crop(c, tops, lefts, patch + 2 * margin, index) for c in padded]
        yield chunk, crops, None if labels is None else labels[index]


def whole_scale_statistics(tile_fn: Callable[..., torch.Tensor],
                           conditions: Sequence[torch.Tensor], labels: torch.Tensor | None,
                           patch: int, net: nn.Module, margin: int = 0,
                           tile_batch: int = 64) -> WholeScaleNorm:
    """The instance-norm statistics of the whole scale for ``net`` (the network inside
    ``tile_fn``), gathered tile by tile (arguments as :func:`assemble`); use the result as a
    context manager to apply them."""
    n, size = conditions[0].shape[0], conditions[0].shape[-1]
    norms = WholeScaleNorm(net, n, (size // patch) ** 2, patch + 2 * margin, margin)

    def send_every_tile():
        for chunk, crops, lb in _tile_batches(conditions, labels, patch, margin, tile_batch):
            norms.tile_batch([i for i, _, _ in chunk])
            try:
                tile_fn(*crops, lb)
            except _Gathered:
                pass

    with norms:
        norms.gather(send_every_tile)
    return norms


def assemble(tile_fn: Callable[..., torch.Tensor], conditions: Sequence[torch.Tensor],
             labels: torch.Tensor | None, patch: int, out_channels: int,
             tile_batch: int = 64, margin: int = 0,
             norm_net: nn.Module | None = None) -> torch.Tensor:
    """A whole image ``[N, out_channels, S, S]`` from tiles (the seam rule above).

    ``conditions``: tensors ``[N, *, S, S]`` cropped around each tile, ``margin`` pixels of
    context on every side; ``tile_fn(*crops, labels)`` returns ``[n, out_channels, patch + 2
    margin, patch + 2 margin]``, of which the centre is kept. ``norm_net``: the network inside
    ``tile_fn``, whose instance norms then use whole-scale statistics
    (:func:`whole_scale_statistics`). At most ``tile_batch`` tiles go through ``tile_fn`` at
    once, which bounds the memory of the networks whatever ``S``.
    """
    n, size = conditions[0].shape[0], conditions[0].shape[-1]
    norms = (nullcontext() if norm_net is None else
             whole_scale_statistics(tile_fn, conditions, labels, patch, norm_net, margin,
                                    tile_batch))
    out = conditions[0].new_empty(n, out_channels, size, size)
    with norms:
        for chunk, crops, lb in _tile_batches(conditions, labels, patch, margin, tile_batch):
            if norm_net is not None:
                norms.tile_batch([i for i, _, _ in chunk])
            tiles = tile_fn(*crops, lb)
            for (i, top, left), tile in zip(chunk, tiles, strict=True):
                out[i, :, top:top + patch, left:left + patch] = \
                    tile[:, margin:margin + patch, margin:margin + patch]
    return out
