"""Evaluation of a super-resolution checkpoint (``medsyn evaluate --checkpoint srgan.pt``).

    results = evaluate_sr_checkpoint("runs/srgan-cxr3-x4/last.pt", out_dir="eval/")

On the test split of the dataset the model was trained on, prepared exactly as its training HR
images were (resized to the run's ``--hr-size`` when it had one, else whole images cut to a
multiple of the scale): LR = MATLAB bicubic ``imresize(HR, 1/scale)``; PSNR and SSIM on Y of the
SR output and of the bicubic baseline (:func:`medsyn.evaluators.sr.evaluate_sr`: mean of
per-image values, percentile bootstrap over images, ``crop_border = scale``); FID (and any other
feature metric asked for) of the SR outputs against the HR images, through
:func:`medsyn.evaluators.evaluate`. Writes ``results.json`` (``"kind": "super-resolution"``),
``metrics.csv``, ``per_image_sr.csv`` and ``sr_examples.png`` (LR | bicubic | SR | HR).
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from pathlib import Path

import numpy as np
import torch

from medsyn.errors import CheckpointError, DataError
from medsyn.generators.interface import Task, task_of_kind
from medsyn.settings import ENV_DATA_ROOT

SR_RESULTS_KIND = Task.SUPER_RESOLUTION.results_kind
PER_IMAGE_CSV = "per_image_sr.csv"
EXAMPLES_FIGURE = "sr_examples.png"
SR_BOOTSTRAP = 1000           # resamples of the PSNR/SSIM intervals (cheap: per-image values)
DEFAULT_SR_METRICS = ("fid",)


def is_sr_checkpoint(payload: dict) -> bool:
    """Whether a checkpoint payload's kind declares the super-resolution task."""
    return task_of_kind(payload.get("kind")) is Task.SUPER_RESOLUTION


def load_hr_reference(model, split: str = "test", data_root: str | os.PathLike | None = None):
    """The ``split`` of the model's dataset as HR images, prepared as its training HR images.

    Returns an :class:`medsyn.data.ImageDataset` whose images are the HR references.
    """
    from medsyn.data import load_dataset
    from medsyn.data.dataset import ImageDataset
    from medsyn.generators.sr.data import crop_hr

    meta = model.metadata
    dmeta = meta.get("dataset") or {}
    name = dmeta.get("name")
    if not name:
        raise CheckpointError(f"{model.path}: its metadata names no dataset, so medsyn cannot "
                              "find the HR test images.")
    hr_size = (meta.get("config") or {}).get("hr_size")
    if data_root is None and dmeta.get("root") and Path(dmeta["root"]).is_dir() and \
            not os.environ.get(ENV_DATA_ROOT):
        data_root = dmeta["root"]      # as 'medsyn evaluate': an explicit choice wins
    try:
        ds = load_dataset(name, split, image_size=hr_size, root=data_root)
    except DataError as exc:
        raise DataError(f"cannot evaluate {model.path} on {name}/{split}: "
                        f"{str(exc).splitlines()[0]}") from None
    if ds.channels != model.channels:
        raise DataError(f"{name}/{split} has {ds.channels} channel(s) but {model.path} was "
                        f"trained on {model.channels}.")
    hr = crop_hr(ds.images, model.scale)
    if tuple(hr.shape[2:]) == tuple(ds.images.shape[2:]):
        return ds
    source = {**ds.source, "cropped_to_multiple_of": model.scale}
    return ImageDataset(ds.name, ds.split, hr, ds.labels.clone(), list(ds.class_names), source)


def example_strip(lr: torch.Tensor, bicubic: torch.Tensor, sr: torch.Tensor,
                  hr: torch.Tensor, scale: int) -> torch.Tensor:
    """uint8 ``[4 N, C, H, W]``: per image LR (nearest x scale) | bicubic | SR | HR."""
    nearest = lr.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    return torch.stack([nearest, bicubic, sr, hr], dim=1).flatten(0, 1)


