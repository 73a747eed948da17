"""Exponential moving average of the generator's weights (the "EMA generator").

After every generator step, each parameter of a shadow copy moves towards the trained one,
``ema = decay_t * ema + (1 - decay_t) * param``; buffers (batch-norm running statistics) are
copied as they are. Averaging the iterates of a GAN generator smooths out the oscillation of
adversarial training and gives better samples than the last iterate (Yazici et al. 2019, "The
unusual effectiveness of averaging in GAN training"; Karras et al. 2018, ProGAN; BigGAN,
StyleGAN). The shadow copy is never trained; it is what sampling, the per-epoch grids and
evaluation use, and it is saved in the checkpoint next to the trained generator (which resume
needs).

``decay_t = min(decay, (1 + t) / (10 + t))`` for update number ``t`` (0-based): the warm-up of
TensorFlow's ``ExponentialMovingAverage(num_updates=t)``, so that the average of a short run is
not dominated by the random initial weights.

Batch norm: the running statistics of the trained generator belong to its own weights, not to
the averaged ones, and sampling with them can ruin the EMA generator's images (measured: an
AC-GAN whose EMA generator drew one image per class while the trained one did not). So before
the EMA generator is used (the grid of each epoch, hence every checkpoint),
:meth:`GeneratorEMA.recompute_batch_norm` recomputes them from its own activations on fresh
noise: BigGAN's "standing statistics" (Brock et al. 2019, appendix C.1), as a cumulative average
over ``STANDING_BATCHES`` batches drawn from a fixed seed (so they never touch the training
RNG streams).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

STANDING_BATCHES = 16
STANDING_BATCH_SIZE = 64
STANDING_SEED = 20190211       # fixed: the statistics are a function of the weights alone


def ema_decay_at(decay: float, updates: int) -> float:
    """The decay used for update number ``updates`` (0-based)."""
    return min(float(decay), (1.0 + updates) / (10.0 + updates))


class GeneratorEMA:
    """The averaged copy of ``generator`` (unwrapped: no DDP / compile wrapper)."""

    def __init__(self, generator: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.module = copy.deepcopy(generator).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, generator: nn.Module, updates: int) -> None:
        """Move towards ``generator``'s current weights; ``updates``: how many updates came
        before this one (the optimizer step count before this step)."""
        d = ema_decay_at(self.decay, updates)
        for e, p in zip(self.module.parameters(), generator.parameters(), strict=True):
            e.lerp_(p.detach().to(e.dtype), 1.0 - d)
        for e, b in zip(self.module.buffers(), generator.buffers(), strict=True):
            e.copy_(b)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)

    @torch.no_grad()
    def recompute_batch_norm(self, draw_inputs: Callable[[int, torch.Generator], tuple],
                             batches: int = STANDING_BATCHES,
                             batch_size: int = STANDING_BATCH_SIZE) -> None:
        """Replace the running statistics of every batch norm layer by the average over
        ``batches`` batches of the EMA generator's own activations. ``draw_inputs(n,
        generator)`` returns the generator's positional inputs for ``n`` images (a GAN's ``(z,
        labels_or_None)``, pix2pix's ``(conditions,)``), drawn with the given CPU
        ``torch.Generator``; tensors are moved to the network's device."""
        norms = [m for m in self.module.modules()
                 if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        if not norms:
            return
        device = next(self.module.parameters()).device
        momenta = [m.momentum for m in norms]
        rng = torch.Generator().manual_seed(STANDING_SEED)
        try:
            for m in norms:
                m.reset_running_stats()
                m.momentum = None                   # cumulative average over the batches
            self.module.train()
            for m in self.module.modules():
                # dropout off (pix2pix's U-Net has some): the statistics are those of the
                # network as it translates, and the training RNG streams stay untouched
                if isinstance(m, nn.modules.dropout._DropoutNd):
                    m.eval()
            for _ in range(batches):
                inputs = draw_inputs(batch_size, rng)
                self.module(*(None if x is None else x.to(device) for x in inputs))
        finally:
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum
            self.module.eval()
