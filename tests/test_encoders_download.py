"""Encoder sources with no local file use their library's own download: each library's
download function is replaced here (nothing touches the network), and the test checks that
medsyn calls it with the right name / URL / tag, then loads what it returned, as safely as a
local file, with its sha256 in the provenance. Offline (MEDSYN_OFFLINE=1, which conftest sets
for every test, or HF_HUB_OFFLINE=1) and a failed download are one-line errors that say which
file to place where, or which option to pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_encoders import _Payload, assert_same, images, pil_rgb

from medsyn.errors import ConfigError
from medsyn.evaluators.features import get_extractor
from medsyn.evaluators.features.encoders.files import digest, folder_digest
from medsyn.weights import UnsafeWeightsError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def online(monkeypatch, tmp_path):
    """Downloads allowed; the torch hub cache in tmp_path."""
    monkeypatch.delenv("MEDSYN_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    return Path(torch.hub.get_dir()) / "checkpoints"


def _one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def _refuse_network(*args, **kwargs):
    raise AssertionError(f"a download was attempted offline: {args} {kwargs}")


# ------------------------------------------------------------------ offline

@pytest.mark.parametrize("name, names", [
    ("timm:test_vit", ["timm:test_vit@FILE", "--extractor-weights"]),
    ("dinov2:vits14", ["dinov2_vits14_pretrain.pth", "--extractor-weights"]),
    ("tf:vgg16", ["vgg16-397923af.pth", "tf:vgg16@FILE"]),
    ("tf:dinov2-vit-l-14", ["dinov2_vitl14_pretrain.pth", "tf:dinov2-vit-l-14@FILE"]),
    ("rad-dino:microsoft/rad-dino", ["microsoft/rad-dino", "hf download microsoft/rad-dino"]),
    ("open_clip:ViT-B-32@openai", ["ViT-B-32@openai", "open_clip:FOLDER"]),
])
def test_offline_is_a_one_line_error_naming_file_and_option(monkeypatch, tmp_path, name, names):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _refuse_network)
    with pytest.raises(ConfigError) as err:
        get_extractor(name, device="cpu")
    msg = _one_line(err)
    assert "MEDSYN_OFFLINE" in msg and "nothing is downloaded" in msg
    for text in names:
        assert text in msg, (text, msg)
    if name.startswith(("tf:", "dinov2:")):      # where to place the file: the hub cache
        assert str(tmp_path / "torch-home" / "hub" / "checkpoints") in msg


def test_hf_hub_offline_counts_as_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDSYN_OFFLINE")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _refuse_network)
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE is set"):
        get_extractor("dinov2:vitl14", device="cpu")


def test_offline_uses_a_file_already_in_the_cache(monkeypatch, tmp_path):
    import timm

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    kwargs = dict(embed_dim=32, depth=2, num_heads=2)
    torch.manual_seed(0)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / "dinov2_vits14_pretrain.pth"
    cached.parent.mkdir(parents=True)
    torch.save(timm.create_model("vit_small_patch14_dinov2", num_classes=0, **kwargs)
               .state_dict(), cached)
    monkeypatch.setattr(torch.hub, "download_url_to_file", _refuse_network)
    ext = get_extractor("dinov2:vits14", device="cpu", model_kwargs=kwargs)
    assert ext.weights_path == str(cached) and ext.weights_sha256 == digest(cached)


# ------------------------------------------------------------------ torch hub URLs (tf:, dinov2:)

def _small_vgg16_state():
    import torchvision

    torch.manual_seed(0)
    return {k: torch.randn(v.shape[1:] or (1,)).expand(v.shape) if v.ndim > 1 else
            torch.randn(v.shape) * 0.1
            for k, v in torchvision.models.vgg16().state_dict().items()}


def test_tf_vgg16_downloads_torch_fidelitys_file(online, monkeypatch):
    import torchvision
    from torch_fidelity.feature_extractor_vgg16 import FeatureExtractorVGG16

    calls = []

    def fake_download(url, dst, progress=True):
        calls.append((url, dst))
        torch.save(_small_vgg16_state(), dst)
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    ext = get_extractor("tf:vgg16", device="cpu")
    url = torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
    path = online / "vgg16-397923af.pth"
    assert calls == [(url, str(path))]
    assert ext.weights_path == str(path) and ext.weights_sha256 == digest(path)
    batch = images(2, 40, channels=3)
    lib = FeatureExtractorVGG16("vgg16", ["fc2_relu"], feature_extractor_weights_path=path)
    with torch.no_grad():
        theirs = lib.eval()(batch)[0]
    assert_same(ext.extract(batch)["features"], theirs, atol=0)
    get_extractor("tf:vgg16", device="cpu")          # now in the cache: no second download
    assert len(calls) == 1


def test_dinov2_downloads_the_hub_state_dict(online, monkeypatch):
    import timm

    from medsyn.evaluators.features.encoders.timm_source import DINOV2_URL

    kwargs = dict(embed_dim=32, depth=2, num_heads=2)
    calls = []

    def fake_download(url, dst, progress=True):
        calls.append(url)
        torch.manual_seed(0)
        torch.save(timm.create_model("vit_small_patch14_dinov2", num_classes=0, **kwargs)
                   .state_dict(), dst)
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    ext = get_extractor("tf:dinov2-vit-s-14", device="cpu", model_kwargs=kwargs)
    assert calls == [DINOV2_URL.format(arch="vits14")]
    path = online / "dinov2_vits14_pretrain.pth"
    assert ext.weights_path == str(path) and ext.weights_sha256 == digest(path)
    same = get_extractor(f"tf:dinov2-vit-s-14@{path}", device="cpu", model_kwargs=kwargs)
    batch = images(2, 30, channels=1)
    assert_same(ext.extract(batch)["features"], same.extract(batch)["features"], atol=0)


def test_a_downloaded_pickle_is_refused_like_a_local_one(online, monkeypatch, tmp_path):
    marker = tmp_path / "pwned"
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda url, dst, progress=True: torch.save({"w": _Payload(marker)}, dst))
    with pytest.raises(UnsafeWeightsError, match="will not unpickle"):
        get_extractor("tf:vgg16", device="cpu")
    assert not marker.exists()


def test_failed_download_is_one_line_naming_url_and_place(online, monkeypatch):
    from urllib.error import URLError

    import torchvision

    def no_network(url, dst, progress=True):
        raise URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(ConfigError) as err:
        get_extractor("tf:vgg16", device="cpu")
    msg = _one_line(err)
    url = torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
    place = online / url.rsplit("/", 1)[1]
    assert "download failed (URLError" in msg and url in msg
    assert str(place) in msg and "--extractor-weights" in msg and "MEDSYN_OFFLINE=1" in msg
    assert not place.exists()


@pytest.mark.parametrize("offline", [False, True])
def test_tf_clip_is_refused_before_its_torchscript_download(online, monkeypatch, offline):
    """torch-fidelity's CLIP weights are OpenAI's TorchScript files, which medsyn never runs:
    it says so (with the conversion) without fetching hundreds of MB first."""
    from torch_fidelity.feature_extractor_clip import MODEL_URLS

    if offline:
        monkeypatch.setenv("MEDSYN_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "download_url_to_file", _refuse_network)
    with pytest.raises(ConfigError) as err:
        get_extractor("tf:clip-vit-b-32", device="cpu")
    msg = _one_line(err)
    assert MODEL_URLS["clip-vit-b-32"] in msg and "TorchScript" in msg
    assert "nothing is downloaded" in msg and "tf:clip-vit-b-32@OUT.pth" in msg
    assert "torch.jit.load('IN.pt'" in msg and "--extractor-weights OUT.pth" in msg


# ------------------------------------------------------------------ timm

TEST_VIT_REPO = "timm/test_vit.r160_in1k"      # timm's pretrained_cfg of test_vit


def _fake_hub(monkeypatch, files: dict, calls: list):
    """``huggingface_hub.hf_hub_download`` serving ``files`` (name -> writer(path)) from a
    folder: a name it lacks is the hub's EntryNotFoundError."""
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError

    def fake_download(repo_id, filename, *, revision=None, local_files_only=False, **kwargs):
        calls.append((repo_id, filename, local_files_only))
        if filename not in files:
            raise EntryNotFoundError(f"{filename} is not in {repo_id}")
        path = Path(files["folder"]) / filename
        if not path.exists():
            files[filename](path)
        return str(path)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)


