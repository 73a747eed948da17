"""torchxrayvision's chest X-ray classifiers as feature spaces:
``torchxrayvision:<weights>@<file>`` (e.g. ``torchxrayvision:densenet121-res224-all@dn.pt``,
``torchxrayvision:resnet50-res512-all``).

With no file, torchxrayvision's own download (``xrv.models.get_weights``) fetches the ResNet's
weights into its cache (not offline). The files it publishes for its DenseNets are whole pickled
modules, which only an unsafe ``torch.load(weights_only=False)`` reads, so medsyn neither
fetches nor loads them; it takes the state dict converted once from them (the message of a
refused file gives the one-line conversion), reads it with ``weights_only=True``, and loads it
into ``xrv.models.DenseNet(num_classes=18)``.
The ResNet-50 file (``...-resnet50-test512-e400-state.pt``) is a state dict of torchvision's
ResNet-50 with a one-channel stem, read the same way.

Input, as torchxrayvision's README prescribes: ``(2 x / 255 - 1) * 1024``, RGB averaged to one
channel, ``XRayCenterCrop`` (the centred square) and ``XRayResizer`` (scikit-image bilinear,
antialiased when shrinking) to the weights' resolution: 224 (DenseNets), 512 (ResNet-50).
Features: DenseNet ``features2`` = global average pool of the ReLU of the last dense block,
1024-d; ResNet-50 ``features`` = global average pool of layer 4, 2048-d (not the pathology
logits).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from medsyn.errors import ConfigError
from medsyn.evaluators.features.encoders.extractor import EncoderExtractor
from medsyn.evaluators.features.encoders.files import (
    digest,
    downloaded,
    local_file,
    need_package,
    read_weights,
)
from medsyn.evaluators.features.encoders.timm_source import split_target

XRV_DENSENETS = ("densenet121-res224-all", "densenet121-res224-nih", "densenet121-res224-pc",
                 "densenet121-res224-chex", "densenet121-res224-rsna",
                 "densenet121-res224-mimic_nb", "densenet121-res224-mimic_ch")
XRV_RESNETS = ("resnet50-res512-all",)
XRV_WEIGHTS = XRV_DENSENETS + XRV_RESNETS


def _convert(name: str) -> str:
    if name in XRV_RESNETS:
        return ("torchxrayvision's ResNet file is a state dict: name it here (torchxrayvision "
                f"downloads it to ~/.torchxrayvision/models_data/ with xrv.models.ResNet("
                f"weights='{name}')).")
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


def _weights_file(xrv, name: str, path: str | None, what: str) -> Path:
    """The local file, else the one torchxrayvision's own download (``get_weights``) puts in
    its cache (``~/.torchxrayvision/models_data/``), where it is looked up first."""
    if path:
        return local_file(path, what, _convert(name))
    url = xrv.models.model_urls[name]["weights_url"]
    cached = Path(xrv.utils.get_cache_dir()).expanduser() / url.rsplit("/", 1)[1]
    if cached.is_file():
        return cached
    if name not in XRV_RESNETS:
        # its DenseNet files are pickled modules, which read_weights refuses: fetching one
        # would only end in that refusal
        raise ConfigError(f"{what}: torchxrayvision publishes them as a pickled module ({url}), "
                          "which medsyn does not load, so it does not fetch it either (nothing "
                          f"is downloaded). {_convert(name)}")
    return Path(downloaded(what, lambda: _quietly(xrv.models.get_weights, name),
                           f"Place {url} at {cached}, or give a local file: "
                           f"torchxrayvision:{name}@FILE or --extractor-weights FILE."))


def _densenet(xrv, state: dict, file: Path, name: str, what: str):
    state.pop("op_threshs", None)    # calibration of the pathology outputs, not of features
    model = xrv.models.DenseNet(num_classes=18)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(f"{what} {file} is not a torchxrayvision DenseNet-121 state dict "
                          f"({str(exc).strip().splitlines()[0][:200]}). {_convert(name)}"
                          ) from None
    return model, model.features2, 224, 1024, (
        f"torchxrayvision DenseNet-121 ({name})",
        "features2: relu(features(x)), global average pool")


def _resnet(xrv, state: dict, file: Path, name: str, what: str):
    """``xrv.models.ResNet`` without its constructor (which downloads): the same torchvision
    ResNet-50 with a one-channel stem and 18 outputs, the state dict loaded strictly, and the
    library's own ``features`` (stem, layers 1-4, average pool) as the forward."""
    import torchvision

    model = xrv.models.ResNet.__new__(xrv.models.ResNet)
    torch.nn.Module.__init__(model)
    model.weights, model.apply_sigmoid = name, False
    model.weights_dict = xrv.models.model_urls[name]
    model.targets = model.pathologies = model.weights_dict["labels"]
    model.model = torchvision.models.resnet50(num_classes=len(model.targets), weights=None)
    model.model.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    try:
        model.model.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(f"{what} {file} is not a torchxrayvision ResNet-50 state dict "
                          f"({str(exc).strip().splitlines()[0][:200]}). {_convert(name)}"
                          ) from None
    model.input_resolution = model.weights_dict.get("input_resolution", 512)
    return model, model.features, 512, 2048, (
        f"torchxrayvision ResNet-50 ({name}; torchvision resnet50, one-channel stem)",
        "features: layer4, global average pool (before the fc layer)")


def xrv_extractor(target: str, weights: str | None = None, device=None, **_):
    """``target`` = ``"<weights name>@file"`` (or the name with ``weights=file``); with no
    file, torchxrayvision's own download for the ResNet (DenseNet files are pickled modules,
    refused before any download)."""
    name, path = split_target(target, "torchxrayvision", "<weights name>@<state dict file>")
    if name not in XRV_WEIGHTS:
        raise ConfigError(f"torchxrayvision:{name}: medsyn reads torchxrayvision's weights "
                          f"{', '.join(XRV_WEIGHTS)}.")
    what = f"torchxrayvision:{name} weights"
    if path or weights:       # a missing local file is reported before the package is needed
        local_file(path or weights, what, _convert(name))
    xrv = need_package("torchxrayvision", "xrv", "torchxrayvision:")
    file = _weights_file(xrv, name, path or weights, what)
    state = read_weights(file, what, _convert(name))
    build = _resnet if name in XRV_RESNETS else _densenet
    model, forward, size, dim, (network, layer) = build(xrv, state, file, name, what)
    return EncoderExtractor(
        f"torchxrayvision:{name}", model, forward, XrvPipeline(size), dim, digest(file),
        {"network": network, "layer": layer}, device=device, weights_path=str(file),
        licence="torchxrayvision: Apache-2.0 code; weights trained on public CXR datasets "
                "whose terms apply")


def _quietly(function, *args):
    """torchxrayvision prints its download progress on stdout, where ``--json`` output goes."""
    import contextlib
    import sys

    with contextlib.redirect_stdout(sys.stderr):
        return function(*args)
