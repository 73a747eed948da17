"""Tiny random-weights models in each library's own on-disk format, loaded back through the
library's own loader, and the facts about their forward passes that medsyn's extractors must
reproduce (issue 29). Nothing is downloaded. Run it in an environment with transformers,
open_clip_torch and torchxrayvision installed (medsyn's venv has timm and torch-fidelity only):

    python bench/encoder_reference/loader_recipes.py [--dinov2-git DIR] [--json OUT]

Each section prints what it built (files, sizes), which loader read it, and the checks it made
(maximum absolute differences). ``--dinov2-git`` points at a git directory of
facebookresearch/dinov2 (pinned commit below) for the torch.hub DINOv2 that dgm-eval and
torch-fidelity run; that section is skipped without it. The recipes are what the
implementation's tests build, in a few lines each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

DINOV2_COMMIT = "b8931f7bf91576930313be2c6d6af376033b35f0"
DINOV2_FILES = ["dinov2/__init__.py", "dinov2/models/__init__.py",
                "dinov2/models/vision_transformer.py", "dinov2/layers/__init__.py",
                "dinov2/layers/attention.py", "dinov2/layers/block.py",
                "dinov2/layers/dino_head.py", "dinov2/layers/drop_path.py",
                "dinov2/layers/layer_scale.py", "dinov2/layers/mlp.py",
                "dinov2/layers/patch_embed.py", "dinov2/layers/swiglu_ffn.py"]
# RAD-DINO's preprocessor_config.json values as quoted by several independent copies of it
# (e.g. "microsoft/rad-dino, commit 364cf91"); a test builds the processor from these numbers.
RAD_DINO_PROCESSOR = dict(size={"shortest_edge": 518}, crop_size={"height": 518, "width": 518},
                          image_mean=[0.5307] * 3, image_std=[0.2583] * 3, resample=3,
                          do_center_crop=True, do_convert_rgb=True, do_normalize=True,
                          do_rescale=True, rescale_factor=1 / 255)


def size_of(folder: Path) -> dict:
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}


def maxdiff(a, b) -> float:
    return float((torch.as_tensor(a).double() - torch.as_tensor(b).double()).abs().max())


def cxr_images(n: int, size: int = 299) -> np.ndarray:
    """uint8 [n, size, size] chest X-rays from the shared cxr3 test split (real pixels make the
    resize comparisons meaningful), or smooth random images when the data is absent."""
    root = Path(os.environ.get("MEDSYN_DATA_ROOT", "/work/shared/data")) / "cxr3/test/Normal"
    from PIL import Image
    files = sorted(root.glob("*.png"))[:n] if root.is_dir() else []
    if len(files) == n:
        return np.stack([np.asarray(Image.open(f).convert("L").resize((size, size),
                                                                        Image.BILINEAR))
                         for f in files])
    rng = np.random.default_rng(0)
    low = rng.integers(0, 256, (n, 8, 8)).astype(np.uint8)
    return np.stack([np.asarray(Image.fromarray(a).resize((size, size), Image.BICUBIC))
                     for a in low])


# ------------------------------------------------------------------- transformers (hf:)

def section_hf_dinov2(tmp: Path) -> dict:
    from PIL import Image
    from transformers import (
        AutoImageProcessor,
        AutoModel,
        BitImageProcessor,
        Dinov2Config,
        Dinov2Model,
    )

    folder = tmp / "hf-dinov2"
    torch.manual_seed(0)
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2,
                       image_size=28, patch_size=14, layerscale_value=1.0)
    Dinov2Model(cfg).eval().save_pretrained(folder)                  # model.safetensors
    small = {**RAD_DINO_PROCESSOR, "size": {"shortest_edge": 28},
             "crop_size": {"height": 28, "width": 28}}
    BitImageProcessor(**small).save_pretrained(folder)               # preprocessor_config.json
    model = AutoModel.from_pretrained(folder, use_safetensors=True).eval()
    proc = AutoImageProcessor.from_pretrained(folder, backend="pil")
    imgs = cxr_images(3, 40)
    pil = [Image.fromarray(a).convert("RGB") for a in imgs]
    with torch.no_grad():
        inputs = proc(images=pil, return_tensors="pt")
        out = model(**inputs)
        manual = model.layernorm(model(**inputs, output_hidden_states=True).hidden_states[-1])
    return {
        "files": size_of(folder), "model_class": type(model).__name__,
        "processor_class": type(proc).__name__, "pixel_values": list(inputs.pixel_values.shape),
        "pooler_output": list(out.pooler_output.shape),
        "maxdiff pooler_output vs last_hidden_state[:, 0]":
            maxdiff(out.pooler_output, out.last_hidden_state[:, 0]),
        "maxdiff pooler_output vs layernorm(hidden_states[-1])[:, 0]":
            maxdiff(out.pooler_output, manual[:, 0]),
    }


def section_hf_clip(tmp: Path) -> dict:
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    folder = tmp / "hf-clip"
    torch.manual_seed(0)
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=28, patch_size=14, projection_dim=16)
    CLIPVisionModelWithProjection(cfg).eval().save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 28},
                       crop_size={"height": 28, "width": 28}).save_pretrained(folder)
    model = CLIPVisionModelWithProjection.from_pretrained(folder, use_safetensors=True).eval()
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        out = model(pixel_values=x)
        cls = model.vision_model.post_layernorm(
            model.vision_model(pixel_values=x).last_hidden_state[:, 0])
    emb = out.image_embeds / torch.linalg.norm(out.image_embeds, dim=-1, keepdim=True)
    return {"files": size_of(folder), "image_embeds": list(out.image_embeds.shape),
            "maxdiff image_embeds vs visual_projection(post_layernorm(CLS))":
                maxdiff(out.image_embeds, model.visual_projection(cls)),
            "cmmd_embedding": "image_embeds / ||image_embeds|| (embedding.py line 70)",
            "norms_after": [round(float(v), 6) for v in emb.norm(dim=-1)]}


def section_processor_backends(legacy_path: str | None) -> dict:
    """RAD-DINO's processor on real 299 px CXRs (CheXGenBench's input size): the PIL backend,
    the torchvision backend, and a plain PIL re-implementation (what medsyn can do without
    transformers), in units of the normalised tensor."""
    from PIL import Image
    from transformers.models.bit import image_processing_bit

    try:
        from transformers.models.bit.image_processing_pil_bit import BitImageProcessorPil
    except ImportError:                     # transformers 4.x: the slow class is the PIL one
        BitImageProcessorPil = image_processing_bit.BitImageProcessor  # noqa: N806
    imgs = cxr_images(4, 299)
    rgb = [Image.fromarray(a).convert("RGB") for a in imgs]
    as_tensor = torch.from_numpy(np.repeat(imgs[:, None], 3, axis=1))   # uint8 [N, 3, H, W]
    proc_pil = BitImageProcessorPil(**RAD_DINO_PROCESSOR)
    a = proc_pil(images=rgb, return_tensors="pt").pixel_values
    out = {"pil_backend_class": f"{type(proc_pil).__module__}.{type(proc_pil).__name__}",
           "pixel_values": list(a.shape),
           "maxdiff pil(PIL images) vs pil(uint8 tensor batch)":
               maxdiff(a, proc_pil(images=as_tensor, return_tensors="pt").pixel_values),
           "maxdiff pil backend vs manual PIL re-implementation":
               maxdiff(a, torch.stack([_manual_rad_dino(x) for x in imgs]))}
    tv_cls = image_processing_bit.BitImageProcessor
    if tv_cls is not BitImageProcessorPil:
        b = tv_cls(**RAD_DINO_PROCESSOR)(images=as_tensor, return_tensors="pt").pixel_values
        out["torchvision_backend_class"] = f"{tv_cls.__module__}.{tv_cls.__name__}"
        out["maxdiff pil backend vs torchvision backend (normalised units)"] = maxdiff(a, b)
        out["mean |diff| pil vs torchvision"] = float((a - b).abs().mean())
    if legacy_path:
        code = ("import sys, json, numpy as np, torch; "
                "from transformers import BitImageProcessor, __version__ as v; "
                f"cfg = {RAD_DINO_PROCESSOR!r}; "
                "x = np.load(sys.argv[1]); "
                "t = torch.from_numpy(np.repeat(x[:, None], 3, axis=1)); "
                "p = BitImageProcessor(**cfg)(images=t, return_tensors='np').pixel_values; "
                "np.save(sys.argv[2], p); print(json.dumps({'legacy_transformers': v}))")
        with tempfile.TemporaryDirectory() as t:
            np.save(f"{t}/in.npy", imgs)
            res = subprocess.run([sys.executable, "-c", code, f"{t}/in.npy", f"{t}/out.npy"],
                                 env={**os.environ, "PYTHONPATH": legacy_path},
                                 capture_output=True, text=True, check=True)
            legacy = torch.from_numpy(np.load(f"{t}/out.npy"))
        out.update(json.loads(res.stdout.strip().splitlines()[-1]))
        out["maxdiff legacy slow processor (CheXGenBench's pin) vs pil backend"] = \
            maxdiff(legacy, a)
    return out


def _manual_rad_dino(gray: np.ndarray) -> torch.Tensor:
    """PIL bicubic resize of the uint8 image to 518 (shortest edge; square here, so the centre
    crop is a no-op), x / 255, (x - 0.5307) / 0.2583, replicated to 3 channels."""
    from PIL import Image
    img = Image.fromarray(gray).resize((518, 518), Image.BICUBIC)
    x = np.asarray(img).astype(np.float32) / np.float32(255)
    x = (x - np.float32(0.5307)) / np.float32(0.2583)
    return torch.from_numpy(np.repeat(x[None], 3, axis=0))


# ------------------------------------------------------------------- timm

def section_timm(tmp: Path) -> dict:
    import safetensors.torch
    import timm
    from timm.data import create_transform, resolve_data_config

    torch.manual_seed(0)
    name = "vit_tiny_patch16_224"
    full = timm.create_model(name, pretrained=False, num_classes=10).eval()
    path = tmp / "timm-vit-tiny.safetensors"
    safetensors.torch.save_file(full.state_dict(), str(path))
    torch.save(full.state_dict(), tmp / "timm-vit-tiny.pth")
    # the library's own loader: pretrained=True from a local file, classifier dropped
    feat = timm.create_model(name, pretrained=True, num_classes=0,
                             pretrained_cfg_overlay=dict(file=str(path))).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        pooled = feat(x)
        pre_logits = full.forward_head(full.forward_features(x), pre_logits=True)
    cfg = resolve_data_config({}, model=feat)
    return {"files": {path.name: path.stat().st_size,
                      "timm-vit-tiny.pth": (tmp / "timm-vit-tiny.pth").stat().st_size},
            "features": list(pooled.shape),
            "maxdiff create_model(num_classes=0)(x) vs forward_head(pre_logits=True)":
                maxdiff(pooled, pre_logits),
            "data_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
            "eval_transform": repr(create_transform(**cfg)).replace("\n", " ")}


# ------------------------------------------------------------------- open_clip

def section_open_clip(tmp: Path) -> dict:
    import open_clip
    import safetensors.torch

    folder = tmp / "open-clip-tiny"
    folder.mkdir()
    model_cfg = {"embed_dim": 16,
                 "vision_cfg": {"image_size": 28, "layers": 2, "width": 32, "head_width": 16,
                                "patch_size": 14},
                 "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2,
                              "layers": 1}}
    (folder / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": model_cfg, "preprocess_cfg": {"size": 28}}))
    torch.manual_seed(0)
    built = open_clip.CLIP(**model_cfg).eval()
    safetensors.torch.save_file(built.state_dict(), str(folder / "open_clip_model.safetensors"))
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    model.eval()
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        feats = model.encode_image(x)
        v = model.visual
        manual = v(x)
    return {"files": size_of(folder), "features": list(feats.shape),
            "maxdiff encode_image vs built model": maxdiff(feats, built.encode_image(x)),
            "maxdiff encode_image vs visual(x)": maxdiff(feats, manual),
            "preprocess": repr(preprocess).replace("\n", " ")}


# ------------------------------------------------------------------- torchxrayvision

def section_xrv(tmp: Path) -> dict:
    import torchxrayvision as xrv
    from torchxrayvision.models import model_urls

    cache = tmp / "xrv"
    cache.mkdir()
    torch.manual_seed(0)
    net = xrv.models.DenseNet(num_classes=18).eval()
    # the file xrv downloads is a whole pickled nn.Module: write one the same way, under the
    # name xrv looks for in cache_dir, so xrv's own loader reads it without a download
    fname = os.path.basename(model_urls["densenet121-res224-all"]["weights_url"])
    torch.save(net, cache / fname)
    loaded = xrv.models.DenseNet(weights="densenet121-res224-all", cache_dir=str(cache))
    refused = None
    try:
        torch.load(cache / fname, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - recording what the safe loader says
        refused = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    state_path = tmp / "xrv-densenet121-state.pt"
    torch.save(loaded.state_dict(), state_path)
    safe = xrv.models.DenseNet(num_classes=18)
    state = torch.load(state_path, weights_only=True)
    op_threshs = state.pop("op_threshs")        # a buffer of the classifier outputs only
    safe.load_state_dict(state)
    safe.eval()
    img = cxr_images(2, 224).astype(np.float32)
    x = torch.from_numpy(xrv.utils.normalize(img, 255))[:, None]     # [-1024, 1024], 1 channel
    with torch.no_grad():
        f_lib = loaded.features2(x)
        f_safe = safe.features2(x)
    res_cache = tmp / "xrv-res"
    res_cache.mkdir()
    import torchvision
    r = torchvision.models.resnet50(num_classes=18, weights=None)
    r.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    rname = os.path.basename(model_urls["resnet50-res512-all"]["weights_url"])
    torch.save(r.state_dict(), res_cache / rname)
    resnet = xrv.models.ResNet(weights="resnet50-res512-all", cache_dir=str(res_cache)).eval()
    xr = torch.from_numpy(xrv.utils.normalize(cxr_images(1, 512).astype(np.float32), 255))[:, None]
    with torch.no_grad():
        fr = resnet.features(xr)
    return {"densenet_file_bytes": (cache / fname).stat().st_size,
            "densenet_weights_only_true": refused or "loaded (unexpected)",
            "densenet_features2": list(f_lib.shape),
            "maxdiff features2: xrv loader vs state dict loaded weights_only=True":
                maxdiff(f_lib, f_safe),
            "input_range": [float(x.min()), float(x.max())],
            "state_dict_extra_key": f"op_threshs {list(op_threshs.shape)} (pop before loading)",
            "resnet50_state_dict_weights_only_true": "loads (it is a plain state dict)",
            "resnet50_features": list(fr.shape)}


# ------------------------------------------------------------------- torch-fidelity

def section_tf_clip(tmp: Path) -> dict:
    """A TorchScript archive in OpenAI's CLIP layout (what torch-fidelity's clip-* extractors
    read), tiny, and torch-fidelity's own forward on it."""
    from torch_fidelity.feature_extractor_clip import CLIPVisual, FeatureExtractorCLIP

    torch.manual_seed(0)
    visual = CLIPVisual(embed_dim=16, image_resolution=28, vision_layers=2, vision_width=64,
                        vision_patch_size=14)

    class Archive(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = visual.visual
            self.text_projection = torch.nn.Parameter(torch.randn(8, 16))

        def forward(self, x):
            return self.visual(x)

    # OpenAI's files hold fp16 weights; torch-fidelity casts the module to fp16 before loading
    archive = Archive().half()
    path = tmp / "clip-tiny.pt"
    with _quiet():
        torch.jit.save(torch.jit.script(archive), str(path))
        extractor = FeatureExtractorCLIP("clip-vit-b-32", ["clip"],
                                         feature_extractor_weights_path=str(path))
    x = (torch.rand(2, 3, 40, 40) * 255).to(torch.uint8)
    with torch.no_grad():
        feats = extractor(x)[0]
    refused = None
    try:
        torch.load(path, weights_only=True)
    except Exception as exc:  # noqa: BLE001
        refused = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return {"file_bytes": path.stat().st_size, "features": list(feats.shape),
            "resolution_from_state_dict": extractor.resolution,
            "weights_only_true_on_torchscript": refused}


def section_tf_vgg16(tmp: Path) -> dict:
    """Size and cost of a random VGG16 state dict in torch-fidelity's format (torchvision's)."""
    import torchvision
    from torch_fidelity.feature_extractor_vgg16 import FeatureExtractorVGG16

    torch.manual_seed(0)
    path = tmp / "vgg16.pth"
    torch.save(torchvision.models.vgg16().state_dict(), path)
    t0 = time.perf_counter()
    extractor = FeatureExtractorVGG16("vgg16", ["fc2_relu"], feature_extractor_weights_path=path)
    x = (torch.rand(2, 3, 32, 32) * 255).to(torch.uint8)
    with torch.no_grad():
        feats = extractor(x)[0]
    return {"file_bytes": path.stat().st_size, "features": list(feats.shape),
            "load_and_2_images_s": round(time.perf_counter() - t0, 2)}


class _quiet:
    def __enter__(self):
        import warnings
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


# ------------------------------------------------------------------- DINOv2: hub vs timm vs HF

def section_dinov2(tmp: Path, git_dir: str | None) -> dict:
    """The torch.hub DINOv2 (dgm-eval, torch-fidelity) at 224 px against timm and
    transformers built from the same random weights: where do they agree?"""
    if not git_dir:
        return {"skipped": "no --dinov2-git"}
    root = tmp / "dinov2-src"
    for rel in DINOV2_FILES:
        blob = subprocess.run(["git", "--git-dir", git_dir, "show", f"{DINOV2_COMMIT}:{rel}"],
                              check=True, capture_output=True).stdout
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(blob)
    os.environ["XFORMERS_DISABLED"] = "1"
    sys.path.insert(0, str(root))
    with _quiet():
        from dinov2.models.vision_transformer import vit_small
    import timm
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    # as dinov2/hub/backbones.py _make_dinov2_model builds dinov2_vits14
    hub = vit_small(img_size=518, patch_size=14, init_values=1.0, ffn_layer="mlp",
                    block_chunks=0, num_register_tokens=0, interpolate_antialias=False,
                    interpolate_offset=0.1).eval()
    with torch.no_grad():                          # random LayerScale gammas, not all 1.0
        for name, p in hub.named_parameters():
            if name.endswith(".gamma"):
                p.copy_(0.5 + torch.rand_like(p))
    sd = {k: v.clone() for k, v in hub.state_dict().items()}
    x224 = torch.randn(2, 3, 224, 224)
    x518 = torch.randn(1, 3, 518, 518)
    with torch.no_grad():
        ref224, ref518 = hub(x224), hub(x518)
        pos224 = hub.interpolate_pos_encoding(torch.zeros(1, 257, 384), 224, 224)

    out = {}
    # timm at its native 518 grid, and at 224 with timm's own pos-embed resampling
    for label, kwargs in (("timm img_size=518", {}), ("timm img_size=224", {"img_size": 224}),
                          ("timm dynamic_img_size", {"dynamic_img_size": True})):
        m = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0,
                              **kwargs).eval()
        from timm.models.vision_transformer import checkpoint_filter_fn
        m.load_state_dict(checkpoint_filter_fn(dict(sd), m))
        with torch.no_grad():
            if label == "timm img_size=518":
                out[f"maxdiff hub vs {label} at 518"] = maxdiff(ref518, m(x518))
            else:
                out[f"maxdiff hub vs {label} at 224"] = maxdiff(ref224, m(x224))
            if label == "timm img_size=224":
                m.pos_embed.copy_(pos224)
                out["maxdiff hub vs timm img_size=224 with the hub's interpolated pos_embed"] = \
                    maxdiff(ref224, m(x224))
    # transformers Dinov2Model, weights converted from the hub layout
    cfg = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                       mlp_ratio=4, image_size=518, patch_size=14, layerscale_value=1.0,
                       layer_norm_eps=1e-6)
    hf = Dinov2Model(cfg).eval()
    keys = set(hf.state_dict())
    names = ({"q": "attention.q_proj", "k": "attention.k_proj", "v": "attention.v_proj",
              "o": "attention.o_proj"} if "encoder.layer.0.attention.q_proj.weight" in keys else
             {"q": "attention.attention.query", "k": "attention.attention.key",
              "v": "attention.attention.value", "o": "attention.output.dense"})
    hf.load_state_dict(_hub_to_hf(sd, 12, names), strict=True)
    with torch.no_grad():
        out["maxdiff hub vs transformers Dinov2Model pooler_output at 518"] = \
            maxdiff(ref518, hf(pixel_values=x518).pooler_output)
        out["maxdiff hub vs transformers Dinov2Model pooler_output at 224"] = \
            maxdiff(ref224, hf(pixel_values=x224).pooler_output)
        out["feature scale (max |hub feature| at 224)"] = float(ref224.abs().max())
    sys.path.remove(str(root))
    return out