def _test_vit_state(seed=3):
    import timm

    torch.manual_seed(seed)
    return timm.create_model("test_vit", pretrained=False).state_dict()


def test_timm_downloads_timms_file_and_reads_it_itself(online, monkeypatch, tmp_path):
    """No file: timm's pretrained file comes from the hub repo timm names (model.safetensors),
    medsyn reads it and records its sha256; the features equal timm's own pretrained loading
    of that file (classifier included in the file, dropped by both)."""
    import safetensors.torch
    import timm
    from timm.data import create_transform, resolve_data_config

    calls = []
    _fake_hub(monkeypatch, {"folder": tmp_path, "model.safetensors": lambda path:
                            safetensors.torch.save_file(_test_vit_state(), str(path))}, calls)
    ext = get_extractor("timm:test_vit", device="cpu")
    path = tmp_path / "model.safetensors"
    assert calls == [(TEST_VIT_REPO, "model.safetensors", False)]
    assert ext.weights_path == str(path) and ext.weights_sha256 == digest(path)
    theirs = timm.create_model("test_vit", pretrained=True, num_classes=0,
                               pretrained_cfg_overlay={"file": str(path)}).eval()
    batch = images(2, 40, channels=3)
    tf = create_transform(**resolve_data_config({}, model=theirs))
    with torch.no_grad():
        expected = theirs(torch.stack([tf(im) for im in pil_rgb(batch)]))
    assert_same(ext.extract(batch)["features"], expected)


