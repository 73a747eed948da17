"""Feature extractors, by name.

    from medsyn.evaluators import get_extractor, list_extractors, register_extractor
    ext = get_extractor("inception", device="cpu")          # torch-fidelity inception-v3-compat
    out = ext.extract(images_uint8)                          # {"features": [N, 2048], ...}

Every extractor states its conventions (input, resizing, normalisation, layer) and the
checksum of its weights; both are part of the real-feature cache key and of the provenance
written into results.json. A new extractor is a factory registered under a name:

    register_extractor("my-net", lambda device=None, **_: TorchModuleExtractor(
        "my-net", module, feature_dim=512, weights_sha256=digest, device=device,
        preprocess=lambda x: x.float() / 127.5 - 1, conventions={...}))
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import torch

from medsyn.errors import ConfigError, MedsynError
from medsyn.settings import ENV_INCEPTION_WEIGHTS, env_path
from medsyn.utils import file_digest
from medsyn.weights import UnsafeWeightsError, read_state_dict


class FeatureExtractor:
    """Base class: ``extract(images)`` maps a uint8 batch ``[N, C, H, W]`` to features.

    Attributes every extractor sets: ``name``, ``feature_dim``, ``weights_sha256`` (``None``
    when it has no weights), ``conventions`` (a JSON-ready dict) and ``logits_unavailable``
    (``None`` when ``extract`` also returns classifier ``"logits"`` for the Inception Score,
    else the reason why not).
    """

    name: str = "base"
    feature_dim: int = 0
    weights_sha256: str | None = None
    conventions: dict = {}
    logits_unavailable: str | None = "this extractor has no classifier head"
    device: torch.device = torch.device("cpu")

    @property
    def has_logits(self) -> bool:
        return self.logits_unavailable is None

    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"features": float32 [N, feature_dim]}`` (+ ``"logits"`` if available), on CPU."""
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name, "feature_dim": self.feature_dim,
                "weights_sha256": self.weights_sha256, "conventions": self.conventions,
                "logits": self.logits_unavailable or "available"}

    def cache_identity(self) -> dict:
        """What, besides the images, determines this extractor's features."""
        return {"name": self.name, "feature_dim": self.feature_dim,
                "weights_sha256": self.weights_sha256, "conventions": self.conventions}


def _three_channels(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)
    if images.shape[1] != 3:
        raise MedsynError(f"images must have 1 or 3 channels, got {images.shape[1]}.")
    return images


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"``: CUDA when available, else CPU; otherwise validate the name."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r} ({exc}); use cpu, cuda or cuda:N.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available here; "
                          "use --device cpu.")
    return dev


# ---------------------------------------------------------------- Inception (torch-fidelity)

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

    def __init__(self, weights: str | os.PathLike | None = None, device=None, **_):
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
        self.conventions = {
            "network": "torch-fidelity FeatureExtractorInceptionV3 (TF inception-2015-12-05)",
            "layer": "2048 (pool3); IS uses logits_unbiased",
            "input": "uint8 [N, C, H, W]; grayscale replicated to 3 channels",
            "resize": "to 299x299 inside the network, TF1-compatible bilinear "
                      "(interpolate_bilinear_2d_like_tensorflow1x)",
            "normalisation": "(x - 128) / 128",
            "dtype": "float32",
        }

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = _three_channels(images).to(self.device, non_blocking=True)
        out = self.model(x)
        result = {"features": out[0].float().cpu()}
        if self.has_logits:
            result["logits"] = out[1].float().cpu()
        return result


# ---------------------------------------------------------------- generic torch module


