"""Hugging Face model folders (``save_pretrained`` layout), read by transformers locally.

Three sources share the loader:

- ``hf:<folder>``: any image model ``AutoModel`` builds; features = ``pooler_output`` (DINOv2,
  RAD-DINO: the CLS token after the final LayerNorm), CLIP: the projected ``image_embeds``;
  preprocessing = the folder's ``preprocessor_config.json`` on the PIL path.
- ``rad-dino:<folder>``: CheXGenBench's RAD-DINO space (``metrics/fid.py`` at 9a201c1): PIL
  bilinear to 299 x 299 (aspect not kept), then the folder's processor (PIL bicubic, shortest
  edge 518, centre crop 518, mean 0.5307 / std 0.2583), ``pooler_output``.
- ``cmmd-clip:<folder>``: CMMD's embedding (google-research/cmmd, cmmd-pytorch): centre crop to
  a square, PIL bicubic to the model's resolution (336 for ViT-L/14-336), x / 255, CLIP's
  mean / std, ``image_embeds`` divided by its L2 norm.

The target is a local folder, or a Hugging Face repo id (``hf:microsoft/rad-dino``) whose hub
snapshot is downloaded into the hub's cache (offline: read from it). The weights must be
``.safetensors`` (``use_safetensors=True``: a ``pytorch_model.bin`` pickle is refused), the
model code transformers' own (``trust_remote_code=False``), and transformers reads the folder
with ``local_files_only=True``. The processor is never transformers' torchvision
("fast") backend: it differs from the PIL path that CheXGenBench's pinned transformers 4.50.3
runs by up to 0.03 normalised units (docs/encoders_research.md section 2).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from medsyn.errors import ConfigError
from medsyn.evaluators.features.encoders.extractor import EncoderExtractor
from medsyn.evaluators.features.encoders.files import (
    downloaded,
    folder_digest,
    hub_repo_cache,
    local_folder,
    need_package,
)
from medsyn.evaluators.features.encoders.preprocess import (
    CLIP_MEAN,
    CLIP_STD,
    CenterCrop,
    PilPipeline,
    Resize,
    from_preprocessor_config,
)

HOW_TO_GET = ("On a machine with internet: pip install huggingface_hub; hf download {repo} "
              "--local-dir FOLDER (or huggingface_hub.snapshot_download('{repo}', "
              "local_dir=FOLDER)), then copy FOLDER here and name it (SPACE:FOLDER, or "
              "--extractor-weights FOLDER with --protocol).")
CLIP_TYPES = ("clip", "clip_vision_model")
# what a hub snapshot fetches: configs, processor settings, the model card, safetensors weights
HUB_FILES = ["*.json", "*.safetensors", "README.md", "LICENSE*"]


def _licence(folder: Path) -> str:
    readme = folder / "README.md"
    if readme.is_file():
        m = re.search(r"^license:\s*(\S+)", readme.read_text(errors="replace")[:4000], re.M)
        if m:
            return m.group(1)
    lic = folder / "LICENSE"
    if lic.is_file():
        first = lic.read_text(errors="replace").strip().splitlines()
        return first[0][:120] if first else ""
    return ""


def _is_repo_id(target: str) -> bool:
    text = target.strip()
    return (not Path(text).expanduser().exists() and not text.startswith((".", "/", "~"))
            and re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", text) is not None)


def model_folder(target: str, what: str, repo_hint: str) -> Path:
    """The model folder ``target``, or for a Hugging Face repo id (``microsoft/rad-dino``) the
    hub's snapshot of it: ``huggingface_hub.snapshot_download``, the download and cache that
    ``AutoModel.from_pretrained(repo_id)`` uses, limited to the configs, the model card and the
    ``.safetensors`` weights (a ``.bin`` pickle is never fetched). Offline, the snapshot
    already in the hub's cache is used, else a one-line error."""
    if not _is_repo_id(target):
        return local_folder(target, what, HOW_TO_GET.format(repo=repo_hint))
    repo = target.strip()
    hub = need_package("huggingface_hub", "hf", what)

    def snapshot(local_only: bool) -> Path:
        return Path(hub.snapshot_download(repo, allow_patterns=HUB_FILES,
                                          local_files_only=local_only))
    folder = downloaded(f"{what} {repo} (Hugging Face hub)", lambda: snapshot(False),
                        f"Give a local model folder instead: {HOW_TO_GET.format(repo=repo)} "
                        f"Or put the hub's copy where it looks offline: hf download {repo} "
                        f"fills {hub_repo_cache(repo)}; copy that folder to the same path here.",
                        from_cache=lambda: snapshot(True))
    return local_folder(folder, f"{what} {repo}: the hub's snapshot",
                        HOW_TO_GET.format(repo=repo))


def _space_name(source: str, target: str, folder: Path) -> str:
    return f"{source}:{target.strip()}" if _is_repo_id(target) else f"{source}:{folder.name}"


