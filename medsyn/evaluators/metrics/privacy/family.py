"""Privacy audit (``--metrics privacy``): does the synthetic set leak its training images?

Three tests, each in the evaluation's feature space and in raw pixels (stats.py beside it has
the mathematics, docs/privacy.md what each can and cannot prove):

- DCR: synthetic -> train nearest distances against held-out -> train ones;
- C_T (Meehan et al. 2020): the same comparison inside k-means cells of the training features;
- membership inference: can the distance to the synthetic set tell training images from
  held-out ones (AUC, 0.5 = no)?

Each flags at one-sided level ``ALPHA``; the verdict says which flag, where. Further tests plug
in with :func:`register_privacy_test` (the hook for authenticity, Alaa et al. 2022).

Patients: when the datasets carry ``patient_ids``, held-out -> train distances skip
same-patient pairs, held-out images of training patients are not used as non-members, and
intervals resample patients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from medsyn.evaluators.metrics import stats
from medsyn.evaluators.metrics.context import EvalContext, unavailable
from medsyn.evaluators.metrics.groups import GroupResampler
from medsyn.evaluators.metrics.privacy.stats import (
    ALPHA,
    data_copying_ct,
    dcr_test,
    default_cells,
    fraction_below,
    kmeans_cells,
    membership_attack,
)

PERCENTILE = 5.0             # "closer than the 5th percentile of held-out distances"
PIXEL_MAX_SIZE = 64          # raw-pixel space: the image's own size, area-downsampled above this


@dataclass
class PrivacySpace:
    """One space the audit runs in: features of the three sets and the patients of the real
    ones (None when unknown). What every privacy test, built in or registered, receives."""

    name: str
    description: str
    fake: np.ndarray
    train: np.ndarray
    heldout: np.ndarray
    train_patients: np.ndarray | None
    heldout_patients: np.ndarray | None


# name -> fn(space, ctx) -> block with at least "flags" (bool or None) and "rule" (str)
_EXTRA_TESTS: dict[str, Callable[[PrivacySpace, EvalContext], dict | None]] = {}


def register_privacy_test(name: str, fn: Callable[[PrivacySpace, EvalContext], dict | None]):
    """Add a test to every space of the audit and to its verdict.

    ``fn(space, ctx)`` returns a JSON-ready block with ``"flags"`` (True: evidence of copying,
    False: none, None: could not decide) and ``"rule"`` (the threshold, in words), plus its
    numbers; or None to skip the space. Example (authenticity, Alaa et al. 2022, once
    ``medsyn.evaluators.metrics.distribution.alpha_precision.authenticity`` exists)::

        def authenticity_test(space, ctx):
            a = authenticity(space.train, space.fake)            # that module's signature
            return {"value": a, "flags": a < 0.5, "rule": "authentic fraction below 0.5"}

        register_privacy_test("authenticity", authenticity_test)
    """
    _EXTRA_TESTS[name] = fn


def _pixel_space(ctx: EvalContext):
    from medsyn.evaluators.features import PixelExtractor

    h, w = ctx.fake_images.shape[2:]
    return PixelExtractor(int(min(h, w, PIXEL_MAX_SIZE)), device=ctx.device)


def _spaces(ctx: EvalContext) -> list[tuple[PrivacySpace, object]]:
    """The evaluation's feature space and raw pixels (unless they are the same)."""
    from medsyn.evaluators.features import dataset_features, extract_features

    train_ds, held_ds = ctx.split_dataset("train"), ctx.split_dataset("heldout")
    train_ids = getattr(train_ds, "patient_ids", None)
    held_ids = getattr(held_ds, "patient_ids", None)
    out = [(PrivacySpace(ctx.extractor.name, "the evaluation's feature space",
                         ctx.fake.features, ctx.features_of("train").features,
                         ctx.features_of("heldout").features, train_ids, held_ids),
            ctx.extractor)]
    pix = _pixel_space(ctx)
    if pix.name != ctx.extractor.name:
        opts = ctx.options
        feats = {which: dataset_features(ds, pix, opts.batch_size, opts.use_cache).features
                 for which, ds in (("train", train_ds), ("heldout", held_ds))}
        fake = extract_features(pix, ctx.fake_images, opts.batch_size, "fake pixels").features
        out.append((PrivacySpace(pix.name, f"raw pixels: {pix.conventions}", fake,
                                 feats["train"], feats["heldout"], train_ids, held_ids), pix))
    return out


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _note(what: str, test: dict) -> str:
    verdict = {True: "FLAGS", False: "does not flag", None: "undecided"}[test["flags"]]
    return f"{what}; one-sided p {_fmt(test['p_value'])}: {verdict}"


def _flag(p) -> bool | None:
    return None if p is None else bool(p < ALPHA)


