"""Feature spaces, by name, and the extraction of features (cached for real sets).

    from medsyn.evaluators.features import get_extractor, list_extractors, register_extractor
    ext = get_extractor("inception", device="cpu")          # torch-fidelity inception-v3-compat
    out = ext.extract(images_uint8)                          # {"features": [N, 2048], ...}

One file per space (``inception.py``, ``pixels.py``, ``classifier.py``, ``ssl.py``,
``radiomics.py``, ``wavelet.py``; encoders users bring, named ``source:target``, in
``encoders/``); ``base.py`` holds the
interface, ``registry.py`` the name -> factory table, ``extraction.py`` the batched
extraction and the on-disk cache of real-set features, and ``sharding.py`` the split of that
extraction across the ranks of a ``torchrun`` job (docs/scale.md).

Every extractor states its conventions (input, resizing, normalisation, layer) and the
checksum of its weights; both are part of the real-feature cache key and of the provenance
written into results.json. A new space is a factory registered under a name:

    register_extractor("my-net", lambda device=None, **_: TorchModuleExtractor(
        "my-net", module, feature_dim=512, weights_sha256=digest, device=device,
        conventions={...}))

A space fitted to the real training split says so (``fitted=True``: its factory gets
``train=`` and ``use_cache=``) and names any other evaluation setting it is built from
(``settings=``, see registry.py), e.g. the ``classifier`` space below.
"""

from __future__ import annotations

from medsyn.device import extraction_threads, resolve_device
from medsyn.evaluators.features.base import FeatureExtractor, TorchModuleExtractor
from medsyn.evaluators.features.extraction import (
    Features,
    check_images,
    dataset_features,
    extract_features,
    feature_cache_key,
)
from medsyn.evaluators.features.inception import (
    INCEPTION_NAME,
    InceptionExtractor,
    resolve_inception_weights,
)
from medsyn.evaluators.features.pixels import PixelExtractor
from medsyn.evaluators.features.registry import (
    build_extractor,
    get_extractor,
    is_fitted,
    list_extractors,
    parse_extractor_names,
    reads_setting,
    register_extractor,
    register_source,
)
from medsyn.evaluators.features.wavelet import WaveletExtractor

__all__ = [
    "FeatureExtractor", "Features", "INCEPTION_NAME", "InceptionExtractor", "PixelExtractor",
    "TorchModuleExtractor", "check_images", "dataset_features", "extract_features",
    "WaveletExtractor", "build_extractor", "extraction_threads", "feature_cache_key",
    "get_extractor", "is_fitted", "list_extractors", "parse_extractor_names", "reads_setting",
    "register_extractor", "register_source", "resolve_device", "resolve_inception_weights",
]


def _classifier_factory(**options):
    # imported on use: the in-domain space pulls in timm and the classifier training
    from medsyn.evaluators.features.classifier import classifier_extractor

    return classifier_extractor(**options)


def _ssl_factory(**options):
    from medsyn.evaluators.features.ssl import ssl_extractor

    return ssl_extractor(**options)


def _radiomics_factory(**options):
    from medsyn.evaluators.features.radiomics import radiomics_extractor

    return radiomics_extractor(**options)


register_extractor(
    "inception", InceptionExtractor,
    "torch-fidelity inception-v3-compat, 2048-d pool features (FID/KID/IS standard)",
    settings={"weights": "inception_weights"})
register_extractor(
    "inception-exact", lambda **options: InceptionExtractor(**{**options, "fast": False}),
    "the same network run by torch-fidelity's own eager forward: bit-identical to "
    "torch_fidelity.calculate_metrics, about half the CPU speed of 'inception'",
    settings={"weights": "inception_weights"})
register_extractor(
    "pixels", lambda device=None, **_: PixelExtractor(16, device=device),
    "16x16 grayscale pixels, 256-d; no weights; a smoke-test baseline, not perceptual")
register_extractor(
    "classifier", _classifier_factory,
    "in-domain: penultimate features (512-d) of a ResNet-18 trained on the real training split "
    "(the utility protocol's TRTR classifier, seed 0); offline, cached", fitted=True,
    settings={"val": "val", "recipe": "classifier_recipe"})
