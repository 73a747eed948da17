"""Encoders users bring (features/encoders/): each source's on-disk format is built here with
tiny random weights, and medsyn's features must equal the library's own load and forward pass
on the same weights and images. Nothing is downloaded. The transformers and torchxrayvision
tests need those packages (medsyn's dev extra installs them)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from medsyn.errors import ConfigError
from medsyn.evaluators.features import get_extractor, list_extractors, parse_extractor_names
from medsyn.evaluators.features.encoders.timm_source import hub_pos_embed
from medsyn.weights import UnsafeWeightsError

pytestmark = pytest.mark.usefixtures("one_thread")


def images(n=3, size=40, channels=1, seed=0) -> torch.Tensor:
    """Smooth uint8 images (resizes of random 8 x 8 grids, so the filters matter)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        chans = [np.asarray(Image.fromarray(rng.integers(0, 256, (8, 8)).astype(np.uint8))
                            .resize((size + 6, size), Image.BICUBIC)) for _ in range(channels)]
        out.append(np.stack(chans))
    return torch.from_numpy(np.stack(out))


def pil_rgb(batch: torch.Tensor) -> list[Image.Image]:
    arr = batch.numpy()
    if arr.shape[1] == 1:
        arr = np.repeat(arr, 3, axis=1)
    return [Image.fromarray(a.transpose(1, 2, 0)) for a in arr]


def assert_same(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5):
    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    assert a.shape == b.shape
    torch.testing.assert_close(a, b, rtol=0, atol=atol)
    assert a.abs().max() > 1e-3          # not all zeros