def audit_space(space: PrivacySpace, ctx: EvalContext) -> dict:
    """DCR test, C_T and the membership attack in one space (+ figures when writing)."""
    opts, dev = ctx.options, ctx.device
    rng = ctx.rng(f"privacy/{space.name}")
    d_ft = stats.pairwise_distances(space.fake, space.train, dev)            # fake x train
    d_ht = stats.exclude_same_group(stats.pairwise_distances(space.heldout, space.train, dev),
                                    space.heldout_patients, space.train_patients)
    best = d_ft.min(1)
    d_fake, nn_fake = best.values.cpu().numpy(), best.indices.cpu().numpy()
    d_held_all = d_ht.min(1).values.cpu().numpy()
    has_other = np.isfinite(d_held_all)      # a held-out image with another patient in train
    d_held = d_held_all[has_other]
    held_patients = None if space.heldout_patients is None else space.heldout_patients[has_other]
    held_rs = GroupResampler(len(d_held), held_patients)

    # 1. DCR
    dcr = dcr_test(d_fake, d_held)
    fraction, threshold, frac_res = fraction_below(d_fake, d_held, PERCENTILE,
                                                   opts.n_bootstrap, rng, held_rs)
    ratio_res = []
    for _ in range(opts.n_bootstrap):
        h = np.median(d_held[held_rs.draw(rng)])
        f = np.median(d_fake[rng.integers(0, len(d_fake), len(d_fake))])
        ratio_res.append(float(f / h) if h > 0 else None)
    dcr.update({
        "median_ratio_ci95": stats.recentred_interval(dcr["median_ratio"], ratio_res, 0.0)
        if dcr["median_ratio"] is not None else None,
        "fraction_below_heldout_p5": fraction,
        "fraction_ci95": stats.recentred_interval(fraction, frac_res, 0.0, 1.0),
        "expected_fraction_without_copying": PERCENTILE / 100,
        "threshold": threshold, "percentile": PERCENTILE,
        "n_fake": len(d_fake), "n_heldout": len(d_held), "n_train": len(space.train),
        "flags": _flag(dcr["p_value"]),
        "rule": f"one-sided Mann-Whitney U p < {ALPHA} (synthetic nearer to train than "
                "held-out images)",
        "closest": [{"fake_index": int(i), "train_index": int(nn_fake[i]),
                     "distance": float(d_fake[i])}
                    for i in np.argsort(d_fake)[: opts.gallery_pairs]],
    })

    # 2. C_T over k-means cells of the training features
    n_cells = default_cells(len(space.train), len(d_held), len(d_fake))
    km = kmeans_cells(space.train, n_cells, opts.seed)
    ct = data_copying_ct(d_ft, d_ht[torch.from_numpy(np.flatnonzero(has_other)).to(d_ht.device)],
                         km.labels_, km.predict(space.fake.astype(np.float64)),
                         km.predict(space.heldout[has_other].astype(np.float64)), n_cells)
    ct.update({"flags": _flag(ct["p_value"]),
               "rule": f"z = sum(w Z_U) / sqrt(sum w^2) with p = Phi(z) < {ALPHA} "
                       "(C_T well below 0: copying)",
               "cells_method": f"k-means (k={n_cells}, k-means++, 3 restarts, seed "
                               f"{opts.seed}) on the training features"})

    # 3. membership inference by distance to the synthetic set
    d_member = d_ft.min(0).values.cpu().numpy()                   # each training image
    train_set = set(space.train_patients) if space.train_patients is not None else set()
    fresh = np.ones(len(space.heldout), dtype=bool) if space.heldout_patients is None else \
        np.array([p not in train_set for p in space.heldout_patients])
    d_non = stats.nearest_distances(space.heldout[fresh], space.fake, dev)[0]
    mia = membership_attack(
        d_member, d_non, opts.n_bootstrap, rng,
        GroupResampler(len(d_member), space.train_patients),
        GroupResampler(len(d_non), None if space.heldout_patients is None
                       else space.heldout_patients[fresh]))
    res = mia.pop("resamples")
    res_tpr = mia.pop("tpr_resamples")
    mia.update({"ci95": stats.recentred_interval(mia["auc"], res, 0.0, 1.0),
                "tpr_at_low_fpr_ci95": stats.recentred_interval(mia["tpr_at_low_fpr"], res_tpr,
                                                                0.0, 1.0),
                "n_members": len(d_member), "n_nonmembers": len(d_non),
                "nonmembers_dropped_same_patient": int((~fresh).sum()),
                "flags": _flag(mia["p_value"]),
                "rule": f"one-sided Mann-Whitney p < {ALPHA} that training images are nearer "
                        "to the synthetic set than held-out ones (AUC > 0.5)",
                "score": "minus the distance to the nearest synthetic image"})

    # headline value / ci95 / note of each test, for metrics.csv and the printed table
    dcr.update({"value": dcr["median_ratio"], "ci95": dcr["median_ratio_ci95"],
                "n_real": dcr["n_heldout"], "extractor": space.name,
                "note": _note("median DCR ratio synthetic / held-out", dcr)})
    ct.update({"n_real": int(has_other.sum()), "n_fake": len(d_fake), "extractor": space.name,
               "note": _note(f"C_T; z {_fmt(ct['z'])}", ct)})
    mia.update({"value": mia["auc"], "n_real": mia["n_nonmembers"], "n_fake": len(d_fake),
                "extractor": space.name, "note": _note("membership-inference AUC", mia)})
    block = {"space": space.description, "dcr": dcr, "data_copying": ct,
             "membership_inference": mia}
    for name, fn in _EXTRA_TESTS.items():
        extra = fn(space, ctx)
        if extra is not None:
            block[name] = extra
    if ctx.out_dir is not None:
        from medsyn.evaluators.metrics import figures

        order = np.argsort(d_fake)[: opts.gallery_pairs]
        tag = space.name.replace("/", "-")
        ctx.figures[f"privacy_pairs_{tag}"] = figures.memorization_gallery(
            ctx.out_dir / f"privacy_pairs_{tag}.png", ctx.fake_images,
            ctx.split_dataset("train").images, order,
            nn_fake, d_fake, threshold, PERCENTILE, space=space.name)
        ctx.figures[f"privacy_hist_{tag}"] = figures.distance_histogram(
            ctx.out_dir / f"privacy_hist_{tag}.png", d_fake, d_held, threshold, PERCENTILE,
            space=space.name)
    return block