def test_timm_falls_back_to_the_bin_file_read_with_weights_only(online, monkeypatch, tmp_path):
    calls = []
    _fake_hub(monkeypatch, {"folder": tmp_path, "pytorch_model.bin": lambda path:
                            torch.save(_test_vit_state(), path)}, calls)
    ext = get_extractor("timm:test_vit", device="cpu")
    assert [c[1] for c in calls] == ["model.safetensors", "pytorch_model.bin"]
    assert ext.weights_sha256 == digest(tmp_path / "pytorch_model.bin")


def test_a_pickle_from_timms_download_is_refused_unrun(online, monkeypatch, tmp_path):
    marker = tmp_path / "pwned"
    _fake_hub(monkeypatch, {"folder": tmp_path, "pytorch_model.bin": lambda path:
                            torch.save({"w": _Payload(marker)}, path)}, [])
    with pytest.raises(UnsafeWeightsError, match="will not unpickle"):
        get_extractor("timm:test_vit", device="cpu")
    assert not marker.exists()


def test_timm_weights_of_another_model_are_refused(online, monkeypatch, tmp_path):
    import safetensors.torch
    import timm

    wrong = timm.create_model("resnet10t", pretrained=False).state_dict()
    _fake_hub(monkeypatch, {"folder": tmp_path, "model.safetensors": lambda path:
                            safetensors.torch.save_file(wrong, str(path))}, [])
    with pytest.raises(ConfigError, match="do not fit timm's 'test_vit'"):
        get_extractor("timm:test_vit", device="cpu")


def test_timm_url_weights_use_timms_url_download(online, monkeypatch):
    """A model whose pretrained_cfg has a URL and no hub repo: timm's download_cached_file
    into the torch hub cache, then read by medsyn."""
    import timm
    import timm.models._hub

    url = "https://example.org/weights/test_vit-0123abcd.pth"
    cfg = timm.models.get_pretrained_cfg("test_vit")
    monkeypatch.setattr(timm.models, "get_pretrained_cfg", lambda name: type(cfg)(
        **{**cfg.to_dict(), "hf_hub_id": None, "url": url}))
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, dst, hash_prefix))
        torch.save(_test_vit_state(), dst)
    monkeypatch.setattr(timm.models._hub, "download_url_to_file", fake_download)
    ext = get_extractor("timm:test_vit", device="cpu")
    path = online / "test_vit-0123abcd.pth"
    assert calls == [(url, str(path), "0123abcd")]
    assert ext.weights_path == str(path) and ext.weights_sha256 == digest(path)
    monkeypatch.setenv("MEDSYN_OFFLINE", "1")          # offline: the cached file is used
    assert get_extractor("timm:test_vit", device="cpu").weights_sha256 == digest(path)
    path.unlink()
    with pytest.raises(ConfigError) as err:
        get_extractor("timm:test_vit", device="cpu")
    msg = _one_line(err)
    assert f"Place {url} at {path}" in msg and "timm:test_vit@FILE" in msg
    assert len(calls) == 1


