"""torchxrayvision's DenseNet-121 chest X-ray classifiers as a feature space:
``torchxrayvision:<weights>@<file>`` (e.g. ``torchxrayvision:densenet121-res224-all@dn.pt``).

The files torchxrayvision downloads for its DenseNets are whole pickled modules, which only an
unsafe ``torch.load(weights_only=False)`` reads; medsyn takes the state dict converted once
from them (the message of a refused file gives the one-line conversion), reads it with
``weights_only=True``, and loads it into ``xrv.models.DenseNet(num_classes=18)``.

Input, as torchxrayvision's README prescribes: ``(2 x / 255 - 1) * 1024``, RGB averaged to one
channel, ``XRayCenterCrop`` (the centred square) and ``XRayResizer(224)`` (scikit-image
bilinear, antialiased when shrinking). Features: ``features2`` = global average pool of the
ReLU of the last dense block, 1024-d (not the pathology logits).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from medsyn.errors import ConfigError
from medsyn.evaluators.features.encoders.extractor import EncoderExtractor
from medsyn.evaluators.features.encoders.files import (
    digest,
    local_file,
    need_package,
    read_weights,
)
from medsyn.evaluators.features.encoders.timm_source import split_target

XRV_DENSENETS = ("densenet121-res224-all", "densenet121-res224-nih", "densenet121-res224-pc",
                 "densenet121-res224-chex", "densenet121-res224-rsna",
                 "densenet121-res224-mimic_nb", "densenet121-res224-mimic_ch")


def _convert(name: str) -> str:
    return ("Convert torchxrayvision's file once, on a machine where you trust it: python -c "
            f"\"import torch, torchxrayvision as xrv; torch.save(xrv.models.DenseNet("
            f"weights='{name}').state_dict(), '{name}.pt')\" (it downloads the weights to "
            "~/.torchxrayvision/models_data/), then name that .pt file here.")


class XrvPipeline:
    """uint8 ``[N, C, H, W]`` -> float32 ``[N, 1, size, size]`` in [-1024, 1024]."""

    def __init__(self, size: int = 224):
        self.size = size

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        from skimage.transform import resize

        out = []
        for img in batch.cpu().numpy():
            x = (2 * (img.astype(np.float32) / 255) - 1.0) * 1024     # xrv.utils.normalize
            x = x.mean(0, keepdims=True) if x.shape[0] == 3 else x
            _, h, w = x.shape
            crop = min(h, w)                                            # XRayCenterCrop
            top, left = h // 2 - crop // 2, w // 2 - crop // 2
            x = x[:, top:top + crop, left:left + crop]
            with warnings.catch_warnings():                            # XRayResizer
                warnings.simplefilter("ignore")
                x = resize(x, (1, self.size, self.size), mode="constant",
                           preserve_range=True).astype(np.float32)
            out.append(torch.from_numpy(x))
        return torch.stack(out)

    def describe(self) -> dict:
        return {"input": "uint8 [N, C, H, W]; RGB averaged to one channel",
                "normalisation": "(2 * x / 255 - 1) * 1024 (xrv.utils.normalize), before the "
                                 "resize",
                "resize": f"centred square crop (XRayCenterCrop), then scikit-image bilinear "
                          f"resize to {self.size}x{self.size}, antialiased when shrinking "
                          "(XRayResizer)",
                "preprocessing_follows": "torchxrayvision README / datasets.py"}


def xrv_extractor(target: str, weights: str | None = None, device=None, **_):
    """``target`` = ``"densenet121-res224-all@file"`` (or the name with ``weights=file``)."""
    name, path = split_target(target, "torchxrayvision", "<weights name>@<state dict file>")
    if name not in XRV_DENSENETS:
        raise ConfigError(f"torchxrayvision:{name}: medsyn reads torchxrayvision's DenseNet "
                          f"weights ({', '.join(XRV_DENSENETS)}).")
    what = f"torchxrayvision:{name} weights"
    file = local_file(path or weights, what, _convert(name))
    state = read_weights(file, what, _convert(name))
    xrv = need_package("torchxrayvision", "xrv", "torchxrayvision:")
    state.pop("op_threshs", None)    # calibration of the pathology outputs, not of features
    model = xrv.models.DenseNet(num_classes=18)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(f"{what} {file} is not a torchxrayvision DenseNet-121 state dict "
                          f"({str(exc).strip().splitlines()[0][:200]}). {_convert(name)}"
                          ) from None
    return EncoderExtractor(
        f"torchxrayvision:{name}", model, model.features2, XrvPipeline(224), 1024,
        digest(file), {"network": f"torchxrayvision DenseNet-121 ({name})",
                       "layer": "features2: relu(features(x)), global average pool"},
        device=device, weights_path=str(file),
        licence="torchxrayvision: Apache-2.0 code; weights trained on public CXR datasets "
                "whose terms apply")
