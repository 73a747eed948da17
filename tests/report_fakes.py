"""Fabricated, realistic inputs for the report tests: run folders and results.json files written
to the contracts of docs/architecture.md (sections 2 and 3). The numbers are invented test data,
never shown as results of medsyn.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

CXR3_CLASSES = ["COVID", "Normal", "Viral Pneumonia"]


def write_png(path: Path, size=(96, 64), seed: int = 0, gray: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    yy, xx = np.mgrid[0:h, 0:w]
    base = 127 + 60 * np.sin(xx / 7 + seed) * np.cos(yy / 9)
    img = np.clip(base + rng.normal(0, 20, (h, w)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img if gray else np.stack([img] * 3, -1)).save(path)
    return path


def entry(value, half_width, n_fake=2808, n_real=2808, extractor="inception-v3-compat", **extra):
    return {"value": value, "ci95": [value - half_width, value + half_width], "n_real": n_real,
            "n_fake": n_fake, "extractor": extractor, **extra}


def arm(acc, std=0.01, seeds=3, classes=CXR3_CLASSES):
    values = [acc + std * (i - 1) for i in range(seeds)]
    stat = lambda m: {"mean": m, "std": std, "values": [m + std * (i - 1) for i in range(seeds)]}  # noqa: E731
    return {"accuracy": {"mean": acc, "std": std, "values": values},
            "balanced_accuracy": stat(acc - 0.01), "auc_macro": stat(min(acc + 0.1, 0.99)),
            "f1_macro": stat(acc - 0.02),
            "per_class_recall": {c: {"mean": acc, "std": std} for c in classes}}


def generation_results(run_name: str, epoch: int, fid: float, *, run_dir: str | None,
                       dataset: str = "cxr3", image_size: int = 112, classes=CXR3_CLASSES,
                       n: int = 2808, utility: bool = True, figures=("tsne", "memorization"),
                       model_kind: str = "acgan", n_test: int = 603) -> dict:
    per_class = {}
    for i, c in enumerate(classes):
        per_class[c] = entry(fid + 10 + 3 * i, 6.0, n_fake=n // len(classes),
                             n_real=n // len(classes),
                             kid=entry(0.04 + 0.005 * i, 0.006, n_fake=n // len(classes),
                                       n_real=n // len(classes), subset_size=500,
                                       subsets=100),
                             warning=f"{n // len(classes)} images per class < 2048 feature "
                                     "dimensions: FID is biased upwards")
    metrics = {
        "fid": entry(fid, 3.1, n_fake=n, n_real=n),
        "kid": entry(fid / 2500, 0.004, n_fake=n, n_real=n, subset_size=1000, subsets=100,
                     note="subset size 1000"),
        "is": {"value": None, "unavailable": "Inception weights have no classifier layer "
                                             "(non-finite fc weights); IS needs its logits"},
        "intra_fid": {**entry(fid + 13, 5.0, n_fake=n, n_real=n), "per_class": per_class},
        "precision": {**entry(0.62 - fid / 1000, 0.02, n_fake=n, n_real=n), "k": 5},
        "recall": {**entry(0.31 + fid / 2000, 0.03, n_fake=n, n_real=n), "k": 5},
        "density": {**entry(0.78, 0.04, n_fake=n, n_real=n), "k": 5},
        "coverage": {**entry(0.55, 0.02, n_fake=n, n_real=n), "k": 5},
        "real_floor": {"fid_halves": entry(4.12, 0.4, n_fake=n // 2, n_real=n // 2),
                       "kid_halves": entry(0.0002, 0.0003, n_fake=n // 2, n_real=n // 2),
                       "fid_train_vs_test": entry(9.8, 0.9, n_fake=603, n_real=n),
                       "kid_train_vs_test": entry(0.0011, 0.0006, n_fake=603, n_real=n)},
        "memorization": {"fraction": 0.012, "threshold": 11.7, "percentile": 1, "n_fake": n,
                         "n_train": n, "n_heldout": 603, "extractor": "inception-v3-compat"},
        "discriminator": {"acc_real_test": 0.81, "acc_fake": 0.17, "aux_acc_real_test": 0.88},
    }
    if utility:
        metrics["utility"] = {
            "arms": {"trtr": arm(0.91, classes=classes), "tstr": arm(0.61, 0.03, classes=classes),
                     "trtr_s": arm(0.92, classes=classes),
                     "class_fidelity": arm(0.74, 0.02, classes=classes)},
            "gain": {"accuracy": {"mean": 0.01, "std": 0.012, "ci95": [-0.004, 0.024]}},
            "tstr_over_trtr": {"accuracy": {"mean": 0.67, "std": 0.03}},
            "recipe": {"name": "medmnist", "model": "resnet18", "optimizer": "adam",
                       "lr": 0.001, "batch_size": 128, "epochs": 100},
            "seeds": [0, 1, 2], "n": {"real_train": n, "synthetic": n, "test": n_test}}
    return {
        "schema_version": 1, "kind": "generation",
        "run": {"name": run_name, "checkpoint": f"{run_dir}/epoch{epoch:03d}.pt" if run_dir
                else None, "model_kind": model_kind if run_dir else None,
                "epoch": epoch if run_dir else None, "step": epoch * 44 if run_dir else None,
                "run_dir": run_dir},
        "metrics": metrics,
        "figures": {k: f"{k}.png" for k in figures},
        "provenance": {"checkpoint": f"{run_dir}/epoch{epoch:03d}.pt" if run_dir else None,
                       "checkpoint_sha256": "ab" * 32,
                       "dataset": {"name": dataset, "split": "train",
                                   "fingerprint": "f00d" * 16, "image_size": image_size,
                                   "class_names": list(classes)},
                       "reference": {"split": "train", "n": n},
                       "versions": {"medsyn": "0.1.0", "torch": "2.11.0",
                                    "torch_fidelity": "0.4.0", "python": "3.11.7"},
                       "device": "cpu", "seed": 0, "resize": "torch-fidelity TF bilinear 299",
                       "date": "2026-05-01T12:00:00+00:00"},
    }


def write_log(path: Path, epochs: int, steps: int = 12, acgan: bool = True) -> None:
    rows = []
    step = 0
    for epoch in range(1, epochs + 1):
        for _ in range(steps):
            step += 1
            t = step / (epochs * steps)
            row = {"step": step, "epoch": epoch, "loss_d": 1.2 - 0.4 * t + 0.05 * math.sin(step),
                   "loss_g": 0.9 - 0.3 * t + 0.08 * math.cos(step), "d_x": 0.7 + 0.1 * t,
                   "d_g_z1": 0.35 - 0.1 * t, "d_g_z2": 0.3 - 0.1 * t, "images_per_s": 850.0}
            if acgan:
                row.update(aux_acc_real=0.5 + 0.4 * t, aux_acc_fake=0.4 + 0.5 * t,
                           d_acc=0.7, d_acc_real=0.8, d_acc_fake=0.2 - 0.05 * t)
            rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def make_generation_run(root: Path, name: str, fids: dict[int, float], *, dataset="cxr3",
                        image_size=112, classes=CXR3_CLASSES, n=2808, utility=True,
                        n_test=603, model_kind="acgan",
                        figures=("tsne", "memorization")) -> Path:
    """runs/NAME with config, log, sample grids and one evaluation per key of ``fids``."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    epochs = max(fids)
    (run_dir / "config.json").write_text(json.dumps({
        "kind": model_kind, "dataset": dataset, "image_size": image_size, "epochs": epochs,
        "batch_size": 64, "lr": 0.0002, "beta1": 0.5, "seed": 0, "device": "cpu"}, indent=2))
    write_log(run_dir / "log.jsonl", epochs, acgan=model_kind == "acgan")
    for epoch in range(1, epochs + 1):
        write_png(run_dir / "samples" / f"epoch{epoch:03d}.png", (6 * 28, len(classes) * 28),
                  seed=epoch)
    for epoch, fid in fids.items():
        eval_dir = run_dir / "eval" / f"epoch{epoch:03d}"
        eval_dir.mkdir(parents=True)
        data = generation_results(name, epoch, fid, run_dir=f"runs/{name}", dataset=dataset,
                                  image_size=image_size, classes=classes, n=n, utility=utility,
                                  model_kind=model_kind, n_test=n_test, figures=figures)
        (eval_dir / "results.json").write_text(json.dumps(data, indent=2))
        if "tsne" in figures:
            write_png(eval_dir / "tsne.png", (120, 90), seed=epoch + 100, gray=False)
        if "memorization" in figures:
            write_png(eval_dir / "memorization.png", (160, 60), seed=epoch + 200)
    return run_dir