def test_timm_tagged_names_use_the_tags_repo_and_bad_tags_are_one_line(online, monkeypatch,
                                                                      tmp_path):
    import safetensors.torch
    import timm

    calls = []
    torch.manual_seed(0)
    state = timm.create_model("resnet10t", pretrained=False).state_dict()
    _fake_hub(monkeypatch, {"folder": tmp_path, "model.safetensors": lambda path:
                            safetensors.torch.save_file(state, str(path))}, calls)
    ext = get_extractor("timm:resnet10t.c3_in1k", device="cpu")
    assert calls == [("timm/resnet10t.c3_in1k", "model.safetensors", False)]
    assert ext.name == "timm:resnet10t.c3_in1k"
    with pytest.raises(ConfigError) as err:
        get_extractor("timm:resnet10t.nosuch", device="cpu")
    assert "no pretrained tag" in _one_line(err) and "resnet10t.c3_in1k" in str(err.value)


def test_timm_offline_reads_the_hub_cache_without_the_network(monkeypatch, tmp_path):
    """MEDSYN_OFFLINE=1 with timm's file already in the Hugging Face cache: it is used
    (``local_files_only=True``); not there, a one-line error naming the repo, the file and
    the cache folder."""
    import huggingface_hub.constants as hub_constants
    import safetensors.torch

    monkeypatch.setenv("MEDSYN_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "download_url_to_file", _refuse_network)
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    repo = cache / "models--timm--test_vit.r160_in1k"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    file = repo / "snapshots" / commit / "model.safetensors"
    safetensors.torch.save_file(_test_vit_state(5), str(file))
    # a request that left the process would reach the transport and fail the test (a mere
    # connection error would be caught by the hub, which then reads its cache)
    import httpx2

    def no_request(self, request):
        raise AssertionError(f"an HTTP request left the process: {request.url}")
    monkeypatch.setattr(httpx2.HTTPTransport, "handle_request", no_request)
    ext = get_extractor("timm:test_vit", device="cpu")
    assert ext.weights_path == str(file) and ext.weights_sha256 == digest(file)
    # not in the cache: the one-line offline error, and still nothing downloaded
    import shutil
    shutil.rmtree(repo)
    with pytest.raises(ConfigError) as err:
        get_extractor("timm:test_vit", device="cpu")
    msg = _one_line(err)
    assert "MEDSYN_OFFLINE is set" in msg and "timm:test_vit@FILE" in msg
    assert f"hf download {TEST_VIT_REPO} model.safetensors" in msg and str(repo) in msg


def test_timm_download_failure_is_one_line(online, monkeypatch):
    import huggingface_hub
    import huggingface_hub.constants as hub_constants
    from huggingface_hub.errors import LocalEntryNotFoundError

    def no_network(repo_id, filename, **kwargs):
        raise LocalEntryNotFoundError("An error happened while trying to locate the file on "
                                      "the Hub and we cannot find the requested files in the "
                                      "local cache.\nPlease check your connection.")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    with pytest.raises(ConfigError) as err:
        get_extractor("timm:test_vit", device="cpu")
    msg = _one_line(err)
    assert "download failed (LocalEntryNotFoundError" in msg and TEST_VIT_REPO in msg
    assert "timm:test_vit@FILE" in msg and "--extractor-weights FILE" in msg
    assert str(Path(hub_constants.HF_HUB_CACHE) / "models--timm--test_vit.r160_in1k") in msg


# ------------------------------------------------------------------ Hugging Face hub (hf:)

def test_hf_repo_id_uses_the_hubs_snapshot(online, monkeypatch, tmp_path):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "snapshot"                # a hub snapshot: save_pretrained's layout
    torch.manual_seed(0)
    cfg = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    mlp_ratio=2, image_size=28, patch_size=14,
                                    layerscale_value=1.0)
    transformers.Dinov2Model(cfg).eval().save_pretrained(folder)
    transformers.BitImageProcessor(
        size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28},
        image_mean=[0.5307] * 3, image_std=[0.2583] * 3, resample=3).save_pretrained(folder)
    calls = []

    def fake_snapshot(repo_id, allow_patterns=None, local_files_only=False, **kwargs):
        calls.append((repo_id, tuple(allow_patterns), local_files_only))
        return str(folder)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    ext = get_extractor("rad-dino:owner/tiny-rad-dino", device="cpu")
    assert calls[0][0] == "owner/tiny-rad-dino" and calls[0][2] is False
    assert "*.safetensors" in calls[0][1] and not any(".bin" in p for p in calls[0][1])
    assert ext.name == "rad-dino:owner/tiny-rad-dino"
    assert ext.weights_sha256 == folder_digest(folder)
    local = get_extractor(f"rad-dino:{folder}", device="cpu")
    batch = images(2, 40)
    assert_same(ext.extract(batch)["features"], local.extract(batch)["features"], atol=0)
    # offline: only the hub's cache is asked (local_files_only=True), never the network
    monkeypatch.setenv("MEDSYN_OFFLINE", "1")
    get_extractor("hf:owner/tiny-rad-dino", device="cpu")
    assert calls[-1] == ("owner/tiny-rad-dino", calls[0][1], True)

    def not_cached(repo_id, allow_patterns=None, local_files_only=False, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("not in the cache")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", not_cached)
    with pytest.raises(ConfigError) as err:
        get_extractor("hf:owner/tiny-rad-dino", device="cpu")
    msg = _one_line(err)
    assert "MEDSYN_OFFLINE is set" in msg and "hf download owner/tiny-rad-dino" in msg


def test_a_hub_snapshot_with_only_a_pickle_is_refused_unrun(online, monkeypatch, tmp_path):
    """Were a snapshot to hold a pytorch_model.bin and no safetensors (medsyn never asks the
    hub for .bin files), the pickle is refused without being opened."""
    huggingface_hub = pytest.importorskip("huggingface_hub")
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "snapshot"
    transformers.Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=28, patch_size=14).save_pretrained(folder)
    marker = tmp_path / "pwned"
    torch.save({"w": _Payload(marker)}, folder / "pytorch_model.bin")
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo_id, **kwargs: str(folder))
    with pytest.raises(ConfigError) as err:
        get_extractor("hf:owner/pickled", device="cpu")
    msg = _one_line(err)
    assert "no .safetensors weights" in msg and "pytorch_model.bin" in msg
    assert not marker.exists()