def load_folder(target: str, what: str, repo_hint: str):
    """``(model, config dict, folder)``: the transformers model in ``target`` (a folder or a
    Hugging Face repo id), in eval mode."""
    folder = model_folder(target, what, repo_hint)
    if not any(folder.glob("*.safetensors")):
        pickles = sorted(p.name for p in folder.glob("*.bin"))
        raise ConfigError(
            f"{what} {folder} holds no .safetensors weights"
            + (f" (only {', '.join(pickles)}: pickles, which medsyn does not load)" if pickles
               else "") + ". Convert once where you trust the file: "
            "AutoModel.from_pretrained(FOLDER).save_pretrained(FOLDER) writes model.safetensors.")
    transformers = need_package("transformers", "hf", what)
    config = json.loads((folder / "config.json").read_text())
    cls = (transformers.CLIPVisionModelWithProjection
           if config.get("model_type") in CLIP_TYPES else transformers.AutoModel)
    try:
        model = cls.from_pretrained(folder, use_safetensors=True, local_files_only=True,
                                    trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{what} {folder} cannot be loaded by transformers "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}).") from None
    return model.eval(), config, folder


def _processor_config(folder: Path, what: str) -> dict:
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        raise ConfigError(f"{what} {path}: file not found in the model folder (the image "
                          "processor's settings: resize, crop, mean, std). "
                          + HOW_TO_GET.format(repo="<repo>"))
    return json.loads(path.read_text())


def _is_clip(model) -> bool:
    return getattr(model.config, "model_type", "") in CLIP_TYPES


def _forward(model):
    if _is_clip(model):
        return lambda x: model(pixel_values=x).image_embeds

    def pooled(x):
        out = model(pixel_values=x)
        pool = getattr(out, "pooler_output", None)
        if pool is not None:
            return pool
        return out.last_hidden_state.flatten(2).mean(-1) if out.last_hidden_state.ndim == 4 \
            else out.last_hidden_state.mean(1)
    return pooled


def _output_dim(model) -> int:
    cfg = model.config
    if _is_clip(model):
        return int(cfg.projection_dim)
    if hasattr(cfg, "hidden_sizes"):           # convolutional models (ConvNeXt, ResNet)
        return int(cfg.hidden_sizes[-1])
    return int(cfg.hidden_size)


def _layer(model) -> str:
    if _is_clip(model):
        return "image_embeds = visual_projection(post_layernorm(CLS))"
    if getattr(model.config, "model_type", "") == "dinov2":
        return "pooler_output = CLS token after the final LayerNorm"
    return "pooler_output (else last_hidden_state averaged over tokens)"


def hf_extractor(target: str, device=None, **_) -> EncoderExtractor:
    what = "Hugging Face model folder"
    model, config, folder = load_folder(target, what, "<repo id>")
    pipeline = from_preprocessor_config(_processor_config(folder, what),
                                        "the folder's preprocessor_config.json, PIL backend")
    return EncoderExtractor(
        _space_name("hf", target, folder), model, _forward(model), pipeline,
        _output_dim(model),
        folder_digest(folder), {"network": f"transformers {type(model).__name__} "
                                           f"({config.get('model_type')})",
                                "layer": _layer(model)},
        device=device, weights_path=str(folder), licence=_licence(folder))


def rad_dino_extractor(target: str, device=None, **_) -> EncoderExtractor:
    what = "RAD-DINO model folder (rad-dino:FOLDER)"
    model, config, folder = load_folder(target, what, "microsoft/rad-dino")
    if config.get("model_type") != "dinov2":
        raise ConfigError(f"{what} {folder}: config.json says model_type "
                          f"{config.get('model_type')!r}; RAD-DINO is a 'dinov2' model.")
    pipeline = from_preprocessor_config(
        _processor_config(folder, what),
        "CheXGenBench metrics/fid.py (Raman1121/CheXGenBench@9a201c1): PIL bilinear 299x299, "
        "then RAD-DINO's image processor on the PIL path (transformers 4.50.3 slow processor)",
        before=(Resize("bilinear", size=(299, 299)),))
    return EncoderExtractor(
        _space_name("rad-dino", target, folder), model, _forward(model), pipeline,
        _output_dim(model),
        folder_digest(folder), {"network": "RAD-DINO (transformers Dinov2Model)",
                                "layer": _layer(model)},
        device=device, weights_path=str(folder), licence=_licence(folder))


def cmmd_clip_extractor(target: str, device=None, **_) -> EncoderExtractor:
    what = "CLIP model folder (cmmd-clip:FOLDER)"
    model, config, folder = load_folder(target, what, "openai/clip-vit-large-patch14-336")
    if not _is_clip(model):
        raise ConfigError(f"{what} {folder}: config.json says model_type "
                          f"{config.get('model_type')!r}; CMMD's embedding is CLIP's.")
    size = int(model.config.image_size)
    pipeline = PilPipeline(
        (CenterCrop(None), Resize("bicubic", size=(size, size))), CLIP_MEAN, CLIP_STD, "div",
        source="CMMD io_util._center_crop_and_resize (google-research/cmmd@4c42994) and "
               "cmmd-pytorch embedding.py (sayakpaul/cmmd-pytorch@f7673a9)")
    return EncoderExtractor(
        _space_name("cmmd-clip", target, folder), model, _forward(model), pipeline,
        _output_dim(model),
        folder_digest(folder), {"network": "CLIP vision tower with projection "
                                           "(transformers CLIPVisionModelWithProjection)",
                                "layer": _layer(model)},
        device=device, unit_norm=True, weights_path=str(folder), licence=_licence(folder))
