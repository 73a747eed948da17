"""open_clip models: ``open_clip:<folder>`` (``open_clip_config.json`` with ``model_cfg`` and
``preprocess_cfg``, and ``open_clip_model.safetensors``, the layout open_clip's ``local-dir:``
schema and its Hugging Face uploads use), or ``open_clip:<model>@<pretrained tag>`` (a pair of
``open_clip.list_pretrained()``, e.g. ``ViT-B-32@laion2b_s34b_b79k``): the tag's file from
open_clip's own download (unless offline: then its cache), read by medsyn as a local file is
(its sha256 into provenance), then loaded by open_clip's own
``create_model_and_transforms(model, pretrained=tag, weights_only=True)`` from its cache.

Features: ``model.encode_image(x)`` (projected, not unit-norm). Preprocessing: open_clip's eval
transform from the model's ``preprocess_cfg``, on PIL images: resize the shortest edge
(torchvision ``Resize``, bicubic by default) and centre crop to ``size``, or squash to
``size``; ``x / 255``; its mean / std (OpenAI CLIP's by default).
"""

from __future__ import annotations

from pathlib import Path

from medsyn.errors import ConfigError
from medsyn.evaluators.features.encoders.extractor import EncoderExtractor
from medsyn.evaluators.features.encoders.files import (
    cache_only,
    digest,
    downloaded,
    folder_digest,
    hub_repo_cache,
    local_folder,
    need_package,
    read_weights,
    require_safe_loader,
)
from medsyn.evaluators.features.encoders.preprocess import (
    CLIP_MEAN,
    CLIP_STD,
    CenterCrop,
    PilPipeline,
    Resize,
)

HOW_TO_GET = ("On a machine with internet: hf download REPO --local-dir FOLDER for an open_clip "
              "upload on the Hugging Face hub (e.g. laion/CLIP-ViT-B-32-laion2B-s34B-b79K), "
              "then copy FOLDER here and name it.")


def _pipeline(cfg: dict, source: str) -> PilPipeline:
    size = cfg.get("size", 224)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    mode = cfg.get("resize_mode", "shortest")
    interp = cfg.get("interpolation", "bicubic")
    interp = "bilinear" if interp == "bilinear" else "bicubic"
    if mode == "squash":
        steps = (Resize(interp, size=(w, h)),)
    elif mode == "shortest" and h == w:
        steps = (Resize(interp, shortest_edge=h), CenterCrop((w, h), rounding="round"))
    else:
        raise ConfigError(f"{source}: open_clip resize mode {mode!r} at {h}x{w} is not "
                          "supported by medsyn (it reads 'shortest' on square sizes, 'squash').")
    return PilPipeline(steps, tuple(cfg.get("mean", CLIP_MEAN)), tuple(cfg.get("std", CLIP_STD)),
                       "div", source="open_clip image_transform (eval) from the model's "
                                     "preprocess_cfg")


def _pretrained(open_clip, target: str, what: str):
    """``(model, name, sha256, origin)`` of ``open_clip:<model>@<tag>``."""
    name, _, tag = (part.strip() for part in target.partition("@"))
    pairs = [tuple(p) for p in open_clip.list_pretrained()]
    if (name, tag) not in pairs:
        tags = sorted(t for n, t in pairs if n == name)
        raise ConfigError(f"open_clip:{target}: open_clip has no pretrained weights {tag!r} "
                          f"for model {name!r}; "
                          + (f"its tags: {', '.join(tags)}." if tags else
                             "open_clip.list_pretrained() lists the (model, tag) pairs."))
    # weights_only is passed below: an open_clip without it would hand it to the model
    require_safe_loader(f"open_clip {getattr(open_clip, '__version__', '?')}",
                        open_clip.create_model_and_transforms, "weights_only",
                        "Upgrade it (pip install -U open_clip_torch), or give a local folder: "
                        "open_clip:FOLDER.", torch_default_suffices=False)
    label = f"{name}@{tag}"
    file = _pretrained_file(open_clip, open_clip.get_pretrained_cfg(name, tag), label, what)
    # read as a local file is (nothing in it run), before open_clip loads it from its cache
    read_weights(file, f"{what} {label} weights", "Give a local folder instead: "
                 "open_clip:FOLDER with open_clip_model.safetensors.")
    try:
        with cache_only():
            model, _, _ = open_clip.create_model_and_transforms(name, pretrained=tag, device="cpu",
                                                                weights_only=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ConfigError(f"{what} {label}: open_clip cannot load {file} "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}).") from None
    return model, label, digest(file), str(file)