def test_hf_failed_download_is_one_line_naming_repo_and_place(online, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    import huggingface_hub.constants as hub_constants

    def no_network(repo_id, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError(
            "An error happened while trying to locate the files on the Hub.\nCheck your "
            "connection.")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    with pytest.raises(ConfigError) as err:
        get_extractor("rad-dino:microsoft/rad-dino", device="cpu")
    msg = _one_line(err)
    assert "download failed (LocalEntryNotFoundError" in msg
    assert "hf download microsoft/rad-dino --local-dir FOLDER" in msg
    assert str(Path(hub_constants.HF_HUB_CACHE) / "models--microsoft--rad-dino") in msg


# ------------------------------------------------------------------ open_clip

TINY_CLIP = {"embed_dim": 16,
             "vision_cfg": {"image_size": 28, "layers": 2, "width": 32, "head_width": 16,
                            "patch_size": 14},
             "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2,
                          "layers": 1}}


@pytest.fixture
def tiny_open_clip_tag(monkeypatch):
    """open_clip's registries gain a tiny model "tiny-clip" with a pretrained tag "t" whose
    weights live in the hub repo owner/tiny-clip (as its real tags do)."""
    open_clip = pytest.importorskip("open_clip")
    factory = pytest.importorskip("open_clip.factory")
    monkeypatch.setitem(factory._MODEL_CONFIGS, "tiny-clip", TINY_CLIP)
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "tiny-clip", {"t": {
        "hf_hub": "owner/tiny-clip/", "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25),
        "interpolation": "bicubic", "resize_mode": "shortest"}})
    return open_clip


