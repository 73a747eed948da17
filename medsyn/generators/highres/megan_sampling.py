"""How a MEGAN makes a whole image, and what a ``megan`` checkpoint loads as.

    gen = medsyn.generators.load_checkpoint("runs/megan-cxr3-256px/last.pt")
    images = gen.sample(16, seed=0)           # torch.uint8 [16, C, 256, 256]

Sampling, scale by scale (:func:`generate_megan`):

1. the low-resolution edge map: MEGAN translates sketches into images, and nothing generates
   sketches, so each image takes the low-resolution Canny edge map of a training image of its
   class, drawn from the seed (the checkpoint's ``edge bank``, stored in ``models``);
2. the U-Net makes the whole low-resolution image from that edge map and a noise plane;
3. each higher scale: the previous scale upscaled 2x (bilinear), its Canny edge map at this
   scale, and a noise plane are cut into tiles, and the scale's patch generator makes each tile
   (:func:`medsyn.generators.highres.patches.assemble`, the seam rule): by default from
   conditions with a context margin of ``TILE_CONTEXT`` pixels, and with instance-norm
   statistics of the whole scale gathered tile by tile; ``tile_context=0`` gives the plain
   tiling of the first runs (each tile alone, normalised on its own).

The patch generators were trained on the same conditions computed from real images (the
upscaled real previous scale and its edges), so what they see at sampling time is what they
learnt from. Because every sample follows the low-resolution outline of a training image,
the memorisation metrics of ``medsyn evaluate`` are the check to read (docs/highres.md).
"""

from __future__ import annotations

from pathlib import Path

import torch

from medsyn.data.transforms.edges import DEFAULT_CANNY, CannyParams
from medsyn.errors import CheckpointError, ConfigError
from medsyn.generators.highres.checkpoint import HighResCheckpoint, check_finite
from medsyn.generators.highres.megan_nets import build_megan, class_planes, join
from medsyn.generators.highres.patches import assemble, edge_condition, upscale
from medsyn.model_range import to_model_range, to_uint8

TILE_BATCH = 64
# 16 px of context removed the seams on cxr3 (seam ratio 1.13 as without tiles, docs/highres.md)
TILE_CONTEXT = 16


def check_tile_context(tile_context: int, scales: list[int]) -> int:
    """``tile_context`` as sampling uses it, or a one-line :class:`ConfigError`: a
    non-negative even number (the patch generators halve the resolution once) smaller than
    the smallest tiled scale (the reflection at the border needs that)."""
    if isinstance(tile_context, bool) or not isinstance(tile_context, int) or tile_context < 0:
        raise ConfigError(f"tile_context={tile_context!r}: the context margin of MEGAN's tiles "
                          "must be a whole number of pixels >= 0 (0: plain tiling).")
    if tile_context % 2:
        raise ConfigError(f"tile_context={tile_context}: the context margin must be even (the "
                          "patch generators work at half resolution inside); use "
                          f"{tile_context + 1} or {tile_context - 1}.")
    if len(scales) > 1 and tile_context >= scales[1]:
        raise ConfigError(f"tile_context={tile_context}: the context margin must be smaller "
                          f"than the smallest tiled scale ({scales[1]} px).")
    return tile_context


def pick_edges(bank_labels: torch.Tensor, labels: torch.Tensor, rng: torch.Generator,
               ) -> torch.Tensor:
    """Indices into the edge bank: for each requested image, a bank entry of its class,
    drawn with ``rng``."""
    index = torch.empty(len(labels), dtype=torch.long)
    for k in labels.unique().tolist():
        members = torch.nonzero(bank_labels == k).flatten()
        where = torch.nonzero(labels == k).flatten()
        index[where] = members[torch.randint(len(members), (len(where),), generator=rng)]
    return index


