"""torch-fidelity 0.4's extractors as spaces: ``tf:<name>@<file>``, each run by
torch-fidelity's own forward (TF1-compatible bilinear resize without antialiasing, its
normalisation), with weights medsyn read safely: the file given, else the one torch-fidelity's
own download puts in the torch hub cache (``$TORCH_HOME/hub/checkpoints``; not offline).

- ``tf:clip-rn50`` ... ``tf:clip-vit-l-14-336px``: OpenAI CLIP's visual tower
  (``ln_post(CLS) @ proj``, not unit-norm). OpenAI's files are TorchScript archives, which run
  code when loaded: convert once (the refusal message gives the line) and name the state dict;
  with no file, torch-fidelity's download fetches OpenAI's archive, which is refused likewise.
  torch-fidelity's ``build_model`` rounds the weights through fp16, as it does for its own.
- ``tf:vgg16``: torchvision VGG16, ``fc2_relu`` (torch-fidelity's default for every metric).
- ``tf:dinov2-vit-s-14`` ... ``-g-14``: torch-fidelity loads these only through torch.hub
  (downloaded code); here the hub's state dict runs in timm as in the ``dinov2:`` space, with
  torch-fidelity's input (TF1 bilinear to 224, ImageNet mean / std). Not dgm-eval's FD, whose
  resize is PIL bicubic.
- ``tf:inception-v3-compat``: the ``inception`` space.
"""

from __future__ import annotations

import io

import torch

from medsyn.errors import ConfigError
from medsyn.evaluators.features.base import _three_channels
from medsyn.evaluators.features.encoders.extractor import EncoderExtractor
from medsyn.evaluators.features.encoders.files import (
    digest,
    hub_cache_file,
    hub_cache_path,
    local_file,
    read_weights,
)
from medsyn.evaluators.features.encoders.timm_source import dinov2_model, split_target

TF_DINOV2 = {"dinov2-vit-s-14": "vits14", "dinov2-vit-b-14": "vitb14",
             "dinov2-vit-l-14": "vitl14", "dinov2-vit-g-14": "vitg14"}
_CLIP_COMMAND = ("python -c \"import torch; torch.save(torch.jit.load('IN.pt', "
                 "map_location='cpu').state_dict(), 'OUT.pth')\"")
_CLIP_CONVERT = (f"Convert OpenAI's TorchScript file once, where you trust it: {_CLIP_COMMAND}, "
                 "then name OUT.pth.")
_TF_INPUT = {"input": "uint8 [N, C, H, W]; grayscale replicated to 3 channels",
             "resize": "inside torch-fidelity's forward: TF1-compatible bilinear, no "
                       "antialiasing (interpolate_bilinear_2d_like_tensorflow1x)",
             "preprocessing_follows": "torch-fidelity 0.4 feature_extractor_*.py"}


class Uint8ThreeChannels:
    """What torch-fidelity's extractors take: uint8 ``[N, 3, H, W]``."""

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return _three_channels(batch).contiguous()

    def describe(self) -> dict:
        return dict(_TF_INPUT)


class TorchFidelityDinoInput(Uint8ThreeChannels):
    """torch-fidelity's ``FeatureExtractorDinoV2.forward`` before the network."""

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        import torchvision
        from torch_fidelity.interpolate_compat_tensorflow import (
            interpolate_bilinear_2d_like_tensorflow1x,
        )

        x = super().__call__(batch).to(torch.float32)
        x = interpolate_bilinear_2d_like_tensorflow1x(x, size=(224, 224), align_corners=False)
        return torchvision.transforms.functional.normalize(
            x, (255 * 0.485, 255 * 0.456, 255 * 0.406), (255 * 0.229, 255 * 0.224, 255 * 0.225))

    def describe(self) -> dict:
        return {**_TF_INPUT, "resize": "TF1-compatible bilinear to 224x224, no antialiasing",
                "normalisation": "ImageNet mean / std on 0..255"}


def _clip(name: str, file) -> tuple[torch.nn.Module, int]:
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.feature_extractor_clip import FeatureExtractorCLIP, build_model

    state = read_weights(file, f"tf:{name} weights", _CLIP_CONVERT)
    if "text_projection" not in state:
        raise ConfigError(f"tf:{name} weights {file}: no 'text_projection' tensor; expected "
                          f"the state dict of OpenAI's CLIP file. {_CLIP_CONVERT}")

    class _FromStateDict(FeatureExtractorCLIP):
        def __init__(self):                     # FeatureExtractorCLIP's, without its loading
            FeatureExtractorBase.__init__(self, name, ["clip"])
            self.feature_extractor_internal_dtype = torch.float32
            self.model = build_model(dict(state), torch.float32)
            self.resolution = self.model.visual.input_resolution
            self.requires_grad_(False)

    try:
        module = _FromStateDict().eval()
    except (RuntimeError, KeyError) as exc:
        raise ConfigError(f"tf:{name} weights {file} are not an OpenAI CLIP state dict "
                          f"({str(exc).strip().splitlines()[0][:200]}).") from None
    return module, int(state["text_projection"].shape[1])


