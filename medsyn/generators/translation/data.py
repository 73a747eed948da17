"""The data of translation: pairs (condition -> image) built offline from any dataset, pairs
from a folder of ``A/`` and ``B/`` images, and the two domains of an unpaired task.

Everything stays uint8 ``[N, C, H, W]``; every random choice comes from the seed given, so the
same call gives the same pixels.

    pairs = load_condition_pairs("cxr3", "train", condition="edges", image_size=64)
    pairs = load_folder_pairs("pairs/", "train")
    source = load_domain("cxr3:train:Normal", image_size=64)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medsyn.errors import ConfigError, DataError

PAIRED_INPUT_DIR = "A"
PAIRED_TARGET_DIR = "B"


@dataclass(eq=False)
class TranslationPairs:
    """Row-aligned inputs and targets, uint8 ``[N, C, H, W]`` (channels may differ)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    condition: dict
    dataset: dict = field(default_factory=dict)
    names: list[str] | None = None

    def __len__(self) -> int:
        return int(self.targets.shape[0])


@dataclass(eq=False)
class Domain:
    """One side of an unpaired task: the images of a dataset's split (optionally one class)."""

    images: torch.Tensor
    spec: str
    name: str
    split: str
    class_name: str | None
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])


# ------------------------------------------------------------------ conditions