def evaluate_sr_checkpoint(checkpoint: str | os.PathLike, *, device=None, **options) -> dict:
    """Load a super-resolution checkpoint (``srresnet``, ``srgan``) and
    :func:`evaluate_sr_model` it."""
    from medsyn.generators import load_checkpoint, read_checkpoint
    from medsyn.generators.interface import kinds_of_task

    path = Path(checkpoint)
    kind = read_checkpoint(path).get("kind")
    if task_of_kind(kind) is not Task.SUPER_RESOLUTION:
        raise CheckpointError(f"{path} is a {kind!r} checkpoint, not a super-resolution model "
                              f"({', '.join(kinds_of_task(Task.SUPER_RESOLUTION))}).")
    return evaluate_sr_model(load_checkpoint(path, device), **options)


def evaluate_sr_model(model, *, split: str = "test", out_dir: str | os.PathLike | None = None,
                      batch_size: int = 16, metrics=None, extractor="inception",
                      extractor_options: dict | None = None, n_bootstrap: int = 50,
                      n_real: int | None = None, seed: int = 0,
                      data_root: str | os.PathLike | None = None, use_cache: bool = True,
                      n_examples: int = 4, bicubic_fid: bool = True, overwrite: bool = False,
                      **evaluate_options) -> dict:
    """Score a loaded SR checkpoint (:class:`medsyn.generators.sr.checkpoint.SRCheckpoint`) on
    its dataset's ``split``; see the module docstring.

    ``metrics``: feature metric families for the SR outputs (default ``fid``; any of
    :func:`medsyn.evaluators.list_metrics` that needs no training split), with ``n_bootstrap``
    resamples; PSNR/SSIM intervals always use 1000. ``bicubic_fid``: also the FID of the bicubic
    upscalings (``metrics.fid_bicubic``), the baseline of ``metrics.fid``. ``n_real``: a
    class-stratified subset of that many HR images. ``out_dir`` default:
    ``RUN/eval/<checkpoint stem>/``, written as one unit; an existing evaluation there is
    replaced only with ``overwrite``. Other keywords go to :func:`medsyn.evaluators.evaluate`.
    """
    from medsyn.data.subsets import stratified_subset
    from medsyn.evaluators.results import check_output_folder, staged_folder, write_results

    started = time.perf_counter()
    path = Path(model.path)
    dev = model.device
    reference = stratified_subset(load_hr_reference(model, split, data_root), n_real, seed)
    out_dir = Path(out_dir) if out_dir is not None else path.parent / "eval" / path.stem
    check_output_folder(out_dir, overwrite)      # before anything slow
    with staged_folder(out_dir, overwrite) as out:
        results = _evaluate_sr_into(out, model, path, dev, reference, batch_size, metrics,
                                    extractor, extractor_options, n_bootstrap, seed, use_cache,
                                    n_examples, bicubic_fid, started, evaluate_options)
        write_results(results, out)
    return results