def make_sr_run(root: Path, name: str = "srgan-cxr3", epochs=(2, 4)) -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({
        "kind": "srgan", "dataset": "cxr3", "hr_size": 256, "scale": 4, "epochs": max(epochs)}))
    rows = []
    for step in range(1, 12 * max(epochs) + 1):
        epoch = (step - 1) // 12 + 1
        phase = "mse" if epoch <= max(epochs) // 2 else "adversarial"
        rows.append({"step": step, "epoch": epoch, "loss_content": 0.02 / step ** 0.3,
                     "loss_adv": 0.0 if phase == "mse" else 0.7, "loss_d": 0.0 if phase == "mse"
                     else 1.1, "loss_g": 0.02 / step ** 0.3, "phase": phase})
    (run_dir / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for epoch in range(1, max(epochs) + 1):
        write_png(run_dir / "samples" / f"epoch{epoch:03d}.png", (4 * 64, 64), seed=epoch)
    for i, epoch in enumerate(epochs):
        eval_dir = run_dir / "eval" / f"epoch{epoch:03d}"
        eval_dir.mkdir(parents=True)
        sr = dict(n_fake=603, n_real=603, extractor="none", scale=4, crop_border=4,
                  y_channel=True)
        data = {"schema_version": 1, "kind": "super-resolution",
                "run": {"name": name, "checkpoint": f"runs/{name}/epoch{epoch:03d}.pt",
                        "model_kind": "srgan", "epoch": epoch, "step": epoch * 12,
                        "run_dir": f"runs/{name}"},
                "metrics": {"psnr_y": entry(31.2 + i, 0.3, **sr),
                            "ssim_y": entry(0.861 + 0.01 * i, 0.004, **sr),
                            "psnr_y_bicubic": entry(29.9, 0.3, **sr),
                            "ssim_y_bicubic": entry(0.832, 0.004, **sr),
                            "fid": entry(38.0 - 4 * i, 2.0, n_fake=603, n_real=603)},
                "figures": {"sr_strip": "strip.png"},
                "provenance": {"dataset": {"name": "cxr3", "split": "test",
                                           "fingerprint": "beef" * 16, "image_size": 256}}}
        (eval_dir / "results.json").write_text(json.dumps(data, indent=2))
        write_png(eval_dir / "strip.png", (4 * 64, 64), seed=epoch + 300)
    return run_dir


def _ci(value, lo, hi, **extra):
    return {"value": value, "ci95": [lo, hi], "n": 200, "n_fake": 200, "n_real": 200, **extra}


def translation_results(run_name: str, *, paired: bool, epoch: int = 4) -> dict:
    """A translation results.json with the keys of evaluators/translation (numbers invented,
    of the size docs/translation.md reports). Paired: pix2pix edges -> cxr3; unpaired: a
    CycleGAN whose classifier rate says success while FID and content say failure."""
    y = dict(extractor="y")
    if paired:
        metrics = {
            "mae_y": _ci(25.5, 23.8, 27.1, **y), "psnr_y": _ci(18.7, 18.3, 19.1, **y),
            "ssim_y": _ci(0.669, 0.658, 0.680, **y),
            "mae_y_condition": _ci(133.4, 130.9, 136.2, **y),
            "psnr_y_condition": _ci(4.88, 4.72, 5.04, **y),
            "ssim_y_condition": _ci(0.005, 0.004, 0.007, **y),
            "mae_y_mean_image": _ci(40.2, 38.8, 41.8, **y),
            "psnr_y_mean_image": _ci(14.5, 14.3, 14.8, **y),
            "ssim_y_mean_image": _ci(0.670, 0.660, 0.690, **y),      # tied with the model
            "fid": entry(274.1, 8.0, n_fake=200, n_real=200),
            "fid_condition": entry(393.0, 10.0, n_fake=200, n_real=200),
            "fid_mean_image": entry(343.8, 8.0, n_fake=200, n_real=200),
            "real_floor": {"fid_halves": entry(61.0, 7.0, n_fake=100, n_real=100)},
        }
        info = {"paired": True, "examples": "input | output | target",
                "condition": {"condition": "edges"}}
    else:
        metrics = {
            "fid": entry(241.2, 8.0, n_fake=100, n_real=100),
            "fid_identity": entry(169.9, 11.7, n_fake=100, n_real=100),
            "real_floor": {"fid_halves": entry(76.7, 7.6, n_fake=50, n_real=50)},
            "target_class_rate": {**_ci(0.98, 0.95, 1.0), "target_class": "Viral Pneumonia",
                                  "inputs": _ci(0.0, 0.0, 0.0),
                                  "real_target": _ci(0.97, 0.93, 1.0)},
            "content_ssim_y": _ci(0.461, 0.451, 0.473, **y),
            "content_feature_distance": _ci(17.89, 17.56, 18.23),
            "content_feature_distance_unrelated": _ci(18.17, 17.84, 18.52),
            "cycle_mae_y": _ci(22.1, 21.1, 23.3, **y),
        }
        info = {"paired": False, "examples": "input | output | reconstruction"}
    return {"schema_version": 1, "kind": "translation",
            "run": {"name": run_name, "checkpoint": f"runs/{run_name}/epoch{epoch:03d}.pt",
                    "model_kind": "pix2pix" if paired else "cyclegan", "epoch": epoch,
                    "step": 700, "run_dir": f"runs/{run_name}"},
            "metrics": metrics,
            "figures": {"translation_examples": "translation_examples.png"},
            "provenance": {"dataset": {"name": "cxr3", "split": "test", "image_size": [64, 64],
                                       "fingerprint": "cafe" * 16},
                           "translation": info}}


def make_translation_run(root: Path, name: str, *, paired: bool, epochs: int = 4) -> Path:
    """runs/NAME of a pix2pix (paired) or CycleGAN run: config, log, per-epoch strips of
    3 columns of 64 px cells, one evaluation with its test strip (4 rows)."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    kind = "pix2pix" if paired else "cyclegan"
    (run_dir / "config.json").write_text(json.dumps({
        "kind": kind, "dataset": "cxr3", "image_size": 64, "epochs": epochs, "seed": 0}))
    rows = [{"step": s, "epoch": (s - 1) // 10 + 1, "loss_g": 30.0 / s, "loss_d": 0.6,
             "d_x": 0.6, "d_g_z1": 0.4, "d_g_z2": 0.4} for s in range(1, 10 * epochs + 1)]
    (run_dir / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for epoch in range(1, epochs + 1):
        write_png(run_dir / "samples" / f"epoch{epoch:03d}.png", (3 * 66 + 2, 4 * 66 + 2),
                  seed=epoch)
    eval_dir = run_dir / "eval" / f"epoch{epochs:03d}"
    eval_dir.mkdir(parents=True)
    (eval_dir / "results.json").write_text(json.dumps(translation_results(name, paired=paired,
                                                                          epoch=epochs)))
    write_png(eval_dir / "translation_examples.png", (3 * 66 + 2, 4 * 66 + 2), seed=400)
    return run_dir