def _hub_to_hf(sd: dict, layers: int, names: dict) -> dict:
    """The hub checkpoint's keys renamed to transformers' Dinov2Model (``names``: the attention
    submodule names of the installed transformers, which changed between 4.x and 5.x)."""
    new = {"embeddings.cls_token": sd["cls_token"], "embeddings.mask_token": sd["mask_token"],
           "embeddings.position_embeddings": sd["pos_embed"],
           "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
           "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
           "layernorm.weight": sd["norm.weight"], "layernorm.bias": sd["norm.bias"]}
    for i in range(layers):
        b, h = f"blocks.{i}.", f"encoder.layer.{i}."
        qkv_w, qkv_b = sd[b + "attn.qkv.weight"].chunk(3), sd[b + "attn.qkv.bias"].chunk(3)
        for part, w, bias in zip(("q", "k", "v"), qkv_w, qkv_b, strict=True):
            new[h + names[part] + ".weight"], new[h + names[part] + ".bias"] = w, bias
        new[h + names["o"] + ".weight"] = sd[b + "attn.proj.weight"]
        new[h + names["o"] + ".bias"] = sd[b + "attn.proj.bias"]
        for hub_name, hf_name in (("norm1", "norm1"), ("norm2", "norm2"), ("mlp.fc1", "mlp.fc1"),
                                  ("mlp.fc2", "mlp.fc2")):
            for suffix in (".weight", ".bias"):
                new[h + hf_name + suffix] = sd[b + hub_name + suffix]
        new[h + "layer_scale1.lambda1"] = sd[b + "ls1.gamma"]
        new[h + "layer_scale2.lambda1"] = sd[b + "ls2.gamma"]
    return new


