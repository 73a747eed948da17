"""Downstream utility: does synthetic data help a diagnostic classifier?

    from medsyn.evaluators import evaluate_utility
    block = evaluate_utility(fake_images, fake_labels, train=ds_train, val=ds_val, test=ds_test,
                             recipe="quick", seeds=(0, 1, 2), ratio=1.0)
    # -> results.json's metrics.utility (docs/architecture.md section 3)

Arms, every one scored on the REAL test split, each repeated over ``seeds``:

- ``trtr``: trained on the real training split (cached across evaluations, see
  :func:`medsyn.evaluators.networks.classifier.real_classifier`);
- ``tstr``: trained on synthetic images only, as many per class as the real training split;
- ``trtr_s``: real training split plus ``ratio`` x as many synthetic images per class;
- ``class_fidelity``: the TRTR classifier of each seed on the labelled synthetic TSTR set
  (scored against the labels the images were generated for).

Every arm selects its epoch on the REAL validation split. Synthetic images come first from the
evaluated set (per class, in a seeded order) and, when a ``sampler`` is given (a checkpoint),
are topped up from it; a fixed folder with too few images of a class is used whole, and the
counts actually used are reported.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from medsyn.data.dataset import class_indices
from medsyn.data.subsets import (  # noqa: F401 (split_validation: public name here)
    VAL_FRACTION_WHEN_MISSING,
    split_validation,
    take_per_class,
)
from medsyn.errors import DataError
from medsyn.evaluators.networks.classifier import (
    classification_scores,
    get_recipe,
    predict_proba,
    real_classifier,
    train_classifier,
)

log = logging.getLogger(__name__)

ARMS = ("trtr", "tstr", "trtr_s", "class_fidelity")
ARM_NAMES = {"trtr": "TRTR", "tstr": "TSTR", "trtr_s": "TRTR+S", "class_fidelity": "fidelity"}
STATS = ("accuracy", "balanced_accuracy", "auc_macro", "f1_macro")
PROTOCOL = ("Each arm trains the recipe's classifier from scratch (seeded), selects its epoch on "
            "the real validation split and is scored on the real test split; class fidelity "
            "scores the real-trained (TRTR) classifier on the synthetic images against their "
            "generated labels.")


def _summary(values: Sequence[float | None]) -> dict:
    """mean, std (ddof 1) and a 95 % t-interval over seeds; None entries are left out.

    With one seed the spread is unknown, not zero: std is None then."""
    aligned = [None if v is None or not math.isfinite(v) else float(v) for v in values]
    vals = [v for v in aligned if v is not None]
    if not vals:
        return {"mean": None, "std": None, "values": aligned,
                "unavailable": "not defined for any seed"}
    mean = float(np.mean(vals))
    std = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
    # values stay aligned with the seeds (None where undefined for that seed)
    out = {"mean": mean, "std": std, "values": aligned, "n_seeds": len(vals)}
    if len(vals) > 1:
        from scipy import stats as sstats

        half = float(sstats.t.ppf(0.975, len(vals) - 1)) * std / math.sqrt(len(vals))
        out["ci95"] = [mean - half, mean + half]
        out["ci_method"] = f"95% t-interval over {len(vals)} seeds"
    return out


def _arm_summary(per_seed: list[dict], class_names: Sequence[str]) -> dict:
    out = {s: _summary([r.get(s) for r in per_seed]) for s in STATS}
    for s in ("accuracy", "balanced_accuracy", "auc_macro", "f1_macro"):
        if "ci95" in out[s]:   # these cannot leave [0, 1] however few the seeds
            out[s]["ci95"] = [max(0.0, out[s]["ci95"][0]), min(1.0, out[s]["ci95"][1])]
    reasons = {r.get("auc_macro_unavailable") for r in per_seed} - {None}
    if reasons:
        out["auc_macro"]["note"] = "; ".join(sorted(reasons))
    out["per_class_recall"] = {c: _summary([r["per_class_recall"].get(c) for r in per_seed])
                               for c in class_names}
    out["n_eval"] = per_seed[0]["n"] if per_seed else None
    out["per_seed"] = per_seed
    return out


def _paired(per_seed_a: list[dict], per_seed_b: list[dict], op: Callable) -> dict:
    out = {}
    for s in STATS:
        vals = []
        for a, b in zip(per_seed_a, per_seed_b, strict=True):
            va, vb = a.get(s), b.get(s)
            vals.append(None if va is None or vb is None else op(va, vb))
        out[s] = _summary(vals)
    return out


# ---------------------------------------------------------------- synthetic sets


def _check_same_domain(images: torch.Tensor, ref, what: str):
    if tuple(images.shape[1:]) != (ref.channels, *ref.image_size):
        raise DataError(f"{what}: images are {tuple(images.shape[1:])} (C, H, W) but the real "
                        f"{ref.name}/{ref.split} images are "
                        f"{(ref.channels, *ref.image_size)}; resize or convert them first.")


def synthetic_sets(images: torch.Tensor | None, labels: np.ndarray | None,
                   train_counts: np.ndarray, ratio: float, seed: int,
                   sampler: Callable[[np.ndarray, int], torch.Tensor] | None = None,
                   batch_note: list | None = None) -> dict:
    """The TSTR set (``train_counts`` per class) and the TRTR+S addition (``ratio`` x
    ``train_counts``), drawn from the given images first and then from ``sampler``.

    Returns ``{"tstr": (images, labels), "extra": (images, labels), "counts": {...},
    "notes": [...]}``; the TRTR+S addition contains the TSTR images (plus more when
    ``ratio`` > 1).
    """
    k = len(train_counts)
    need_tstr = np.asarray(train_counts, dtype=np.int64)
    need_extra = np.rint(need_tstr * ratio).astype(np.int64)
    need = np.maximum(need_tstr, need_extra)
    notes = []
    rng = np.random.default_rng([seed, 7331])
    pool_imgs, pool_labels = [], []
    if images is not None and labels is not None and len(images):
        for c, idx in enumerate(take_per_class(labels, need, rng)):
            pool_imgs.append(images[torch.as_tensor(idx, dtype=torch.long)])
            pool_labels.append(np.full(len(idx), c, dtype=np.int64))
    else:
        pool_imgs = [None] * k
        pool_labels = [np.zeros(0, dtype=np.int64) for _ in range(k)]
    have = np.array([len(p) for p in pool_labels])
    short = need - have
    if sampler is not None and short.sum() > 0:
        extra_labels = np.repeat(np.arange(k), np.maximum(short, 0))
        drawn = sampler(extra_labels, seed + 1)
        for c in range(k):
            add = drawn[torch.as_tensor(np.flatnonzero(extra_labels == c), dtype=torch.long)]
            pool_imgs[c] = add if pool_imgs[c] is None else torch.cat([pool_imgs[c], add])
            pool_labels[c] = np.concatenate([pool_labels[c], np.full(len(add), c, np.int64)])
        notes.append(f"{int(short.clip(0).sum())} synthetic images sampled from the generator "
                     "in addition to the evaluated ones")
    have = np.array([len(p) for p in pool_labels])
    for c in range(k):
        if have[c] < need[c]:
            notes.append(f"class {c}: {have[c]} synthetic images available, fewer than the "
                         f"{need[c]} the protocol asks for; all {have[c]} are used")

    def gather(counts):
        imgs, labs = [], []
        for c in range(k):
            m = int(min(counts[c], have[c]))
            if m:
                imgs.append(pool_imgs[c][:m])
                labs.append(pool_labels[c][:m])
        if not imgs:
            return None, np.zeros(0, np.int64)
        return torch.cat(imgs), np.concatenate(labs)

    tstr = gather(need_tstr)
    extra = gather(need_extra)
    return {"tstr": tstr, "extra": extra, "notes": notes,
            "counts": {"tstr": [int(min(need_tstr[c], have[c])) for c in range(k)],
                       "extra": [int(min(need_extra[c], have[c])) for c in range(k)]}}


# ---------------------------------------------------------------- the protocol


def evaluate_utility(fake_images: torch.Tensor | None, fake_labels, *, train, test, val=None,
                     recipe=None, seeds: Sequence[int] = (0, 1, 2), ratio: float = 1.0,
                     device=None, sampler: Callable[[np.ndarray, int], torch.Tensor] | None = None,
                     use_cache: bool = True, sample_seed: int = 0,
                     arms: Sequence[str] = ARMS) -> dict:
    """The ``metrics.utility`` block for labelled synthetic images (see the module docstring).

    ``fake_labels``: class indices into ``train.class_names``. ``sampler(labels, seed)``
    returns uint8 images of the given classes (a conditional generator) to top up classes
    with too few synthetic images. ``val`` None: a stratified 10 % of ``train`` is held out.
    """
    from medsyn.device import resolve_device

    recipe = get_recipe(recipe)
    dev = resolve_device(device)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise DataError("the utility protocol needs at least one seed.")
    if len(set(seeds)) != len(seeds):
        raise DataError(f"utility seeds must differ, got {seeds}.")
    if not (isinstance(ratio, (int, float)) and ratio > 0):
        raise DataError(f"the synthetic:real ratio of TRTR+S must be > 0, got {ratio!r}.")
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise DataError(f"unknown utility arm(s) {unknown}; choose from {', '.join(ARMS)}.")
    notes = []
    for ds, what in ((test, "test"), (val, "validation")):
        if ds is None:
            continue
        if list(ds.class_names) != list(train.class_names):
            raise DataError(f"the {what} split's classes {ds.class_names} differ from the "
                            f"training split's {train.class_names}.")
        _check_same_domain(ds.images, train, f"the {what} split {ds.name}/{ds.split}")
    splits = {"train": train, "test": test} | ({"validation": val} if val is not None else {})
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if splits[a].fingerprint == splits[b].fingerprint:
                raise DataError(f"the {a} and {b} splits are the same images; the protocol "
                                "needs disjoint train, validation and test splits (the test "
                                "split must never select or train a model).")
    if val is None:
        train, val = split_validation(train)
        notes.append(f"{train.name} has no validation split: a stratified "
                     f"{VAL_FRACTION_WHEN_MISSING:.0%} of the training split ({len(val)} images) "
                     "is held out for model selection and the rest trains the real arms")
    class_names = list(train.class_names)
    k = len(class_names)
    if fake_images is not None:
        _check_same_domain(fake_images, train, "synthetic images")
    labels = None
    if fake_labels is not None:
        labels = class_indices(fake_labels, class_names, "synthetic labels")
        if fake_images is None or len(labels) != len(fake_images):
            raise DataError(f"{0 if fake_images is None else len(fake_images)} synthetic "
                            f"images but {len(labels)} labels; give one label per image.")
    if labels is None and sampler is None:
        return {"value": None, "unavailable":
                "the synthetic images carry no class labels (use one sub-folder per class, "
                "labels in the npz, or a conditional checkpoint); TSTR needs them"}
    train_counts = np.bincount(train.labels.numpy(), minlength=k)
    synth = synthetic_sets(fake_images, labels, train_counts, ratio, sample_seed, sampler)
    notes += synth["notes"]
    tstr_images, tstr_labels = synth["tstr"]
    extra_images, extra_labels = synth["extra"]
    if tstr_images is None or len(tstr_labels) < 2:
        return {"value": None, "unavailable": "fewer than 2 labelled synthetic images"}
    _check_same_domain(tstr_images, train, "synthetic images")
    test_labels = test.labels.numpy()

    def score(clf, images, labels_):
        probs = predict_proba(clf.model, images, device=dev, recipe=recipe)
        return classification_scores(probs, labels_, class_names)

    mixed = (train.images, train.labels.numpy()) if extra_images is None else (
        torch.cat([train.images, extra_images]),
        np.concatenate([train.labels.numpy(), extra_labels]))
    arm_data = {"tstr": (tstr_images, tstr_labels), "trtr_s": mixed}
    started = time.perf_counter()
    per_seed = {a: [] for a in ARMS}
    classifiers = []
    for seed in seeds:
        if "trtr" in arms or "class_fidelity" in arms:
            clf = real_classifier(train, val, recipe, seed, dev, use_cache,
                                  desc=f"TRTR seed {seed}")
            classifiers.append(clf.describe() | {"arm": "trtr"})
            if "trtr" in arms:
                per_seed["trtr"].append(score(clf, test.images, test_labels))
            if "class_fidelity" in arms:
                per_seed["class_fidelity"].append(score(clf, tstr_images, tstr_labels))
        for arm, (images, labels_) in arm_data.items():
            if arm not in arms:
                continue
            clf = train_classifier(images, labels_, val.images, val.labels, k, recipe, seed,
                                   dev, class_names, desc=f"{ARM_NAMES[arm]} seed {seed}")
            classifiers.append(clf.describe() | {"arm": arm})
            per_seed[arm].append(score(clf, test.images, test_labels))

    block: dict = {"arms": {a: _arm_summary(per_seed[a], class_names)
                            for a in ARMS if per_seed[a]}}
    if per_seed["trtr"] and per_seed["trtr_s"]:
        gain = _paired(per_seed["trtr_s"], per_seed["trtr"], lambda a, b: a - b)
        block["gain"] = gain
    if per_seed["trtr"] and per_seed["tstr"]:
        block["tstr_over_trtr"] = _paired(per_seed["tstr"], per_seed["trtr"],
                                          lambda a, b: a / b if b else None)
    majority = float(np.bincount(test_labels, minlength=k).max() / len(test_labels))
    block.update({
        "reference_rates": {"majority_class_accuracy": majority,
                            "chance_balanced_accuracy": 1.0 / len(np.unique(test_labels)),
                            "chance_auc": 0.5},
        "recipe": recipe.describe(),
        "seeds": seeds,
        "ratio": float(ratio),
        "protocol": PROTOCOL,
        "n": {"real_train": len(train), "real_val": len(val), "test": len(test),
              "synthetic": int(len(tstr_labels)),
              "synthetic_added": 0 if extra_images is None else int(len(extra_labels))},
        "n_per_class": {
            "real_train": dict(zip(class_names, map(int, train_counts), strict=True)),
            "synthetic": dict(zip(class_names, synth["counts"]["tstr"], strict=True)),
            "synthetic_added": dict(zip(class_names, synth["counts"]["extra"], strict=True))},
        "datasets": {d_name: {"name": d.name, "split": d.split, "fingerprint": d.fingerprint}
                     for d_name, d in (("train", train), ("val", val), ("test", test))},
        "classifiers": classifiers,
        "device": str(dev),
        "seconds": round(time.perf_counter() - started, 2),
    })
    if notes:
        block["notes"] = notes
    return block