class _Payload:
    """A pickle that would create a file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ------------------------------------------------------------------ registry and files

def test_sources_are_listed_and_parsed():
    listed = list_extractors()
    for usage in ("timm:<model>[@<weights file>]", "hf:<model folder or repo id>",
                  "rad-dino:<model folder or microsoft/rad-dino>",
                  "open_clip:<model folder>|<model>@<pretrained tag>",
                  "torchxrayvision:<densenet121-res224-*|resnet50-res512-all>"
                  "[@<state dict file>]"):
        assert usage in listed
    assert parse_extractor_names("inception,timm:test_vit@w.pt") == \
        ["inception", "timm:test_vit@w.pt"]
    with pytest.raises(ConfigError, match="names no model"):
        parse_extractor_names("timm:")
    with pytest.raises(ConfigError, match="unknown feature extractor"):
        parse_extractor_names("nosuch:thing")


@pytest.mark.parametrize("name", ["timm:test_vit@{p}", "dinov2:vits14@{p}", "tf:vgg16@{p}",
                                  "tf:clip-vit-l-14-336px@{p}", "tf:dinov2-vit-l-14@{p}",
                                  "torchxrayvision:densenet121-res224-all@{p}", "hf:{d}",
                                  "rad-dino:{d}", "cmmd-clip:{d}"])
def test_missing_file_is_one_line_error_naming_it(tmp_path, name):
    p, d = tmp_path / "absent.safetensors", tmp_path / "absent-folder"
    with pytest.raises(ConfigError) as err:
        get_extractor(name.format(p=p, d=d), device="cpu")
    msg = str(err.value)
    assert "\n" not in msg
    assert str(p if "{p}" in name else d) in msg
    assert "not found" in msg


def test_crafted_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"weight": _Payload(marker)}, evil)
    for name in (f"timm:test_vit@{evil}", f"dinov2:vits14@{evil}", f"tf:vgg16@{evil}",
                 f"tf:clip-vit-b-32@{evil}",
                 f"torchxrayvision:densenet121-res224-all@{evil}"):
        with pytest.raises(UnsafeWeightsError, match="will not unpickle"):
            get_extractor(name, device="cpu")
    assert not marker.exists()


def test_torchscript_archive_is_refused(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(UnsafeWeightsError, match="TorchScript"):
        get_extractor(f"timm:test_vit@{path}", device="cpu")


# ------------------------------------------------------------------ timm

@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
@pytest.mark.parametrize("model", ["test_vit", "test_resnet"])
def test_timm_equals_timm_loader_and_transform(tmp_path, model, fmt):
    import safetensors.torch
    import timm
    from timm.data import create_transform, resolve_data_config

    torch.manual_seed(0)
    full = timm.create_model(model, num_classes=7).eval()
    path = tmp_path / f"{model}.{fmt}"
    if fmt == "safetensors":
        safetensors.torch.save_file(full.state_dict(), str(path))
    else:
        torch.save(full.state_dict(), path)
    ext = get_extractor(f"timm:{model}@{path}", device="cpu")
    batch = images(3, 50, channels=1)
    ours = ext.extract(batch)["features"]

    ref = timm.create_model(model, pretrained=True, num_classes=0,
                            pretrained_cfg_overlay={"file": str(path)}).eval()
    transform = create_transform(**resolve_data_config({}, model=ref))
    with torch.no_grad():
        theirs = ref(torch.stack([transform(im) for im in pil_rgb(batch)]))
    assert ext.feature_dim == ref.num_features == ours.shape[1]
    assert_same(ours, theirs)
    assert ext.weights_sha256 and ext.describe()["weights_path"] == str(path)


def test_timm_weights_flag_and_wrong_weights(tmp_path):
    import safetensors.torch
    import timm

    path = tmp_path / "vit.safetensors"
    safetensors.torch.save_file(timm.create_model("test_vit").state_dict(), str(path))
    ext = get_extractor("timm:test_vit", weights=str(path), device="cpu")
    assert ext.name == "timm:test_vit"
    with pytest.raises(ConfigError, match="do not fit"):
        get_extractor(f"timm:test_resnet@{path}", device="cpu")


# ------------------------------------------------------------------ DINOv2 (dgm-eval)

def _bicubic_weights(t: float, a: float = -0.75) -> np.ndarray:
    """Keys' cubic convolution weights of the 4 taps at offset t (PyTorch's a = -0.75)."""
    def w(x):
        x = abs(x)
        if x <= 1:
            return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
        return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a if x < 2 else 0.0
    return np.array([w(t + 1), w(t), w(1 - t), w(2 - t)])


def _numpy_resample(grid: np.ndarray, out: int, scale: float) -> np.ndarray:
    """Independent bicubic resampling of a [M, M, D] grid to [out, out, D] with the source
    coordinate (i + 0.5) / scale - 0.5 (PyTorch's rule when scale_factor is given), border
    samples clamped."""
    m = grid.shape[0]
    coords = [(i + 0.5) / scale - 0.5 for i in range(out)]
    mat = np.zeros((out, m))
    for i, c in enumerate(coords):
        base = math.floor(c)
        for k, wk in enumerate(_bicubic_weights(c - base)):
            mat[i, min(max(base - 1 + k, 0), m - 1)] += wk
    return np.einsum("ia,jb,abd->ijd", mat, mat, grid)


def test_hub_pos_embed_is_the_hub_interpolation():
    torch.manual_seed(0)
    pos = torch.randn(1, 1 + 37 * 37, 8)
    got = hub_pos_embed(pos, 224)
    assert got.shape == (1, 1 + 16 * 16, 8)
    want = _numpy_resample(pos[0, 1:].reshape(37, 37, 8).double().numpy(), 16, 16.1 / 37)
    np.testing.assert_allclose(got[0, 1:].reshape(16, 16, 8).numpy(), want, atol=2e-5)
    assert torch.equal(got[0, 0], pos[0, 0])
    # the offset matters: the size= interpolation is another grid
    plain = torch.nn.functional.interpolate(pos[:, 1:].reshape(1, 37, 37, 8).permute(0, 3, 1, 2),
                                            size=(16, 16), mode="bicubic")
    assert (plain.permute(0, 2, 3, 1).reshape(1, -1, 8) - got[:, 1:]).abs().max() > 1e-3
    assert hub_pos_embed(pos, 518) is pos


def test_dinov2_equals_dgm_eval_pipeline(tmp_path):
    import timm
    from torchvision import transforms

    kwargs = dict(embed_dim=32, depth=2, num_heads=2)
    torch.manual_seed(0)
    hub_like = timm.create_model("vit_small_patch14_dinov2", num_classes=0, **kwargs).eval()
    state = hub_like.state_dict()           # 518 px grid (37 x 37), as the hub's .pth
    path = tmp_path / "dinov2_tiny_pretrain.pth"
    torch.save(state, path)
    from medsyn.evaluators.features.encoders.timm_source import dinov2_extractor

    ext = dinov2_extractor(f"vits14@{path}", device="cpu", model_kwargs=kwargs)
    batch = images(2, 60, channels=3)
    ours = ext.extract(batch)["features"]

    ref = timm.create_model("vit_small_patch14_dinov2", num_classes=0, img_size=224,
                            **kwargs).eval()
    ref.load_state_dict({**state, "pos_embed": hub_pos_embed(state["pos_embed"], 224)})
    dgm = transforms.Compose([transforms.Resize((224, 224), transforms.InterpolationMode.BICUBIC),
                              transforms.ToTensor(),
                              transforms.Normalize((0.485, 0.456, 0.406),
                                                   (0.229, 0.224, 0.225))])
    with torch.no_grad():
        theirs = ref(torch.stack([dgm(im) for im in pil_rgb(batch)]))
    assert_same(ours, theirs)
    assert ext.conventions["resize"].startswith("PIL bicubic resize to 224x224")


# ------------------------------------------------------------------ transformers (hf:)

def _pil_processor(folder):
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(folder, backend="pil")
    except (TypeError, ValueError):
        return AutoImageProcessor.from_pretrained(folder, use_fast=False)


@pytest.fixture(scope="module")
def dinov2_folder(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("hf") / "tiny-rad-dino"
    torch.manual_seed(0)
    cfg = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    mlp_ratio=2, image_size=28, patch_size=14,
                                    layerscale_value=1.0)
    transformers.Dinov2Model(cfg).eval().save_pretrained(folder)
    # RAD-DINO's preprocessor_config.json, at 28 px instead of 518
    transformers.BitImageProcessor(
        size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28},
        image_mean=[0.5307] * 3, image_std=[0.2583] * 3, resample=3, do_center_crop=True,
        do_convert_rgb=True).save_pretrained(folder)
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# tiny\n")
    return folder


def test_hf_equals_automodel_and_pil_processor(dinov2_folder):
    from transformers import AutoModel

    ext = get_extractor(f"hf:{dinov2_folder}", device="cpu")
    batch = images(3, 40, channels=1)
    ours = ext.extract(batch)["features"]
    model = AutoModel.from_pretrained(dinov2_folder).eval()
    with torch.no_grad():
        inputs = _pil_processor(dinov2_folder)(images=pil_rgb(batch), return_tensors="pt")
        theirs = model(**inputs).pooler_output
    assert_same(ours, theirs)
    assert ext.feature_dim == 32
    assert ext.describe()["licence"] == "mit"


def test_rad_dino_is_chexgenbench_input_chain(dinov2_folder):
    from transformers import AutoModel

    ext = get_extractor(f"rad-dino:{dinov2_folder}", device="cpu")
    batch = images(2, 64, channels=1)
    ours = ext.extract(batch)["features"]
    model = AutoModel.from_pretrained(dinov2_folder).eval()
    # CheXGenBench fid.py: convert("RGB"), Resize((299, 299)) (PIL bilinear), uint8, processor
    pil = [im.resize((299, 299), Image.BILINEAR) for im in pil_rgb(batch)]
    with torch.no_grad():
        inputs = _pil_processor(dinov2_folder)(images=pil, return_tensors="pt")
        theirs = model(**inputs).pooler_output
    assert_same(ours, theirs)
    assert "299x299" in ext.conventions["resize"]


def test_hf_folder_with_only_a_pickle_is_refused(tmp_path, dinov2_folder):
    folder = tmp_path / "bin-only"
    folder.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (folder / name).write_bytes((dinov2_folder / name).read_bytes())
    torch.save({"w": torch.zeros(1)}, folder / "pytorch_model.bin")
    with pytest.raises(ConfigError, match="no .safetensors weights"):
        get_extractor(f"hf:{folder}", device="cpu")


def test_cmmd_clip_equals_cmmd_embedding(tmp_path):
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "tiny-clip"
    torch.manual_seed(0)
    cfg = transformers.CLIPVisionConfig(hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=2,
                                        image_size=28, patch_size=14, projection_dim=16)
    transformers.CLIPVisionModelWithProjection(cfg).eval().save_pretrained(folder)
    ext = get_extractor(f"cmmd-clip:{folder}", device="cpu")
    batch = images(3, 40, channels=1)            # 46 x 40: the centre crop matters
    ours = ext.extract(batch)["features"]

    model = transformers.CLIPVisionModelWithProjection.from_pretrained(folder).eval()
    mean = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
    std = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
    xs = []
    for im in pil_rgb(batch):                    # cmmd io_util._center_crop_and_resize
        w, h = im.size
        side = min(w, h)
        top, left = (h - side) // 2, (w - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((28, 28), Image.BICUBIC)
        xs.append(((np.asarray(im).astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1))
    with torch.no_grad():
        emb = model(pixel_values=torch.from_numpy(np.stack(xs))).image_embeds
    theirs = emb / torch.linalg.norm(emb, dim=-1, keepdim=True)
    assert_same(ours, theirs)
    assert torch.allclose(ours.norm(dim=1), torch.ones(3), atol=1e-6)


# ------------------------------------------------------------------ torchxrayvision

def test_xrv_equals_torchxrayvision_loader(tmp_path):
    xrv = pytest.importorskip("torchxrayvision")
    from torchxrayvision.models import model_urls

    name = "densenet121-res224-all"
    cache = tmp_path / "xrv"
    cache.mkdir()
    torch.manual_seed(0)
    # torchxrayvision's own files are whole pickled modules, read from cache_dir by base name
    fname = os.path.basename(model_urls[name]["weights_url"])
    torch.save(xrv.models.DenseNet(num_classes=18).eval(), cache / fname)
    lib = xrv.models.DenseNet(weights=name, cache_dir=str(cache)).eval()
    with pytest.raises(UnsafeWeightsError):          # the module pickle itself is refused
        get_extractor(f"torchxrayvision:{name}@{cache / fname}", device="cpu")
    state = tmp_path / "densenet.pt"
    torch.save(lib.state_dict(), state)              # the documented one-time conversion
    ext = get_extractor(f"torchxrayvision:{name}@{state}", device="cpu")
    batch = images(2, 230, channels=3)
    ours = ext.extract(batch)["features"]

    crop, resize = xrv.datasets.XRayCenterCrop(), xrv.datasets.XRayResizer(224)
    xs = []
    for img in batch.numpy().transpose(0, 2, 3, 1):   # the README's recipe
        x = xrv.datasets.normalize(img, 255).mean(2)[None, ...]
        xs.append(torch.from_numpy(resize(crop(x))))
    with torch.no_grad():
        theirs = lib.features2(torch.stack(xs))
    assert_same(ours, theirs, atol=1e-4)
    assert ext.feature_dim == 1024


def test_xrv_resnet50_equals_torchxrayvision_loader(tmp_path):
    xrv = pytest.importorskip("torchxrayvision")
    import torchvision
    from torchxrayvision.models import model_urls

    name = "resnet50-res512-all"
    cache = tmp_path / "xrv"
    cache.mkdir()
    net = torchvision.models.resnet50(num_classes=18, weights=None)
    net.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    torch.manual_seed(0)
    # ResNet-50's 23.5 M weights as views of small storages (the file is KBs, not 94 MB); its
    # file is a state dict of torchvision's resnet50 with a one-channel stem, as xrv's
    state = {}
    for k, v in net.state_dict().items():
        if not v.is_floating_point():
            state[k] = v
        elif k.endswith("running_var"):
            state[k] = torch.rand(v.shape) + 0.5
        elif v.ndim > 1:
            state[k] = (torch.randn(v.shape[1:]) / math.sqrt(v[0].numel())).expand(v.shape)
        else:
            state[k] = torch.randn(v.shape) * 0.1
    fname = os.path.basename(model_urls[name]["weights_url"])
    torch.save(state, cache / fname)
    assert (cache / fname).stat().st_size < 3_000_000
    lib = xrv.models.ResNet(weights=name, cache_dir=str(cache)).eval()
    ext = get_extractor(f"torchxrayvision:{name}@{cache / fname}", device="cpu")
    batch = images(2, 520, channels=3)
    ours = ext.extract(batch)["features"]

    crop, resize = xrv.datasets.XRayCenterCrop(), xrv.datasets.XRayResizer(512)
    xs = []
    for img in batch.numpy().transpose(0, 2, 3, 1):   # the README's recipe, at 512
        x = xrv.datasets.normalize(img, 255).mean(2)[None, ...]
        xs.append(torch.from_numpy(resize(crop(x))))
    with torch.no_grad():
        theirs = lib.features(torch.stack(xs))
    assert_same(ours, theirs, atol=1e-4)
    assert ext.feature_dim == 2048 and "512x512" in ext.conventions["resize"]


# ------------------------------------------------------------------ torch-fidelity (tf:)

def test_tf_clip_equals_torch_fidelity(tmp_path):
    from torch_fidelity.feature_extractor_clip import CLIPVisual, FeatureExtractorCLIP

    torch.manual_seed(0)
    visual = CLIPVisual(embed_dim=16, image_resolution=28, vision_layers=2, vision_width=64,
                        vision_patch_size=14)

    class Archive(torch.nn.Module):              # OpenAI's layout: visual.* + text_projection
        def __init__(self):
            super().__init__()
            self.visual = visual.visual
            self.text_projection = torch.nn.Parameter(torch.randn(8, 16))

        def forward(self, x):
            return self.visual(x)

    archive = tmp_path / "clip-tiny.pt"
    with pytest.warns(Warning):
        torch.jit.save(torch.jit.script(Archive().half()), str(archive))
    with pytest.raises(UnsafeWeightsError, match="TorchScript"):
        get_extractor(f"tf:clip-vit-b-32@{archive}", device="cpu")
    state = tmp_path / "clip-tiny.pth"               # the documented one-time conversion
    torch.save(torch.jit.load(str(archive), map_location="cpu").state_dict(), state)
    ext = get_extractor(f"tf:clip-vit-b-32@{state}", device="cpu")
    batch = images(3, 40, channels=1)
    ours = ext.extract(batch)["features"]
    lib = FeatureExtractorCLIP("clip-vit-b-32", ["clip"],
                               feature_extractor_weights_path=str(archive)).eval()
    with torch.no_grad():
        theirs = lib(batch.expand(-1, 3, -1, -1).contiguous())[0]
    assert_same(ours, theirs, atol=0)
    assert ext.feature_dim == 16


def test_tf_vgg16_equals_torch_fidelity(tmp_path):
    import torchvision
    from torch_fidelity.feature_extractor_vgg16 import FeatureExtractorVGG16

    torch.manual_seed(0)
    # VGG16's 138 M weights as views of small storages (each tensor repeats one random slice
    # along its first axis): the file is KBs, not 553 MB, and the network is still VGG16
    state = {k: torch.randn(v.shape[1:] or (1,)).expand(v.shape) if v.ndim > 1 else
             torch.randn(v.shape) * 0.1
             for k, v in torchvision.models.vgg16().state_dict().items()}
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    assert path.stat().st_size < 2_000_000
    ext = get_extractor(f"tf:vgg16@{path}", device="cpu")
    batch = images(2, 40, channels=3)
    ours = ext.extract(batch)["features"]
    lib = FeatureExtractorVGG16("vgg16", ["fc2_relu"], feature_extractor_weights_path=path)
    with torch.no_grad():
        theirs = lib.eval()(batch)[0]
    assert_same(ours, theirs, atol=0)


def test_tf_dinov2_is_torch_fidelity_input_on_hub_dinov2(tmp_path):
    import timm
    import torchvision
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x,
    )

    from medsyn.evaluators.features.encoders.tf import tf_extractor

    kwargs = dict(embed_dim=32, depth=2, num_heads=2)
    torch.manual_seed(1)
    state = timm.create_model("vit_small_patch14_dinov2", num_classes=0, **kwargs).state_dict()
    path = tmp_path / "dinov2_tiny.pth"
    torch.save(state, path)
    ext = tf_extractor(f"dinov2-vit-s-14@{path}", device="cpu", model_kwargs=kwargs)
    batch = images(2, 50, channels=1)
    ours = ext.extract(batch)["features"]
    ref = timm.create_model("vit_small_patch14_dinov2", num_classes=0, img_size=224,
                            **kwargs).eval()
    ref.load_state_dict({**state, "pos_embed": hub_pos_embed(state["pos_embed"], 224)})
    # torch-fidelity's FeatureExtractorDinoV2.forward before self.model(x)
    x = interpolate_bilinear_2d_like_tensorflow1x(
        batch.expand(-1, 3, -1, -1).float(), size=(224, 224), align_corners=False)
    x = torchvision.transforms.functional.normalize(
        x, (255 * 0.485, 255 * 0.456, 255 * 0.406), (255 * 0.229, 255 * 0.224, 255 * 0.225))
    with torch.no_grad():
        theirs = ref(x)
    assert_same(ours, theirs)


def test_tf_unknown_name_and_inception_alias(tmp_path):
    with pytest.raises(ConfigError, match="no extractor of that name"):
        get_extractor(f"tf:clip-vit-h-99@{tmp_path / 'x.pt'}", device="cpu")
    absent = tmp_path / "absent.pth"
    with pytest.raises(ConfigError, match="does not exist") as err:
        get_extractor(f"tf:inception-v3-compat@{absent}", device="cpu")
    assert str(absent) in str(err.value)


# ------------------------------------------------------------------ open_clip

def test_open_clip_equals_open_clip_loader_and_transform(tmp_path):
    open_clip = pytest.importorskip("open_clip")
    import json

    import safetensors.torch

    folder = tmp_path / "open-clip-tiny"
    folder.mkdir()
    model_cfg = {"embed_dim": 16,
                 "vision_cfg": {"image_size": 28, "layers": 2, "width": 32, "head_width": 16,
                                "patch_size": 14},
                 "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2,
                              "layers": 1}}
    (folder / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": model_cfg, "preprocess_cfg": {"size": 28}}))
    torch.manual_seed(0)
    safetensors.torch.save_file(open_clip.CLIP(**model_cfg).state_dict(),
                                str(folder / "open_clip_model.safetensors"))
    ext = get_extractor(f"open_clip:{folder}", device="cpu")
    batch = images(3, 40, channels=1)
    ours = ext.extract(batch)["features"]
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    with torch.no_grad():
        theirs = model.eval().encode_image(torch.stack([preprocess(im) for im in pil_rgb(batch)]))
    assert_same(ours, theirs)
    assert ext.feature_dim == 16


class _Dataset:
    name, split, fingerprint, image_size, channels = "d", "train", "f", (40, 40), 1

    def __len__(self):
        return 3


def test_real_feature_cache_key_follows_the_weights(tmp_path):
    import safetensors.torch
    import timm

    from medsyn.evaluators.features import feature_cache_key

    keys = []
    for seed in (0, 1, 1):
        torch.manual_seed(seed)
        path = tmp_path / f"w{seed}.safetensors"
        safetensors.torch.save_file(timm.create_model("test_vit").state_dict(), str(path))
        ext = get_extractor(f"timm:test_vit@{path}", device="cpu")
        keys.append(feature_cache_key(_Dataset(), ext))
    assert keys[0] != keys[1] and keys[1] == keys[2]


@pytest.mark.real_data
def test_rad_dino_input_equals_pil_processor_on_real_cxrs(data_root):
    """RAD-DINO's preprocessor_config.json values (microsoft/rad-dino) at full size, on real
    chest X-rays: medsyn's CheXGenBench input equals PIL bilinear 299 + transformers' PIL
    processor (the path of CheXGenBench's pinned transformers 4.50.3) exactly."""
    transformers = pytest.importorskip("transformers")
    from medsyn.evaluators.features.encoders.preprocess import Resize, from_preprocessor_config

    cfg = dict(size={"shortest_edge": 518}, crop_size={"height": 518, "width": 518},
               image_mean=[0.5307] * 3, image_std=[0.2583] * 3, resample=3,
               do_center_crop=True, do_convert_rgb=True, rescale_factor=1 / 255)
    try:
        from transformers.models.bit.image_processing_pil_bit import BitImageProcessorPil
        processor = BitImageProcessorPil(**cfg)
    except ImportError:                       # transformers 4.x: the slow class is PIL's
        processor = transformers.BitImageProcessor(**cfg)
    pipeline = from_preprocessor_config(cfg, "test", before=(Resize("bilinear", (299, 299)),))
    files = sorted((data_root / "cxr3" / "test" / "Normal").glob("*.png"))[:3]
    assert files
    for f in files:
        gray = np.asarray(Image.open(f).convert("L"))
        ours = pipeline(torch.from_numpy(gray[None, None]))
        pil = Image.fromarray(gray).convert("RGB").resize((299, 299), Image.BILINEAR)
        theirs = processor(images=[pil], return_tensors="pt").pixel_values
        assert ours.shape == (1, 3, 518, 518)
        assert torch.equal(ours, theirs)