class TorchModuleExtractor(FeatureExtractor):
    """Any ``nn.Module`` mapping a preprocessed batch to ``[N, feature_dim]`` features.

    ``preprocess`` turns the uint8 batch (on the device) into the module's input; the default
    is medsyn's network convention ``x / 127.5 - 1``. Pass ``weights_sha256`` so cached real
    features are invalidated when the weights change. This is how an in-domain classifier
    (penultimate-layer features of a network trained on the real training split) plugs in.
    """

    def __init__(self, name: str, module: torch.nn.Module, feature_dim: int,
                 weights_sha256: str | None, conventions: dict | None = None,
                 preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 device=None):
        self.name = name
        self.feature_dim = int(feature_dim)
        self.weights_sha256 = weights_sha256
        self.device = resolve_device(device)
        self.module = module.eval().requires_grad_(False).to(self.device)
        self.preprocess = preprocess or (lambda x: x.float() / 127.5 - 1)
        self.conventions = {"input": "uint8 [N, C, H, W]",
                            "preprocess": "x / 127.5 - 1" if preprocess is None else "custom",
                            **(conventions or {})}
        self.logits_unavailable = "this extractor has no Inception classifier head"

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.preprocess(images.to(self.device, non_blocking=True))
        feats = self.module(x).flatten(1).float().cpu()
        if feats.shape[1] != self.feature_dim:
            raise MedsynError(f"extractor {self.name} returned {feats.shape[1]} features, "
                              f"declared {self.feature_dim}.")
        return {"features": feats}


# ---------------------------------------------------------------- pixels (cheap, no weights)


class PixelExtractor(FeatureExtractor):
    """Downsampled pixels: grayscale (channel mean), area-resized to ``size`` x ``size``, / 255.

    No weights, no download, milliseconds per batch. It is NOT a perceptual feature space: its
    distances follow brightness and layout, not anatomy. Use it for smoke tests, quick checks
    of the pipeline, and as a contrast to learned features; report Inception (or an in-domain
    network) for results.
    """

    def __init__(self, size: int = 16, device=None, **_):
        if not isinstance(size, int) or size < 2:
            raise ConfigError(f"pixel extractor size must be an integer >= 2, got {size!r}.")
        self.size = size
        self.name = f"pixels{size}"
        self.feature_dim = size * size
        self.device = resolve_device(device)
        self.conventions = {"input": "uint8 [N, C, H, W]; channels averaged",
                            "resize": f"area (adaptive average pooling) to {size}x{size}",
                            "normalisation": "x / 255"}

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = images.to(self.device).float().mean(1, keepdim=True) / 255.0
        x = torch.nn.functional.adaptive_avg_pool2d(x, self.size)
        return {"features": x.flatten(1).cpu()}


# ---------------------------------------------------------------- registry

_REGISTRY: dict[str, tuple[Callable[..., FeatureExtractor], str]] = {}


def register_extractor(name: str, factory: Callable[..., FeatureExtractor],
                       description: str = "", overwrite: bool = False) -> None:
    """Make ``get_extractor(name, **options)`` call ``factory(**options)``.

    ``factory`` receives ``device`` and any options the caller passes (``weights``, ...), and
    must accept (and may ignore) options it does not use (take ``**_``).
    """
    if not overwrite and name in _REGISTRY:
        raise ConfigError(f"feature extractor {name!r} is already registered.")
    _REGISTRY[name] = (factory, description)


def list_extractors() -> dict[str, str]:
    """Registered extractor names and their one-line descriptions."""
    return {name: desc for name, (_, desc) in _REGISTRY.items()}


def get_extractor(name: str, **options) -> FeatureExtractor:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown feature extractor {name!r}; registered: "
                          f"{', '.join(sorted(_REGISTRY))}.")
    factory, _ = _REGISTRY[name]
    return factory(**options)


register_extractor(
    "inception", InceptionExtractor,
    "torch-fidelity inception-v3-compat, 2048-d pool features (FID/KID/IS standard)")
register_extractor(
    "pixels", lambda device=None, **_: PixelExtractor(16, device=device),
    "16x16 grayscale pixels, 256-d; no weights; a smoke-test baseline, not perceptual")


def _classifier_factory(**options):
    from medsyn.evaluators.classifier import classifier_extractor

    return classifier_extractor(**options)


register_extractor(
    "classifier", _classifier_factory,
    "in-domain: penultimate features (512-d) of a ResNet-18 trained on the real training split "
    "(the utility protocol's TRTR classifier, seed 0); offline, cached")
