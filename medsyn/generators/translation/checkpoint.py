"""The object a ``pix2pix`` / ``cyclegan`` checkpoint loads as.

    model = medsyn.generators.load_checkpoint("runs/pix2pix-cxr3-edges-64px/last.pt")
    model.kind, model.task, model.paired, model.condition, model.image_size
    out = model.translate(images)              # uint8 [N, C_in, H, W] -> uint8 [N, C, H, W]
    inputs = model.make_condition(targets)      # pix2pix: the input the model was trained on
    back = model.translate(out, direction="backward")   # cyclegan: B -> A
"""

from __future__ import annotations

from pathlib import Path

import torch

from medsyn.errors import CheckpointError, MedsynError
from medsyn.generators.checkpoint import checkpoint_metadata
from medsyn.generators.image_files import check_model_images
from medsyn.generators.interface import Task
from medsyn.generators.translation.networks import build_translation_networks, translate_uint8

DIRECTIONS = ("forward", "backward")


class TranslationInputError(MedsynError, ValueError):
    """Images given to :meth:`TranslationCheckpoint.translate` have the wrong type, shape,
    channels or size."""


class TranslationCheckpoint:
    """A trained translation model loaded from a checkpoint.

    ``kind`` ("pix2pix" | "cyclegan"), ``task`` (translation), ``paired`` (pix2pix),
    ``input_channels`` / ``channels`` (of the inputs / outputs), ``image_size`` (training
    size; the networks are fully convolutional, other sizes divisible alike also work),
    ``condition`` (pix2pix: how inputs were built), ``source`` / ``target`` (cyclegan: the
    domains), ``class_names`` (of the training data), ``epoch``, ``step``, ``metadata``,
    ``generator`` (eval mode; cyclegan: both generators as ``.g_ab`` / ``.g_ba``; the EMA
    generator when the run kept one, ``ema`` True), ``path``.
    """

    def __init__(self, payload: dict, device: torch.device, path: Path | None = None):
        self.path = path
        self.device = device
        self.metadata = checkpoint_metadata(payload)
        self.kind = payload["kind"]
        self.task = Task.TRANSLATION
        arch = payload["arch"]
        self.arch = dict(arch)
        self.paired = self.kind == "pix2pix"
        self.channels = int(arch["channels"])
        self.input_channels = int(arch["in_channels"])
        self.image_size = int(arch["image_size"])
        info = payload.get("translation") or {}
        self.condition = dict(info.get("condition") or {}) if self.paired else None
        self.source = info.get("source")
        self.target = info.get("target")
        self.class_names = list((payload.get("dataset") or {}).get("class_names") or [])
        self.epoch = int(payload["epoch"])
        self.step = int(payload["step"])
        models = payload.get("models") or {}
        # a run with --ema-decay saved its averaged generator: that one translates
        self.ema = models.get("generator_ema") is not None
        generator, _ = build_translation_networks(arch)
        try:
            generator.load_state_dict(models["generator_ema" if self.ema else "generator"])
        except (KeyError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"{path}: the generator weights do not match its recorded "
                                  f"{self.kind} architecture ({first}).") from None
        self.generator = generator.to(device).eval()

    def __repr__(self) -> str:
        what = (f"condition={self.condition.get('condition')!r}" if self.paired else
                f"source={(self.source or {}).get('selection')!r}, "
                f"target={(self.target or {}).get('selection')!r}")
        return (f"TranslationCheckpoint(kind={self.kind!r}, {what}, image_size={self.image_size},"
                f" epoch={self.epoch}, step={self.step}, path={str(self.path)!r})")

    def _network(self, direction: str):
        if direction not in DIRECTIONS:
            raise TranslationInputError(f"direction must be forward or backward, got "
                                        f"{direction!r}.")
        if self.paired:
            if direction == "backward":
                raise TranslationInputError("a pix2pix model translates one way only; "
                                            "direction='backward' needs a cyclegan model.")
            return self.generator, self.input_channels, self.channels
        if direction == "forward":
            return self.generator.g_ab, self.input_channels, self.channels
        return self.generator.g_ba, self.channels, self.input_channels

    def _check(self, images, channels: int) -> tuple[torch.Tensor, bool]:
        images, single = check_model_images(images, channels, model=self.kind,
                                            error=TranslationInputError)
        multiple = self._size_multiple()
        h, w = images.shape[2:]
        if h % multiple or w % multiple or h < multiple:
            raise TranslationInputError(
                f"images of {h}x{w} px do not fit this {self.kind} model: both sides must be "
                f"multiples of {multiple} (it was trained at {self.image_size} px); resize "
                "them first.")
        return images, single

    def _size_multiple(self) -> int:
        if self.paired:
            return 2 ** int(self.arch["generator"]["depth"])
        return 4

    def translate(self, images, batch_size: int = 16, direction: str = "forward",
                  amp: bool = False) -> torch.Tensor:
        """Translate uint8 images ``[N, C, H, W]`` (or one ``[C, H, W]``) to uint8 images of
        the same size on the CPU. ``direction``: cyclegan ``forward`` (source -> target) or
        ``backward``; ``amp``: float16 autocast on CUDA."""
        net, channels_in, channels_out = self._network(direction)
        images, single = self._check(images, channels_in)
        if images.shape[0] == 0:
            return torch.empty(0, channels_out, *images.shape[2:], dtype=torch.uint8)
        out = translate_uint8(net, images, batch_size=batch_size, device=self.device, amp=amp)
        return out[0] if single else out

    def make_condition(self, images) -> torch.Tensor:
        """pix2pix: the input this model was trained on, built from target-like images
        (edges, low resolution or noise, with the run's settings)."""
        from medsyn.generators.translation.data import make_condition

        if not self.paired or self.condition.get("condition") not in ("edges", "lowres",
                                                                      "noise"):
            raise TranslationInputError(
                f"this {self.kind} model was not trained on inputs built from images "
                "(--condition); give it inputs of its own kind.")
        images, _ = self._check(images, self.channels)
        c = self.condition
        return make_condition(images, c["condition"], canny_sigma=c.get("canny_sigma", 2.0),
                              lowres_scale=c.get("lowres_scale", 4),
                              noise_std=c.get("noise_std", 25.0), seed=c.get("seed", 0))


def load_translation_checkpoint(payload: dict, device: torch.device, path: Path | None = None):
    """Registered loader of the ``pix2pix`` / ``cyclegan`` kinds."""
    return TranslationCheckpoint(payload, device, path)