def _serve_open_clip(monkeypatch, open_clip, folder: Path, files: dict, calls: list):
    """open_clip's ``hf_hub_download`` (a partial of the hub's) serving ``files``."""
    def fake_download(repo_id, filename, revision=None, cache_dir=None, **kwargs):
        calls.append((repo_id, filename))
        if filename not in files:
            raise FileNotFoundError(f"{filename} is not in {repo_id}")
        path = folder / filename
        if not path.exists():
            files[filename](path)
        return str(path)
    monkeypatch.setattr(open_clip.pretrained, "hf_hub_download", fake_download)


def test_open_clip_downloads_its_file_and_loads_it(online, monkeypatch, tmp_path,
                                                   tiny_open_clip_tag):
    """open_clip:<model>@<tag>: open_clip's own download of the tag's file, read by medsyn
    first (its sha256 in provenance), then open_clip's loading of the same file from its
    cache; the features equal open_clip's own model and transform on that file."""
    import safetensors.torch

    open_clip = tiny_open_clip_tag
    torch.manual_seed(0)
    state = open_clip.CLIP(**TINY_CLIP).state_dict()
    calls = []
    _serve_open_clip(monkeypatch, open_clip, tmp_path, {
        "open_clip_model.safetensors": lambda p: safetensors.torch.save_file(state, str(p))},
        calls)
    ext = get_extractor("open_clip:tiny-clip@t", device="cpu")
    path = tmp_path / "open_clip_model.safetensors"
    assert calls[0] == ("owner/tiny-clip", "open_clip_model.safetensors")
    assert ext.weights_path == str(path) and ext.weights_sha256 == digest(path)
    assert ext.name == "open_clip:tiny-clip@t"
    theirs, _, preprocess = open_clip.create_model_and_transforms(
        "tiny-clip", pretrained=str(path), image_mean=(0.5,) * 3, image_std=(0.25,) * 3)
    batch = images(2, 40)
    with torch.no_grad():
        expected = theirs.eval().encode_image(torch.stack([preprocess(im)
                                                           for im in pil_rgb(batch)]))
    assert_same(ext.extract(batch)["features"], expected)
    # offline, the file in open_clip's cache is used
    monkeypatch.setenv("MEDSYN_OFFLINE", "1")
    assert get_extractor("open_clip:tiny-clip@t", device="cpu").weights_sha256 == digest(path)


def test_a_pickle_from_open_clips_download_is_refused_unrun(online, monkeypatch, tmp_path,
                                                            tiny_open_clip_tag):
    marker = tmp_path / "pwned"
    _serve_open_clip(monkeypatch, tiny_open_clip_tag, tmp_path, {
        "open_clip_pytorch_model.bin": lambda p: torch.save({"w": _Payload(marker)}, p)}, [])
    with pytest.raises(UnsafeWeightsError, match="will not unpickle"):
        get_extractor("open_clip:tiny-clip@t", device="cpu")
    assert not marker.exists()


def test_open_clip_offline_or_failed_download_is_one_line(online, monkeypatch, tmp_path,
                                                          tiny_open_clip_tag):
    import huggingface_hub.constants as hub_constants

    def no_network(repo_id, filename, **kwargs):
        raise OSError("Failed to establish a new connection")
    monkeypatch.setattr(tiny_open_clip_tag.pretrained, "hf_hub_download", no_network)
    place = str(Path(hub_constants.HF_HUB_CACHE) / "models--owner--tiny-clip")
    with pytest.raises(ConfigError) as err:
        get_extractor("open_clip:tiny-clip@t", device="cpu")
    msg = _one_line(err)
    assert "download failed" in msg and "owner/tiny-clip" in msg and place in msg
    assert "open_clip_model.safetensors" in msg and "open_clip:FOLDER" in msg
    monkeypatch.setenv("MEDSYN_OFFLINE", "1")
    with pytest.raises(ConfigError) as err:
        get_extractor("open_clip:tiny-clip@t", device="cpu")
    msg = _one_line(err)
    assert "MEDSYN_OFFLINE is set" in msg and "hf download owner/tiny-clip" in msg
    assert place in msg