def section_resize_conventions(tmp: Path) -> dict:
    """How far the protocols' resize filters are from each other on real 256 px CXRs, in
    gray levels (0-255) after the resize: dgm-eval (PIL bicubic to 224, uint8), torch-fidelity
    (TF1-compatible bilinear, float, no antialiasing), EDM2's fast mode (torch bicubic,
    antialias); for CMMD at 336: cmmd-pytorch (PIL bicubic, uint8 -> float) vs torch-fidelity."""
    from PIL import Image
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x,
    )

    del tmp
    imgs = cxr_images(4, 256)
    x = torch.from_numpy(imgs[:, None].astype(np.float32))
    out = {}
    for size in (224, 336):
        pil = torch.from_numpy(np.stack([np.asarray(Image.fromarray(a).resize(
            (size, size), Image.BICUBIC)) for a in imgs])[:, None].astype(np.float32))
        tf1 = interpolate_bilinear_2d_like_tensorflow1x(x, size=(size, size),
                                                        align_corners=False)
        tb = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic",
                                             antialias=True)
        out[f"{size}: PIL bicubic vs torch-fidelity TF1 bilinear, max / mean gray levels"] = \
            [maxdiff(pil, tf1), float((pil - tf1).abs().mean())]
        out[f"{size}: PIL bicubic vs torch bicubic antialias, max / mean gray levels"] = \
            [maxdiff(pil, tb), float((pil - tb).abs().mean())]
    return out


