"""timm models: ``timm:<model>[@<file>]``, and DINOv2 as dgm-eval runs it:
``dinov2:<vits14|vitb14|vitl14|vitg14>[@<file>]``. With no file, the one the library's own
download fetches (timm's pretrained file; the torch.hub state dict), unless offline.

``timm:``: ``timm.create_model(model, num_classes=0)`` given the state dict medsyn read safely
(safetensors, or ``weights_only=True``) from the file, loaded as timm's own loader does (its
``checkpoint_filter_fn`` and classifier handling) but strictly; features = the pooled
pre-logits (``model(x)`` with no classifier); preprocessing = timm's eval transform from the
model's ``pretrained_cfg`` (resize the shortest edge to ``floor(size / crop_pct)``, centre
crop, mean / std), on PIL images.

``dinov2:``: DINOv2 as ``torch.hub.load("facebookresearch/dinov2", ...)`` computes it at
224 x 224 (dgm-eval's encoder), without torch.hub: timm's ``vit_*_patch14_dinov2`` at 224 with
the hub's state dict (``dinov2_vitl14_pretrain.pth``), and its position embeddings interpolated
from the checkpoint's 37 x 37 grid by the hub's formula (bicubic, ``scale_factor = (16 + 0.1) /
37``, no antialiasing). timm's own resampling of the grid differs from the hub's by up to 0.03
in the features; with the hub's formula the features are equal (docs/encoders_research.md
section 4). Input: PIL bicubic to 224 x 224 (aspect not kept), x / 255, ImageNet mean / std;
features: the CLS token after the final norm.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

from medsyn.errors import ConfigError
from medsyn.evaluators.features.encoders.extractor import EncoderExtractor
from medsyn.evaluators.features.encoders.files import (
    digest,
    downloaded,
    hub_cache_file,
    hub_file,
    local_file,
    need_package,
    read_weights,
)
from medsyn.evaluators.features.encoders.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    PilPipeline,
    Resize,
)

DINOV2_ARCHS = {"vits14": "vit_small_patch14_dinov2", "vitb14": "vit_base_patch14_dinov2",
                "vitl14": "vit_large_patch14_dinov2", "vitg14": "vit_giant_patch14_dinov2"}
DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_{arch}/dinov2_{arch}_pretrain.pth"
_CONVERT = ("Convert it once where you trust the file: python -c \"import torch; "
            "torch.save(torch.load('IN', weights_only=False).state_dict(), 'OUT.pth')\" "
            "(or save it as .safetensors).")


def split_target(target: str, source: str, usage: str) -> tuple[str, str | None]:
    """``"model@file"`` -> ``("model", "file")``; ``"model"`` -> ``("model", None)``."""
    name, sep, path = target.partition("@")
    if not name.strip():
        raise ConfigError(f"{source}:{target}: no model named; write {source}:{usage}.")
    return name.strip(), (path.strip() or None) if sep else None


def _timm_pipeline(model, source: str) -> PilPipeline:
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    _, h, w = cfg["input_size"]
    crop_pct = cfg.get("crop_pct") or 0.875
    if cfg.get("crop_mode", "center") not in (None, "center") or h != w:
        raise ConfigError(f"{source}: timm's eval transform for this model uses crop mode "
                          f"{cfg.get('crop_mode')!r} and input {h}x{w}; medsyn supports the "
                          "'center' mode on square inputs.")
    return PilPipeline((Resize(cfg["interpolation"], shortest_edge=math.floor(h / crop_pct)),
                        CenterCrop((w, h), rounding="round")),
                       tuple(cfg["mean"]), tuple(cfg["std"]), "div",
                       source="timm resolve_data_config + create_transform (eval)")


def _create(timm, name: str, what: str, state: dict, **kwargs):
    """``timm.create_model(name, num_classes=0)`` with ``state`` loaded as timm's own
    pretrained loader does (the architecture's ``checkpoint_filter_fn``, the classifier
    dropped), but strictly: timm loads non-strictly once the classifier is dropped, so weights
    of another architecture would leave a random network without a word."""
    model = timm.create_model(name, pretrained=False, num_classes=0, **kwargs).eval()
    filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    try:
        if filter_fn is not None:
            try:
                state = filter_fn(state, model)
            except TypeError:
                state = filter_fn(state)
        classifiers = model.pretrained_cfg.get("classifier") or ()
        for head in (classifiers,) if isinstance(classifiers, str) else classifiers:
            state.pop(f"{head}.weight", None)
            state.pop(f"{head}.bias", None)
        result = model.load_state_dict(state, strict=False)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ConfigError(f"{what}: the weights do not fit timm's {name!r} "
                          f"({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]})."
                          ) from None
    if result.missing_keys or result.unexpected_keys:
        missing, extra = result.missing_keys, result.unexpected_keys
        raise ConfigError(f"{what}: the weights do not fit timm's {name!r} ({len(missing)} "
                          f"tensors missing, e.g. {missing[:2]}; {len(extra)} unexpected, e.g. "
                          f"{extra[:2]}).")
    return model


def _timm_pretrained_file(timm, name: str, what: str, how: str, give: str) -> Path:
    """The file of timm's pretrained weights for ``name``, fetched by timm's own download as
    ``timm.create_model(name, pretrained=True)`` does: from the Hugging Face hub
    (``hf_hub_download`` of the ``hf_hub_id``, ``model.safetensors`` before
    ``pytorch_model.bin``) into the hub's cache, else from the model's URL
    (``download_cached_file``) into ``$TORCH_HOME/hub/checkpoints``. Offline, the file already
    in that cache, else a one-line error naming it and its place. medsyn then reads the file
    itself, as a local one."""
    cfg = timm.models.get_pretrained_cfg(name)      # the default tag's when none is named
    cfg = cfg.to_dict() if cfg is not None else {}
    repo, url = cfg.get("hf_hub_id"), cfg.get("url")
    if repo:
        need_package("huggingface_hub", "hf", f"timm:{name}")
        repo, _, revision = repo.partition("@")
        file_name = cfg.get("hf_hub_filename") or "pytorch_model.bin"
        # timm's order: the safetensors twin of a .bin name first (_hub._get_safe_alternatives)
        safe = ("model.safetensors" if file_name == "pytorch_model.bin" else
                file_name[:-4] + ".safetensors" if file_name.endswith(".bin") else None)
        candidates = [safe, file_name] if safe else [file_name]
        return hub_file(repo, candidates, revision or None, what, give)
    if url and cfg.get("custom_load"):
        raise ConfigError(f"{what}: timm reads {url} with the model's own loader (not a state "
                          f"dict), which medsyn does not run. {how}")
    if url:
        path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[1]
        if path.is_file():
            return path
        from timm.models._hub import download_cached_file

        return Path(downloaded(f"{what} (timm's pretrained weights from {url})",
                               lambda: download_cached_file(url, check_hash=True),
                               f"Place {url} at {path}, or {give}."))
    raise ConfigError(f"timm:{name}: timm {timm.__version__} has no pretrained weights for "
                      f"this model. {how}")


def timm_extractor(target: str, weights: str | None = None, device=None,
                   model_kwargs: dict | None = None, **_) -> EncoderExtractor:
    """``target`` = ``"model@file"`` (or ``"model"`` with ``weights=file``); with no file,
    timm's own pretrained weights (downloaded by timm unless offline)."""
    name, path = split_target(target, "timm", "<model>@<weights file>")
    what = f"timm:{name} weights"
    give = f"give a local file: timm:{name}@FILE or --extractor-weights FILE"
    how = (f"G{give[1:]}. On a machine with internet: python -c \"import timm, "
           f"safetensors.torch as s; m = "
           f"timm.create_model('{name}', pretrained=True); s.save_file(m.state_dict(), "
           f"'{name}.safetensors')\".")
    timm = need_package("timm", "dev", "timm:")
    if not timm.is_model(name):
        raise ConfigError(f"timm:{name}: timm {timm.__version__} has no model of that name "
                          "(timm.list_models() lists them).")
    arch, dot, _ = name.partition(".")
    if dot and name not in timm.list_pretrained(name):
        tags = timm.list_pretrained(f"{arch}.*")
        raise ConfigError(f"timm:{name}: timm {timm.__version__} has no pretrained tag of that "
                          f"name for {arch}; its tags: {', '.join(tags[:12]) or 'none'}"
                          f"{' ...' if len(tags) > 12 else ''}.")
    # with no file: the one timm's own download fetches, read here as a local one
    file = (local_file(path or weights, what, how) if path or weights else
            _timm_pretrained_file(timm, name, what, how, give))
    state = read_weights(file, what, _CONVERT)
    model = _create(timm, name, f"{what} {file}", state, **(model_kwargs or {}))
    return EncoderExtractor(
        f"timm:{name}", model, model, _timm_pipeline(model, f"timm:{name}"),
        model.num_features, digest(file),
        {"network": f"timm {name} (num_classes=0)",
         "layer": "pooled pre-logits: forward_head(forward_features(x), pre_logits=True)"},
        device=device, weights_path=str(file))