def test_open_clip_unknown_tag_lists_its_tags():
    pytest.importorskip("open_clip")
    with pytest.raises(ConfigError, match="no pretrained weights 'nosuch'.*its tags:"):
        get_extractor("open_clip:ViT-B-32@nosuch", device="cpu")


# ------------------------------------------------------------------ torchxrayvision

def test_xrv_uses_its_own_download_and_cache(online, monkeypatch, tmp_path):
    xrv = pytest.importorskip("torchxrayvision")

    name = "densenet121-res224-all"
    cache = tmp_path / "xrv-cache"
    monkeypatch.setattr(xrv.utils, "get_cache_dir", lambda: str(cache) + "/")
    url = xrv.models.model_urls[name]["weights_url"]
    calls = []

    def fake_get_weights(weights, cache_dir=None):
        calls.append(weights)
        cache.mkdir(exist_ok=True)
        torch.save(xrv.models.DenseNet(num_classes=18).eval(), cache / url.rsplit("/", 1)[1])
        return str(cache / url.rsplit("/", 1)[1])
    monkeypatch.setattr(xrv.models, "get_weights", fake_get_weights)
    # its DenseNet files are pickled modules: refused before any download, with the conversion
    with pytest.raises(ConfigError) as err:
        get_extractor(f"torchxrayvision:{name}", device="cpu")
    msg = _one_line(err)
    assert calls == [] and url in msg and "pickled module" in msg and "state_dict()" in msg
    assert "nothing is downloaded" in msg
    # one already in its cache (fetched by torchxrayvision itself) is refused without unpickling
    fake_get_weights(name)
    with pytest.raises(UnsafeWeightsError, match="will not unpickle") as err:
        get_extractor(f"torchxrayvision:{name}", device="cpu")
    assert calls == [name] and "state_dict()" in str(err.value)
    # a state dict placed where its download puts the file is used without downloading
    torch.manual_seed(0)
    torch.save(xrv.models.DenseNet(num_classes=18).state_dict(), cache / url.rsplit("/", 1)[1])
    ext = get_extractor(f"torchxrayvision:{name}", device="cpu")
    assert calls == [name] and ext.weights_path == str(cache / url.rsplit("/", 1)[1])

    def no_network(weights, cache_dir=None):
        raise OSError("Failed to establish a new connection")
    monkeypatch.setattr(xrv.models, "get_weights", no_network)
    (cache / url.rsplit("/", 1)[1]).unlink()
    with pytest.raises(ConfigError) as err:
        get_extractor("torchxrayvision:resnet50-res512-all", device="cpu")
    msg = _one_line(err)
    resnet_url = xrv.models.model_urls["resnet50-res512-all"]["weights_url"]
    assert "download failed (OSError" in msg and resnet_url in msg
    assert str(cache / resnet_url.rsplit("/", 1)[1]) in msg and "--extractor-weights" in msg


def test_an_open_clip_that_could_unpickle_is_refused_before_download(online, monkeypatch):
    """open_clip without ``weights_only`` (it would pass it on to the model) is a one-line
    error before anything is fetched."""
    open_clip = pytest.importorskip("open_clip")

    monkeypatch.setattr(torch.hub, "download_url_to_file", _refuse_network)

    def old_create(name, pretrained=None, **model_kwargs):
        raise AssertionError("the old loader was called")
    monkeypatch.setattr(open_clip, "create_model_and_transforms", old_create)
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", _refuse_network)
    with pytest.raises(ConfigError) as err:
        get_extractor("open_clip:ViT-B-32@openai", device="cpu")
    msg = _one_line(err)
    assert "no weights_only" in msg and "pip install -U open_clip_torch" in msg