def _vgg16(file) -> torch.nn.Module:
    from torch_fidelity.feature_extractor_vgg16 import FeatureExtractorVGG16

    state = read_weights(file, "tf:vgg16 weights", "Give torchvision's VGG16 state dict.")
    # torch-fidelity reads its file with torch.load(weights_only=False): it is handed the
    # verified tensors re-serialised by medsyn instead, never the user's file
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    try:
        return FeatureExtractorVGG16("vgg16", ["fc2_relu"],
                                     feature_extractor_weights_path=buf).eval()
    except RuntimeError as exc:
        raise ConfigError(f"tf:vgg16 weights {file} are not torchvision's VGG16 state dict "
                          f"({str(exc).strip().splitlines()[0][:200]}).") from None


def _download_source(name: str) -> tuple[str, str]:
    """``(url, file name)`` torch-fidelity 0.4 downloads extractor ``name``'s weights from
    when it is given no file: CLIP through ``load_state_dict_from_url(MODEL_URLS[name],
    file_name=f"{name}-{hash}.pt")``, VGG16 through torchvision's ``IMAGENET1K_V1`` weights."""
    if name == "vgg16":
        import torchvision

        url = torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
        return url, url.rsplit("/", 1)[1]
    from torch_fidelity.feature_extractor_clip import MODEL_METADATA, MODEL_URLS

    return MODEL_URLS[name], f'{name}-{MODEL_METADATA[name]["hash"]}.pt'


def tf_extractor(target: str, weights: str | None = None, device=None,
                 inception_weights=None, model_kwargs: dict | None = None, **_):
    """``target`` = ``"<torch-fidelity name>@file"`` (or the name with ``weights=file``)."""
    from torch_fidelity.feature_extractor_clip import MODEL_URLS

    name, path = split_target(target, "tf", "<torch-fidelity extractor>@<weights file>")
    path = path or weights
    if name == "inception-v3-compat":
        from medsyn.evaluators.features.inception import InceptionExtractor

        return InceptionExtractor(weights=path or inception_weights, device=device)
    if name in TF_DINOV2:
        model, file = dinov2_model(TF_DINOV2[name], path, model_kwargs, 224, source="tf",
                                   space=f"tf:{name}")
        return EncoderExtractor(
            f"tf:{name}", model, model, TorchFidelityDinoInput(), model.num_features,
            digest(file), {"network": f"DINOv2 {TF_DINOV2[name]} (timm, hub position "
                                      "embeddings), as torch-fidelity's dinov2 extractors",
                           "layer": "CLS token after the final norm"},
            device=device, weights_path=str(file))
    known = ["inception-v3-compat", "vgg16", *MODEL_URLS, *TF_DINOV2]
    if name not in known:
        raise ConfigError(f"tf:{name}: torch-fidelity has no extractor of that name; choose "
                          f"one of {', '.join(known)}.")
    how = f"give a local file: tf:{name}@FILE or --extractor-weights FILE"
    if path:
        file = local_file(path, f"tf:{name} weights", "Give a local file. " + (
            _CLIP_CONVERT if name.startswith("clip-") else
            "On a machine with internet: python -c \"import torch, torchvision; torch.save("
            "torchvision.models.vgg16(weights='IMAGENET1K_V1').state_dict(), 'vgg16.pth')\"."))
    else:
        # torch-fidelity's own download: its URL, into the torch hub cache under its file name
        url, file_name = _download_source(name)
        if name.startswith("clip-") and not hub_cache_path(url, file_name).is_file():
            # OpenAI publishes CLIP as TorchScript, which read_weights refuses to run: a
            # download would fetch hundreds of MB only to be refused
            raise ConfigError(
                f"tf:{name}: torch-fidelity's weights for it are OpenAI's TorchScript file "
                f"{url}, which runs code when loaded, so medsyn does not fetch or load it "
                f"(nothing is downloaded). Where you trust it, download it to IN.pt, convert "
                f"it once with {_CLIP_COMMAND} and give tf:{name}@OUT.pth or "
                f"--extractor-weights OUT.pth.")
        file = hub_cache_file(url, f"tf:{name} weights", how, file_name)
    if name == "vgg16":
        module, dim, layer = _vgg16(file), 4096, "fc2_relu"
    else:
        (module, dim), layer = _clip(name, file), "clip: ln_post(CLS) @ proj (not unit-norm)"
    return EncoderExtractor(
        f"tf:{name}", module, lambda x: module(x)[0], Uint8ThreeChannels(), dim, digest(file),
        {"network": f"torch-fidelity 0.4 extractor {name}, run by its own forward",
         "layer": layer}, device=device, weights_path=str(file))