def _pretrained_file(open_clip, cfg: dict, label: str, what: str) -> Path:
    """The file of open_clip's pretrained weights ``cfg``, fetched by open_clip's own download
    (``open_clip.pretrained.download_pretrained``: the Hugging Face hub's
    ``open_clip_model.safetensors`` before its ``.bin``, into the hub's cache, else the URL into
    ``~/.cache/clip``), as ``create_model_and_transforms`` fetches it. Offline, the file already
    in that cache, else a one-line error naming it and its place."""
    hub_id, url = cfg.get("hf_hub", ""), cfg.get("url", "")
    how = f"Give a local folder instead: open_clip:FOLDER. {HOW_TO_GET}"
    what = f"{what} {label} (open_clip's pretrained weights)"

    def fetch() -> Path:
        return Path(open_clip.pretrained.download_pretrained(cfg))
    if hub_id:
        repo, file_name = hub_id.rsplit("/", 1)
        file_name = file_name or "open_clip_pytorch_model.bin"
        if file_name == "open_clip_pytorch_model.bin":     # the safetensors twin comes first
            file_name = "open_clip_model.safetensors"
        need_package("huggingface_hub", "openclip", "open_clip:")

        def from_cache() -> Path:
            with cache_only():
                return fetch()
        return downloaded(f"{what}, {file_name} of the Hugging Face hub repo {repo}", fetch,
                          f"On a machine with internet: hf download {repo} --local-dir FOLDER "
                          f"(with its open_clip_config.json), then give open_clip:FOLDER; or "
                          f"hf download {repo} {file_name} there and copy "
                          f"{hub_repo_cache(repo)} from it to the same place here.",
                          from_cache=from_cache)
    place = Path("~/.cache/clip").expanduser() / url.rsplit("/", 1)[1]
    if place.is_file():      # open_clip's download checks its sha256 and returns it
        return fetch()
    return downloaded(what, fetch, f"Place {url} at {place}, or {how[0].lower()}{how[1:]}")


def open_clip_extractor(target: str, device=None, **_) -> EncoderExtractor:
    what = "open_clip model folder (open_clip:FOLDER)"
    if "@" in target and not Path(target.strip()).expanduser().is_dir():
        open_clip = need_package("open_clip", "openclip", "open_clip:")
        model, label, sha, origin = _pretrained(open_clip, target, "open_clip")
    else:
        model, label, sha, origin = _from_folder(target, what)
        open_clip = need_package("open_clip", "openclip", "open_clip:")
    model.eval()
    cfg = open_clip.get_model_preprocess_cfg(model)
    dim = int(model.visual.output_dim)
    return EncoderExtractor(
        f"open_clip:{label}", model, lambda x: model.encode_image(x), _pipeline(cfg, what),
        dim, sha,
        {"network": f"open_clip {type(model).__name__} from {label}",
         "layer": "encode_image: projected image embedding (not unit-norm)"},
        device=device, weights_path=origin)


def _from_folder(target: str, what: str):
    folder = local_folder(target, what, HOW_TO_GET, needs=("open_clip_config.json",))
    if not any(folder.glob("*.safetensors")):
        raise ConfigError(f"{what} {folder} holds no .safetensors weights; medsyn reads "
                          "open_clip weights as safetensors only (save the state dict with "
                          "safetensors.torch.save_file into open_clip_model.safetensors).")
    open_clip = need_package("open_clip", "openclip", "open_clip:")
    try:
        model = open_clip.create_model(f"local-dir:{folder}", device="cpu")
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ConfigError(f"{what} {folder} cannot be loaded by open_clip "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}).") from None
    return model, folder.name, folder_digest(folder), str(folder)