register_extractor(
    "ssl", _ssl_factory,
    "in-domain, label-free: 512-d features of a SimCLR ResNet-18 trained on the real training "
    "split (medical-safe augmentations); offline, cached", fitted=True,
    settings=("ssl_recipe",))
register_extractor(
    "radiomics", _radiomics_factory,
    "70 hand-crafted features (first order, GLCM, run lengths, LBP; scikit-image), z-scored "
    "on the real training split; no weights", fitted=True)
register_extractor(
    "wavelet", lambda device=None, **_: WaveletExtractor(device=device),
    "log energies of every Haar wavelet-packet band, levels 1..4 (PyWavelets); no weights "
    "(Frechet Wavelet Distance-style)")


def _encoder(module: str, factory: str):
    # imported on use: transformers, timm and torchxrayvision load only for their own spaces
    def build(**options):
        import importlib

        return getattr(importlib.import_module(
            f"medsyn.evaluators.features.encoders.{module}"), factory)(**options)
    return build


# encoders users bring (docs/evaluation.md, "Encoders you bring"): a local file or folder, else
# the weights their library downloads (never with MEDSYN_OFFLINE=1 or HF_HUB_OFFLINE=1)
register_source(
    "hf", _encoder("hf", "hf_extractor"),
    "a Hugging Face model folder (save_pretrained, safetensors) or repo id (the hub's "
    "snapshot): pooler_output, CLIP image_embeds; the folder's image processor on the PIL path; "
    "needs the hf extra", usage="<model folder or repo id>")
register_source(
    "rad-dino", _encoder("hf", "rad_dino_extractor"),
    "RAD-DINO (microsoft/rad-dino folder) as CheXGenBench runs it: PIL bilinear 299, then "
    "bicubic 518, CLS after LayerNorm, 768-d; --protocol chexgenbench",
    usage="<model folder or microsoft/rad-dino>")
register_source(
    "cmmd-clip", _encoder("hf", "cmmd_clip_extractor"),
    "CLIP (openai/clip-vit-large-patch14-336 folder) as CMMD embeds: centre square crop, PIL "
    "bicubic 336, unit-norm image_embeds; --protocol cmmd",
    usage="<model folder or openai/clip-vit-large-patch14-336>")
register_source(
    "open_clip", _encoder("openclip", "open_clip_extractor"),
    "an open_clip model folder (open_clip_config.json + .safetensors) or a pretrained pair "
    "of open_clip.list_pretrained(): encode_image, open_clip's eval transform; needs the "
    "openclip extra", usage="<model folder>|<model>@<pretrained tag>")
register_source(
    "timm", _encoder("timm_source", "timm_extractor"),
    "any timm model with a local weights file (.safetensors or a state dict), else timm's "
    "pretrained weights: pooled pre-logits, timm's eval transform",
    usage="<model>[@<weights file>]",
    settings={"weights": "extractor_weights"})
register_source(
    "dinov2", _encoder("timm_source", "dinov2_extractor"),
    "DINOv2 (hub state dict dinov2_<arch>_pretrain.pth) as dgm-eval runs it: PIL bicubic 224, "
    "CLS after norm, the hub's position-embedding interpolation",
    usage="<vits14|vitb14|vitl14|vitg14>[@<file>]", settings={"weights": "extractor_weights"})
register_source(
    "tf", _encoder("tf", "tf_extractor"),
    "torch-fidelity 0.4 extractors run by its own forward (clip-*, vgg16, dinov2-vit-*-14, "
    "inception-v3-compat), weights read safely (CLIP: a converted state dict)",
    usage="<torch-fidelity name>[@<weights file>]",
    settings={"weights": "extractor_weights", "inception_weights": "inception_weights"})
register_source(
    "torchxrayvision", _encoder("xrv", "xrv_extractor"),
    "torchxrayvision DenseNet-121 (a state dict converted once: features2, 1024-d) or "
    "ResNet-50 at 512 px (its state dict: pooled layer 4, 2048-d); needs the xrv extra",
    usage="<densenet121-res224-*|resnet50-res512-all>[@<state dict file>]",
    settings={"weights": "extractor_weights"})