SECTIONS = {
    "hf_dinov2": section_hf_dinov2, "hf_clip": section_hf_clip, "timm": section_timm,
    "open_clip": section_open_clip, "torchxrayvision": section_xrv,
    "tf_clip": section_tf_clip, "tf_vgg16": section_tf_vgg16,
    "resize_conventions": section_resize_conventions,
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dinov2-git", default=None,
                        help="git directory of facebookresearch/dinov2 (for the hub model)")
    parser.add_argument("--legacy-transformers", default=None,
                        help="PYTHONPATH entry holding transformers 4.50.3 (CheXGenBench's pin)")
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    import importlib.metadata as md
    report = {"environment": {p: md.version(p) for p in (
        "torch", "transformers", "timm", "open_clip_torch", "torchxrayvision",
        "torch-fidelity", "safetensors")}}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        todo = args.only or [*SECTIONS, "processor_backends", "dinov2"]
        for name in todo:
            t0 = time.perf_counter()
            if name == "processor_backends":
                result = section_processor_backends(args.legacy_transformers)
            elif name == "dinov2":
                result = section_dinov2(tmp, args.dinov2_git)
            else:
                result = SECTIONS[name](tmp)
            result["seconds"] = round(time.perf_counter() - t0, 2)
            report[name] = result
            print(name, json.dumps(result, indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