@torch.no_grad()
def generate_megan(generators: list, arch: dict, edges_low_u8: torch.Tensor,
                   labels: torch.Tensor | None, rng: torch.Generator, device: torch.device,
                   tile_batch: int = TILE_BATCH, patch_size: int | None = None,
                   tile_context: int = TILE_CONTEXT) -> torch.Tensor:
    """Images in [-1, 1] ``[N, C, S, S]`` on ``device`` from low-resolution edge maps (uint8
    ``[N, 1, low, low]``). Noise is drawn on the CPU from ``rng``. ``patch_size`` overrides the
    tile size (the whole-image comparison of :mod:`.memory` passes the image size).
    ``tile_context``: the context margin of each tile in pixels, with whole-scale
    instance-norm statistics; 0 is the plain tiling (the seam rule, docs/highres.md)."""
    k, c, patch = arch["num_classes"], arch["channels"], patch_size or arch["patch_size"]
    scales = arch["scales"]
    margin = check_tile_context(tile_context, list(scales))
    # an arch written by hand (memory.py's comparisons) may leave the edges at their defaults
    canny = CannyParams.from_dict(arch["edges"]) if "edges" in arch else DEFAULT_CANNY
    n = len(edges_low_u8)
    labels_d = None if labels is None else labels.to(device)
    e0 = to_model_range(edges_low_u8.to(device))
    z0 = torch.randn(n, 1, scales[0], scales[0], generator=rng).to(device)
    x = generators[0](join(e0, z0, class_planes(labels_d, k, scales[0])))
    for s in range(1, len(scales)):
        up = upscale(x)
        edges = edge_condition(up, canny)
        z = torch.randn(n, 1, scales[s], scales[s], generator=rng).to(device)
        net = generators[s]

        def tile(up_p, e_p, z_p, lb, net=net):
            return net(join(up_p, e_p, z_p, class_planes(lb, k, up_p.shape[-1])))
        x = assemble(tile, [up, edges, z], labels_d, min(patch, scales[s]), c, tile_batch,
                     margin, net if margin else None)
        del up, edges, z
    return x


class MeganCheckpoint(HighResCheckpoint):
    """A MEGAN: ``generators`` (the EMA generator of each scale, low resolution first),
    ``scales``, ``patch_size``, ``edge_bank`` (``edges`` uint8 [N, 1, low, low], ``labels``)."""

    def __init__(self, payload: dict, device: torch.device, path: Path | None = None):
        super().__init__(payload, device, path)
        self.scales = list(self.arch["scales"])
        self.patch_size = int(self.arch["patch_size"])
        self.tile_context = TILE_CONTEXT
        nets = build_megan(self.arch)
        models = payload["models"]
        self.generators = [self._load(nets[f"generator_{s}"], models, f"generator_{s}_ema")
                           for s in range(len(self.scales))]
        bank = models.get("edge_bank") or {}
        self.edge_bank = {"edges": bank.get("edges"), "labels": bank.get("labels")}
        if self.edge_bank["edges"] is None or self.edge_bank["labels"] is None:
            raise CheckpointError(f"{path}: this megan checkpoint holds no edge bank "
                                  "(models['edge_bank']); it cannot sample.")

    def sample(self, n: int, labels=None, seed: int | None = None, batch_size: int = 64,
               tile_batch: int = TILE_BATCH, tile_context: int | None = None) -> torch.Tensor:
        """``n`` images, ``torch.uint8 [n, C, image_size, image_size]`` on the CPU; the edge
        maps and noise are drawn on the CPU from ``seed``; ``labels`` None -> balanced.
        ``tile_context`` (default: the checkpoint's ``tile_context`` attribute, initially
        ``TILE_CONTEXT``): the tiles' context margin, 0 for the plain tiling."""
        tile_context = self.tile_context if tile_context is None else tile_context
        check_tile_context(tile_context, self.scales)
        n = int(n)
        if n < 0:
            raise ValueError("n must be >= 0")
        labels = self._labels_for(n, labels)
        rng = self._rng(seed)
        bank_labels = self.edge_bank["labels"]
        index = (torch.randint(len(bank_labels), (n,), generator=rng) if labels is None
                 else pick_edges(bank_labels, labels, rng))
        out = []
        for i in range(0, n, batch_size):
            lb = None if labels is None else labels[i:i + batch_size]
            y = generate_megan(self.generators, self.arch,
                               self.edge_bank["edges"][index[i:i + batch_size]], lb, rng,
                               self.device, tile_batch, tile_context=tile_context)
            check_finite(y, i)
            out.append(to_uint8(y).cpu())
        if not out:
            return torch.empty(0, self.channels, self.image_size, self.image_size,
                               dtype=torch.uint8)
        return torch.cat(out)


def load_megan_checkpoint(payload: dict, device: torch.device, path: Path | None = None):
    """Registered loader of the ``megan`` kind."""
    return MeganCheckpoint(payload, device, path)