def hub_pos_embed(pos_embed: torch.Tensor, size: int, patch: int = 14,
                  offset: float = 0.1) -> torch.Tensor:
    """DINOv2's ``interpolate_pos_encoding`` (facebookresearch/dinov2@b8931f7,
    vision_transformer.py 180-211) for a ``size`` x ``size`` input: ``[1, 1 + N, D]`` with the
    class token's embedding first."""
    cls, grid = pos_embed[:, :1].float(), pos_embed[:, 1:].float()
    n, dim = grid.shape[1], grid.shape[2]
    m = int(math.sqrt(n))
    if m * m != n:
        raise ConfigError(f"DINOv2 position embeddings: {n} patches is not a square grid.")
    w0 = size // patch
    if w0 == m:
        return pos_embed
    scale = float(w0 + offset) / m
    out = torch.nn.functional.interpolate(grid.reshape(1, m, m, dim).permute(0, 3, 1, 2),
                                          mode="bicubic", antialias=False,
                                          scale_factor=(scale, scale))
    if tuple(out.shape[-2:]) != (w0, w0):
        raise ConfigError(f"DINOv2 position embeddings: interpolated to {tuple(out.shape[-2:])},"
                          f" expected {(w0, w0)}.")
    return torch.cat([cls, out.permute(0, 2, 3, 1).reshape(1, -1, dim)], dim=1).to(
        pos_embed.dtype)