TEST_NAMES = {"dcr": "DCR test", "data_copying": "C_T data-copying test",
              "membership_inference": "membership-inference attack"}


def verdict(spaces: dict[str, dict]) -> dict:
    """Plain-language verdict: which tests flag, in which spaces, and the thresholds."""
    flagged, undecided = [], []
    for space, block in spaces.items():
        for key, test in block.items():
            if not isinstance(test, dict) or "flags" not in test:
                continue
            label = f"{TEST_NAMES.get(key, key)} ({space})"
            if test["flags"] is None:
                undecided.append(label)
            elif test["flags"]:
                flagged.append(label)
    rules = sorted({f"{TEST_NAMES.get(k, k)}: {t['rule']}" for b in spaces.values()
                    for k, t in b.items() if isinstance(t, dict) and "rule" in t})
    if flagged:
        text = ("Possible leak of training images, flagged by: " + "; ".join(flagged) + ". "
                "The synthetic images sit closer to the training images than new real images "
                "do; inspect the closest pairs before releasing them.")
    else:
        text = ("No test flags: the synthetic images are no closer to the training images "
                "than held-out real images are, in any space tested. This is evidence against "
                "copying at these sample sizes, not proof that no patient can be re-identified.")
    if undecided:
        text += " Could not decide: " + "; ".join(undecided) + "."
    return {"leak_suspected": bool(flagged), "flagged": flagged, "undecided": undecided,
            "text": text, "alpha": ALPHA, "rules": rules}


def metric_privacy(ctx: EvalContext) -> dict:
    name = ctx.extractor.name
    if ctx.train is None or ctx.heldout is None:
        return {"privacy": unavailable(
            "needs the training split and a held-out (test) split of the dataset",
            extractor=name)}
    if ctx.train.fingerprint == ctx.heldout.fingerprint:
        return {"privacy": unavailable("the training and held-out sets are the same images",
                                       extractor=name)}
    train, held = ctx.split_dataset("train"), ctx.split_dataset("heldout")
    if min(len(ctx.fake_images), len(held), len(train)) < 2:
        return {"privacy": unavailable("needs at least 2 synthetic, 2 training and 2 held-out "
                                       "images", extractor=name)}
    spaces = {space.name: audit_space(space, ctx) for space, _ in _spaces(ctx)}
    train_ids = getattr(train, "patient_ids", None)
    held_ids = getattr(held, "patient_ids", None)
    patients = {
        "known": train_ids is not None and held_ids is not None,
        "n_train_patients": None if train_ids is None else len(set(train_ids)),
        "n_heldout_patients": None if held_ids is None else len(set(held_ids)),
        "bootstrap": "patients" if held_ids is not None else "images",
        "same_patient_pairs": "excluded from held-out -> train distances; held-out images of "
                              "training patients are not used as non-members"
        if held_ids is not None else "unknown (no patient ids)",
    }
    return {"privacy": {"verdict": verdict(spaces), "spaces": spaces, "patients": patients,
                        "extractor": name, "n_fake": len(ctx.fake_images),
                        "n_train": len(train), "n_heldout": len(held)}}