def _evaluate_sr_into(out, model, path, dev, reference, batch_size, metrics, extractor,
                      extractor_options, n_bootstrap, seed, use_cache, n_examples, bicubic_fid,
                      started, evaluate_options) -> dict:
    from medsyn.evaluators.results import SCHEMA_VERSION
    from medsyn.evaluators.scoring.evaluate import evaluate, versions
    from medsyn.evaluators.sr.metrics import evaluate_sr, imresize_batch, write_per_image_csv
    from medsyn.generators.sampling.grid import save_grid
    from medsyn.utils import file_digest

    outputs = []

    def upscale(lr):
        sr = model.upscale(lr, batch_size=batch_size)
        outputs.append(sr)
        return sr
    upscale.__name__ = f"{model.kind} generator"

    t0 = time.perf_counter()
    ids = [f"{reference.class_names[int(c)]}/{i}" for i, c in enumerate(reference.labels)]
    sr_result = evaluate_sr(upscale, reference.images, model.scale, n_boot=SR_BOOTSTRAP,
                            seed=seed, batch_size=batch_size, ids=ids)
    sr_images = torch.cat(outputs)
    t_sr = time.perf_counter() - t0
    write_per_image_csv(sr_result["per_image"], out / PER_IMAGE_CSV)

    picks = np.linspace(0, len(reference) - 1, min(n_examples, len(reference))).round()
    picks = sorted({int(i) for i in picks})
    hr_pick = reference.images[picks]
    lr_pick = imresize_batch(hr_pick, 1.0 / model.scale)
    save_grid(out / EXAMPLES_FIGURE,
              example_strip(lr_pick, imresize_batch(lr_pick, model.scale), sr_images[picks],
                            hr_pick, model.scale), rows=len(picks))

    if metrics is None:
        families = list(DEFAULT_SR_METRICS)
    elif isinstance(metrics, str):
        families = [m.strip() for m in metrics.split(",") if m.strip()]
    else:
        families = list(metrics)
    if isinstance(extractor, str):       # built once: the SR and bicubic passes share it
        from medsyn.evaluators.features import get_extractor

        extractor = get_extractor(extractor, device=dev, **(extractor_options or {}))
    common = dict(reference=reference, extractor=extractor,
                  n_bootstrap=n_bootstrap, seed=seed, device=dev, batch_size=batch_size,
                  use_cache=use_cache, **evaluate_options)
    # only figure-making families need a folder; without one, evaluate() writes no
    # (generation-kind) results.json that the SR results would have to replace
    folder = out if "tsne" in families else None
    feature = evaluate(sr_images, reference.labels, metrics=families, figures_dir=folder,
                       **common)
    extra = {}
    if bicubic_fid:
        bicubic = imresize_batch(imresize_batch(reference.images, 1.0 / model.scale),
                                 model.scale)
        extra["fid_bicubic"] = evaluate(torch.as_tensor(bicubic), reference.labels,
                                        metrics=["fid"], **common)["metrics"]["fid"]
        extra["fid_bicubic"]["note"] = ("FID of the MATLAB-bicubic upscalings of the same LR "
                                        "images against the HR images (baseline of fid)")

    meta = model.metadata
    run = {"name": path.parent.name, "checkpoint": str(path), "model_kind": model.kind,
           "epoch": model.epoch, "step": model.step, "run_dir": str(path.parent)}
    prov = dict(feature["provenance"])
    prov.update({
        "checkpoint": str(path), "checkpoint_sha256": file_digest(path),
        "dataset": {"name": reference.name, "split": reference.split,
                    "fingerprint": reference.fingerprint,
                    "image_size": list(reference.image_size),
                    "class_names": list(reference.class_names),
                    "trained_on": {k: (meta.get("dataset") or {}).get(k)
                                   for k in ("name", "split", "fingerprint")}},
        "sr_convention": sr_result["convention"],
        "model": {"kind": model.kind, "scale": model.scale, "channels": model.channels,
                  "phase": model.phase, "epoch": model.epoch, "step": model.step,
                  "hr_size": model.hr_size, "lr_size": model.lr_size,
                  "initialised_from": meta.get("initialised_from")},
        "content_loss": model.content_loss,
        "sr_outputs": f"{model.kind} generator in eval mode on {dev}, fp32, from LR images made "
                      "of the HR images with MATLAB imresize 1/scale",
        "versions": versions(), "device": str(dev), "seed": seed,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })
    prov["timings"] = {**(prov.get("timings") or {}), "sr_psnr_ssim_s": round(t_sr, 3),
                       "total_s": round(time.perf_counter() - started, 3)}
    results = {
        "schema_version": SCHEMA_VERSION, "kind": SR_RESULTS_KIND, "run": run,
        "metrics": {**sr_result["metrics"], **feature["metrics"], **extra},
        "figures": {**feature.get("figures", {}), "sr_examples": EXAMPLES_FIGURE},
        "files": {"per_image_sr": PER_IMAGE_CSV},
        "warnings": list(feature.get("warnings", [])),
        "provenance": prov,
    }
    return results