def dinov2_model(arch: str, path: str | None, model_kwargs: dict | None = None,
                 size: int = 224, source: str = "dinov2", space: str | None = None):
    """``(timm model, weights file)``: DINOv2 ``arch`` at ``size`` px with the hub's
    position-embedding interpolation, from the hub's state dict in ``path`` (None: the one
    torch.hub downloads). ``space``: the space's name in messages (``source:arch``)."""
    if arch not in DINOV2_ARCHS:
        raise ConfigError(f"{source}:{arch}: unknown architecture; choose one of "
                          f"{', '.join(DINOV2_ARCHS)}.")
    space = space or f"{source}:{arch}"
    what = f"{space} weights"
    how = (f"give the file: {space}@FILE or --extractor-weights FILE (the hub's state dict, "
           "Apache-2.0)")
    # with no file: the hub's state dict where torch.hub's download keeps it
    file = (local_file(path, what, f"Download {DINOV2_URL.format(arch=arch)} on a machine "
                                   f"with internet, then {how}.") if path else
            hub_cache_file(DINOV2_URL.format(arch=arch), what, how))
    timm = need_package("timm", "dev", f"{source}:")
    state = read_weights(file, what, _CONVERT)
    if "pos_embed" not in state:
        raise ConfigError(f"{what} {file}: no 'pos_embed' tensor; expected the hub's DINOv2 "
                          "state dict (dinov2_<arch>_pretrain.pth).")
    model = _create(timm, DINOV2_ARCHS[arch], f"{what} {file}", dict(state), img_size=size,
                    **(model_kwargs or {}))
    with torch.no_grad():
        model.pos_embed.copy_(hub_pos_embed(state["pos_embed"], size,
                                            model.patch_embed.patch_size[0]))
    return model, file


def dinov2_extractor(target: str, weights: str | None = None, device=None,
                     model_kwargs: dict | None = None, **_) -> EncoderExtractor:
    """``target`` = ``"vitl14@file"`` (or ``"vitl14"`` with ``weights=file``); the hub's
    ``dinov2_<arch>_pretrain.pth`` state dict, or the same as .safetensors."""
    arch, path = split_target(target, "dinov2", "<vits14|vitb14|vitl14|vitg14>@<file>")
    size = 224
    model, file = dinov2_model(arch, path or weights, model_kwargs, size)
    pipeline = PilPipeline((Resize("bicubic", size=(size, size)),), IMAGENET_MEAN,
                           IMAGENET_STD, "div",
                           source="dgm-eval models/dinov2.py (layer6ai-labs/dgm-eval@74c79f7): "
                                  "TF.Resize((224, 224), BICUBIC) on the PIL image, ToTensor, "
                                  "Normalize")
    return EncoderExtractor(
        f"dinov2:{arch}", model, model, pipeline, model.num_features, digest(file),
        {"network": f"DINOv2 {arch} (timm {DINOV2_ARCHS[arch]}, img_size 224, position "
                    "embeddings interpolated by the torch.hub model's formula)",
         "layer": "x_norm_clstoken: CLS token after the final norm"},
        device=device, weights_path=str(file))
