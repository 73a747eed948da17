"""The input conventions of encoders users bring, done the way their reference code does them:
PIL resizes of the uint8 image (not torch's interpolate, whose bicubic differs from PIL's by up
to 8 gray levels on chest X-rays, docs/encoders_research.md section 4), then rescaling and
normalisation in float32.

A pipeline is a list of steps on a PIL image and a normalisation; ``describe()`` is what goes
into the extractor's conventions (so into the cache key and provenance).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from medsyn.errors import ConfigError

FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
           "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}
# transformers' preprocessor_config.json "resample" codes are PIL's
PIL_CODES = {int(v): k for k, v in FILTERS.items()}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Resize:
    """PIL resize to ``(width, height)``, or of the shortest edge to ``shortest_edge`` (the
    long edge ``int(shortest_edge * long / short)``, transformers' rule)."""

    filter: str
    size: tuple[int, int] | None = None
    shortest_edge: int | None = None

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        if self.size is not None:
            out = self.size
        elif w <= h:
            out = (self.shortest_edge, int(self.shortest_edge * h / w))
        else:
            out = (int(self.shortest_edge * w / h), self.shortest_edge)
        return img.resize(out, FILTERS[self.filter])

    def describe(self) -> str:
        target = (f"{self.size[0]}x{self.size[1]} (aspect not kept)" if self.size else
                  f"shortest edge {self.shortest_edge}")
        return f"PIL {self.filter} resize to {target}"


@dataclass(frozen=True)
class CenterCrop:
    """Crop the centre ``(width, height)``; ``None``: the largest centred square.
    ``rounding``: the offset ``(h - ch) // 2`` (transformers, cmmd) or
    ``int(round((h - ch) / 2))`` (torchvision's ``CenterCrop``, used by timm)."""

    size: tuple[int, int] | None = None
    rounding: str = "floor"

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        cw, ch = self.size or (min(w, h), min(w, h))
        if self.rounding == "round":
            top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
        else:
            top, left = (h - ch) // 2, (w - cw) // 2
        return img.crop((left, top, left + cw, top + ch))

    def describe(self) -> str:
        return (f"centre crop {self.size[0]}x{self.size[1]}" if self.size else
                "centre crop to the largest square")


@dataclass(frozen=True)
class PilPipeline:
    """uint8 ``[N, C, H, W]`` (C = 1 or 3) -> float32 ``[N, 3, h, w]``.

    ``rescale``: ``"div"`` is ``float32(x) / 255`` (torchvision's ``ToTensor``, cmmd's
    ``/ 255.0``); ``"mul64"`` is ``float32(float64(x) * rescale_factor)`` (transformers'
    image processors). Then ``(x - mean) / std`` in float32.
    """

    steps: tuple = ()
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    rescale: str = "div"
    rescale_factor: float = 1 / 255
    source: str = ""
    extra: dict = field(default_factory=dict)

    def images(self, batch: torch.Tensor) -> list[Image.Image]:
        arr = batch.cpu().numpy()
        if arr.shape[1] == 1:
            # PIL resizes an "L" image exactly as its RGB copy (measured, max diff 0): resize
            # one channel, replicate after
            return [Image.fromarray(a[0], "L") for a in arr]
        if arr.shape[1] == 3:
            return [Image.fromarray(a.transpose(1, 2, 0), "RGB") for a in arr]
        raise ConfigError(f"images must have 1 or 3 channels, got {arr.shape[1]}.")

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        out = []
        for img in self.images(batch):
            for step in self.steps:
                img = step(img)
            a = np.asarray(img)
            a = np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a
            if self.rescale == "mul64":
                x = (a.astype(np.float64) * self.rescale_factor).astype(np.float32)
            else:
                x = a.astype(np.float32) / np.float32(255)
            x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
            out.append(torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))))
        return torch.stack(out)

    def describe(self) -> dict:
        rescale = ("x / 255 in float32" if self.rescale == "div" else
                   f"float64(x) * {self.rescale_factor:.10g}, then float32")
        return {"input": "uint8 [N, C, H, W]; grayscale replicated to 3 channels after the "
                         "resize (PIL resizes L and RGB alike)",
                "resize": "; ".join(s.describe() for s in self.steps) or "none",
                "rescale": rescale,
                "normalisation": f"mean {list(self.mean)}, std {list(self.std)}",
                **({"preprocessing_follows": self.source} if self.source else {}),
                **self.extra}


def from_preprocessor_config(cfg: dict, source: str, before: tuple = ()) -> PilPipeline:
    """The PIL path of a transformers image processor (``preprocessor_config.json``): resize,
    centre crop, rescale, normalise, as the processor's PIL backend does them. ``before``:
    steps a protocol applies first (CheXGenBench's 299 x 299 bilinear)."""
    steps = list(before)
    if cfg.get("do_resize", True) and cfg.get("size"):
        size = cfg["size"]
        resample = PIL_CODES.get(int(cfg.get("resample", 2)))
        if resample is None:
            raise ConfigError(f"{source}: unknown resample code {cfg.get('resample')!r}.")
        if isinstance(size, int):
            size = {"shortest_edge": size}
        if "shortest_edge" in size:
            steps.append(Resize(resample, shortest_edge=int(size["shortest_edge"])))
        elif "height" in size and "width" in size:
            steps.append(Resize(resample, size=(int(size["width"]), int(size["height"]))))
        else:
            raise ConfigError(f"{source}: unsupported resize size {size!r} (medsyn reads "
                              "'shortest_edge' or 'height' + 'width').")
    if cfg.get("do_center_crop", False) and cfg.get("crop_size"):
        crop = cfg["crop_size"]
        crop = {"height": crop, "width": crop} if isinstance(crop, int) else crop
        steps.append(CenterCrop((int(crop["width"]), int(crop["height"]))))
    normalise = cfg.get("do_normalize", True)
    mean = tuple(cfg.get("image_mean", (0.0,) * 3)) if normalise else (0.0,) * 3
    std = tuple(cfg.get("image_std", (1.0,) * 3)) if normalise else (1.0,) * 3
    factor = float(cfg.get("rescale_factor", 1 / 255)) if cfg.get("do_rescale", True) else 1.0
    return PilPipeline(tuple(steps), mean, std, "mul64", factor, source)