def canny_edges(images: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """Canny edge maps of uint8 ``[N, C, H, W]`` in pix2pix's convention
    (:func:`medsyn.data.transforms.edges.translation_canny`: luminance, absolute thresholds,
    ``sigma`` px): 255 on an edge, 0 elsewhere, repeated to the images' channels."""
    from medsyn.data.transforms.edges import canny_edges as build_edges
    from medsyn.data.transforms.edges import translation_canny

    edges = torch.from_numpy(build_edges(images, translation_canny(sigma)))
    return edges.repeat(1, images.shape[1], 1, 1)


def lowres_inputs(images: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """MATLAB bicubic ``imresize`` down by ``scale`` and back up: the blurred input of a
    super-resolution-like task at the target's size (and the bicubic baseline itself)."""
    from medsyn.data.transforms.matlab_resize import imresize_batch

    h, w = images.shape[2:]
    if h % scale or w % scale:
        raise ConfigError(f"--lowres-scale {scale} does not divide the image size {h}x{w}; use "
                          "a scale that does, or another --image-size.")
    return imresize_batch(imresize_batch(images, 1.0 / scale), scale)


def noisy_inputs(images: torch.Tensor, std: float = 25.0, seed: int = 0) -> torch.Tensor:
    """The images plus Gaussian noise of ``std`` (0..255 scale), rounded and clipped; the
    noise of image ``i`` depends only on ``seed`` and ``i``."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(tuple(images.shape), dtype=np.float32) * np.float32(std)
    return torch.from_numpy(np.clip(np.rint(images.numpy().astype(np.float32) + noise),
                                    0, 255).astype(np.uint8))


def make_condition(images: torch.Tensor, condition: str, *, canny_sigma: float = 2.0,
                   lowres_scale: int = 4, noise_std: float = 25.0, seed: int = 0
                   ) -> torch.Tensor:
    """The pix2pix input built from each target image (deterministic under ``seed``)."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise ConfigError(f"images must be a uint8 tensor [N, C, H, W], got "
                          f"{getattr(images, 'dtype', type(images).__name__)}.")
    if condition == "edges":
        return canny_edges(images, canny_sigma)
    if condition == "lowres":
        return lowres_inputs(images, lowres_scale)
    if condition == "noise":
        return noisy_inputs(images, noise_std, seed)
    raise ConfigError(f"unknown condition {condition!r}; choose edges, lowres or noise.")


def describe_condition(condition: str, canny_sigma: float, lowres_scale: int,
                       noise_std: float, seed: int) -> dict:
    if condition == "edges":
        how = f"Canny edges (scikit-image, sigma {canny_sigma} px), 0/255"
        return {"condition": condition, "canny_sigma": canny_sigma, "description": how}
    if condition == "lowres":
        how = f"MATLAB bicubic imresize 1/{lowres_scale} then x{lowres_scale}, uint8"
        return {"condition": condition, "lowres_scale": lowres_scale, "description": how}
    how = f"Gaussian noise std {noise_std} (0..255), numpy default_rng({seed}), rounded"
    return {"condition": condition, "noise_std": noise_std, "seed": seed, "description": how}


def load_condition_pairs(name: str, split: str = "train", *, condition: str = "edges",
                         image_size: int | None = None, root=None, canny_sigma: float = 2.0,
                         lowres_scale: int = 4, noise_std: float = 25.0, seed: int = 0
                         ) -> TranslationPairs:
    """(condition, image) pairs from ``medsyn.data.load_dataset(name, split, image_size)``."""
    from medsyn.data import load_dataset

    ds = load_dataset(name, split, image_size=image_size, root=root)
    inputs = make_condition(ds.images, condition, canny_sigma=canny_sigma,
                            lowres_scale=lowres_scale, noise_std=noise_std, seed=seed)
    info = {"name": ds.name, "split": ds.split, "fingerprint": ds.fingerprint,
            "class_names": list(ds.class_names), "image_size": list(ds.image_size),
            "channels": ds.channels}
    return TranslationPairs(inputs, ds.images, ds.labels.clone(), list(ds.class_names),
                            describe_condition(condition, canny_sigma, lowres_scale, noise_std,
                                               seed), info)


# ------------------------------------------------------------------ folders of pairs


def paired_folder_dirs(folder: str | os.PathLike, split: str) -> tuple[Path, Path, str]:
    """``(A, B, split)``: ``FOLDER/SPLIT/{A,B}`` when it exists, else ``FOLDER/{A,B}`` (every
    pair, split ``all``)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"--paired-folder {folder} is not a folder.")
    for base, name in ((folder / split, split), (folder, "all")):
        a, b = base / PAIRED_INPUT_DIR, base / PAIRED_TARGET_DIR
        if a.is_dir() and b.is_dir():
            return a, b, name
    raise DataError(f"--paired-folder {folder} holds neither {split}/A/ + {split}/B/ nor A/ + "
                    "B/; put the inputs in A/ and the targets in B/ under the same file names.")


def _image_files(folder: Path) -> dict[str, Path]:
    from medsyn.data.formats.imageio import is_ignored, unsupported_reason

    return {p.stem: p for p in sorted(folder.iterdir())
            if p.is_file() and not is_ignored(p) and unsupported_reason(p) is None}


def _read(path: Path) -> np.ndarray:
    from medsyn.data.formats.intensity import decode_image

    arr = decode_image(path)
    return np.array(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1), order="C")


def load_folder_pairs(folder: str | os.PathLike, split: str = "train",
                      image_size: int | None = None) -> TranslationPairs:
    """Pairs from ``A/`` (inputs) and ``B/`` (targets) with matching names (extensions may
    differ). A name in one folder only, or a pair whose two images differ in size, is a
    :class:`DataError` naming the files; images of another size than the others need
    ``image_size``."""
    from medsyn.data import fingerprint_arrays
    from medsyn.data.transforms.resize import resize_uint8

    a_dir, b_dir, used_split = paired_folder_dirs(folder, split)
    a_files, b_files = _image_files(a_dir), _image_files(b_dir)
    only_a = sorted(set(a_files) - set(b_files))
    only_b = sorted(set(b_files) - set(a_files))
    if only_a or only_b:
        what = "; ".join(f"{len(names)} only in {d}: {', '.join(names[:3])}"
                         + (" ..." if len(names) > 3 else "")
                         for names, d in ((only_a, a_dir), (only_b, b_dir)) if names)
        raise DataError(f"unmatched pairs in {Path(folder)}: {what}. Every input in A/ needs a "
                        "target of the same name in B/.")
    names = sorted(a_files)
    if not names:
        raise DataError(f"{a_dir} and {b_dir} hold no image files.")
    inputs, targets = [], []
    for name in names:
        a, b = _read(a_files[name]), _read(b_files[name])
        if a.shape[1:] != b.shape[1:]:
            raise DataError(f"{a_files[name]} is {a.shape[1]}x{a.shape[2]} px but "
                            f"{b_files[name]} is {b.shape[1]}x{b.shape[2]}; the two images of a "
                            "pair must have the same size.")
        inputs.append(a)
        targets.append(b)
    stacks = []
    for side, images, files in (("A", inputs, a_files), ("B", targets, b_files)):
        channels = max(x.shape[0] for x in images)
        images = [np.repeat(x, 3, axis=0) if x.shape[0] < channels else x for x in images]
        sizes = {x.shape[1:] for x in images}
        if image_size is None and len(sizes) > 1:
            first = images[0].shape[1:]
            odd = next(n for n, x in zip(names, images, strict=True) if x.shape[1:] != first)
            raise DataError(f"the images of {Path(folder)}/{side} differ in size ("
                            f"{files[names[0]].name} is {first[0]}x{first[1]}, {files[odd].name} "
                            f"is {images[names.index(odd)].shape[1]}x"
                            f"{images[names.index(odd)].shape[2]}); give --image-size to resize "
                            "them all.")
        if image_size is None:
            stacks.append(torch.from_numpy(np.stack(images)))
        else:
            stacks.append(torch.cat([resize_uint8(torch.from_numpy(x[None]), image_size)
                                     for x in images]))
    a_t, b_t = stacks
    labels = torch.zeros(len(names), dtype=torch.int64)
    digest = hashlib.sha256((fingerprint_arrays(a_t, labels) + fingerprint_arrays(b_t, labels)
                             + "\n".join(names)).encode()).hexdigest()
    info = {"name": f"folder:{Path(folder)}", "split": used_split, "fingerprint": digest,
            "class_names": ["pairs"], "image_size": list(b_t.shape[2:]),
            "channels": int(b_t.shape[1]), "input_channels": int(a_t.shape[1])}
    condition = {"condition": "paired-folder",
                 "description": f"images of {a_dir} -> images of {b_dir} with the same name"}
    return TranslationPairs(a_t, b_t, labels, ["pairs"], condition, info, names)


# ------------------------------------------------------------------ unpaired domains


def parse_domain(spec: str, default_split: str = "train") -> tuple[str, str, str | None]:
    """``DATASET[:SPLIT][:CLASS]`` -> ``(dataset, split, class or None)``; ``folder:PATH``
    counts as one dataset name."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"a domain must be DATASET[:SPLIT][:CLASS], got {spec!r}.")
    parts = spec.split(":")
    if parts[0] == "folder":
        if len(parts) < 2 or not parts[1]:
            raise ConfigError(f"domain {spec!r}: folder: needs a path.")
        name, rest = f"folder:{parts[1]}", parts[2:]
    else:
        name, rest = parts[0], parts[1:]
    if len(rest) > 2:
        raise ConfigError(f"domain {spec!r} has too many ':' parts; write "
                          "DATASET[:SPLIT][:CLASS].")
    split = rest[0] if rest and rest[0] else default_split
    class_name = rest[1] if len(rest) > 1 and rest[1] else None
    return name, split, class_name


def load_domain(spec: str, *, split: str | None = None, image_size: int | None = None,
                root=None) -> Domain:
    """The images of a domain (``split`` replaces the spec's split, e.g. ``test`` when
    evaluating a model trained on ``train``)."""
    from medsyn.data import load_dataset

    name, spec_split, class_name = parse_domain(spec)
    use_split = split or spec_split
    ds = load_dataset(name, use_split, image_size=image_size, root=root)
    images = ds.images
    if class_name is not None:
        if class_name not in ds.class_names:
            raise DataError(f"domain {spec!r}: {ds.name} has no class {class_name!r}; its "
                            f"classes are {', '.join(ds.class_names)}.")
        images = images[ds.labels == ds.class_names.index(class_name)]
    if images.shape[0] == 0:
        raise DataError(f"domain {spec!r} holds no image in {ds.name}/{use_split}.")
    selection = f"{ds.name}/{use_split}" + (f"/{class_name}" if class_name else "")
    fingerprint = hashlib.sha256(f"{ds.fingerprint}:{class_name}".encode()).hexdigest()
    info = {"spec": spec, "name": ds.name, "split": use_split, "class": class_name,
            "selection": selection, "dataset_fingerprint": ds.fingerprint,
            "fingerprint": fingerprint, "n": int(images.shape[0]),
            "image_size": list(images.shape[2:]), "channels": int(images.shape[1])}
    return Domain(images.contiguous(), spec, ds.name, use_split, class_name, info)
