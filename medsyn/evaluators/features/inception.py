"""Inception space: torch-fidelity's ``inception-v3-compat`` (FID / KID / IS standard)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from medsyn.device import resolve_device
from medsyn.errors import ConfigError
from medsyn.evaluators.features.base import FeatureExtractor, _three_channels
from medsyn.evaluators.features.inception_fast import EXECUTION as FAST_EXECUTION
from medsyn.evaluators.features.inception_fast import FastInceptionTrunk
from medsyn.settings import ENV_INCEPTION_WEIGHTS, env_path
from medsyn.utils import file_digest
from medsyn.weights import UnsafeWeightsError, read_state_dict

INCEPTION_NAME = "inception-v3-compat"
_DIGESTS: dict[tuple, str] = {}


def _cached_digest(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_digest(path)
    return _DIGESTS[key]


def resolve_inception_weights(weights: str | os.PathLike | None = None) -> Path | None:
    """The local weights file to use: the argument, else ``MEDSYN_INCEPTION_WEIGHTS``, else
    ``None`` (torch-fidelity downloads its own)."""
    path = Path(weights).expanduser() if weights else env_path(ENV_INCEPTION_WEIGHTS)
    if path is None:
        return None
    if not path.is_file():
        origin = "--inception-weights" if weights else ENV_INCEPTION_WEIGHTS
        raise ConfigError(
            f"Inception weights file {path} (from {origin}) does not exist. Point it at "
            "torch-fidelity's inception-v3-compat weights (e.g. pt_inception-2015-12-05*.pth).")
    return path


_INCEPTION_FIX = ("Point --inception-weights or MEDSYN_INCEPTION_WEIGHTS at torch-fidelity's "
                  "inception-v3-compat weights (e.g. pt_inception-2015-12-05*.pth).")


def _inception_network():
    """torch-fidelity's Inception v3 module, with the weights NOT loaded yet.

    Its constructor would read a weights file itself with ``torch.load(weights_only=False)``,
    which runs any code the file holds; it is given an empty state dict of our own making
    instead, and the verified weights are loaded afterwards.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, *args, **kwargs):
            if not state_dict:        # the empty placeholder passed to the constructor
                return None
            return super().load_state_dict(state_dict, *args, **kwargs)

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    return _Unloaded(INCEPTION_NAME, ["2048", "logits_unbiased"],
                     feature_extractor_weights_path=empty, verbose=False)


def _download_inception_weights() -> Path:
    """torch-fidelity's weights file in the torch hub cache, downloaded when missing."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    path = Path(torch.hub.get_dir()) / "checkpoints" / URL_INCEPTION_V3.rsplit("/", 1)[1]
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(URL_INCEPTION_V3, str(path), progress=False)
        except Exception as exc:  # noqa: BLE001 - any download failure means the same
            raise ConfigError(
                "no local Inception weights given and torch-fidelity's could not be downloaded "
                f"({type(exc).__name__}: {exc}). Pass --inception-weights PATH or set "
                f"{ENV_INCEPTION_WEIGHTS} to torch-fidelity's inception-v3-compat weights."
            ) from None
    return path


class InceptionExtractor(FeatureExtractor):
    """torch-fidelity's ``inception-v3-compat``: 2048-d pool features, TF-exact bilinear resize
    to 299 x 299, inputs uint8 with grayscale replicated to three channels.

    The Inception Score needs the 1008-way classifier layer; a weights file whose ``fc`` layer
    is not finite (as in weights converted from a feature-only network) gives features but no
    logits, and ``logits_unavailable`` says so.
    """

    name = INCEPTION_NAME
    feature_dim = 2048

    def __init__(self, weights: str | os.PathLike | None = None, device=None,
                 fast: bool | None = None, **_):
        self.device = resolve_device(device)
        path = resolve_inception_weights(weights)
        if path is None:
            path = _download_inception_weights()
        try:
            state = read_state_dict(path, "Inception weights", _INCEPTION_FIX)
        except UnsafeWeightsError:
            raise
        except ConfigError as exc:
            raise ConfigError(f"{path} is not a torch-fidelity inception-v3-compat state dict: "
                              f"{exc}") from None
        self.model = _inception_network()
        try:
            self.model.load_state_dict(state)
        except RuntimeError as exc:
            raise ConfigError(
                f"{path} is not a torch-fidelity inception-v3-compat state dict "
                f"({str(exc).strip().splitlines()[0][:200]}). {_INCEPTION_FIX}") from None
        self.weights_path = str(path)
        self.weights_sha256 = _cached_digest(path) if path.is_file() else None
        fc_finite = bool(torch.isfinite(self.model.fc.weight).all()
                         and torch.isfinite(self.model.fc.bias).all())
        self.logits_unavailable = None if fc_finite else (
            f"the Inception weights {path.name} have non-finite classifier (fc) weights, so "
            "class logits and the Inception Score cannot be computed (features, FID, KID and "
            "the rest are unaffected); use torch-fidelity's full weights for IS")
        self.model.features_list = ["2048", "logits_unbiased"] if fc_finite else ["2048"]
        self.model.to(self.device)
        # CPU: the same network with batch norm folded, in channels_last (inception_fast.py):
        # twice the throughput, features equal to float32 rounding. fast=False runs
        # torch-fidelity's own eager forward.
        use_fast = self.device.type == "cpu" if fast is None else bool(fast)
        self._fast = FastInceptionTrunk(self.model) if use_fast else None
        self.conventions = {
            "network": "torch-fidelity FeatureExtractorInceptionV3 (TF inception-2015-12-05)",
            "layer": "2048 (pool3); IS uses logits_unbiased",
            "input": "uint8 [N, C, H, W]; grayscale replicated to 3 channels",
            "resize": "to 299x299 inside the network, TF1-compatible bilinear "
                      "(interpolate_bilinear_2d_like_tensorflow1x)",
            "normalisation": "(x - 128) / 128",
            "dtype": "float32",
            "execution": FAST_EXECUTION if self._fast is not None else
            "torch-fidelity's eager forward (bit-identical to torch_fidelity.calculate_metrics)",
        }

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if self._fast is not None:
            _three_channels(images)                      # validates the channel count
            feats = self._fast(images.to(self.device, non_blocking=True))
            result = {"features": feats.cpu()}
            if self.has_logits:          # torch-fidelity's logits_unbiased: features @ fc.W^T
                result["logits"] = feats.mm(self.model.fc.weight.T).to(torch.float32).cpu()
            return result
        x = _three_channels(images).to(self.device, non_blocking=True)
        out = self.model(x)
        result = {"features": out[0].float().cpu()}
        if self.has_logits:
            result["logits"] = out[1].float().cpu()
        return result
