"""Training recipes of the image GANs: named sets of option values (``--recipe NAME``).

A recipe fills every option it names that was not given otherwise; precedence, lowest first:
built-in defaults < the kind's defaults < the recipe < the checkpoint's config (``--resume``) <
the TOML file < explicit options. So ``--recipe stable --ema-decay 0`` is the stable recipe
without its EMA generator (the ablation of docs/benchmark.md is made of such runs).

``cxr-acgan`` is the seed's recipe, unchanged: the CXR-ACGAN AC-GAN (and the DCGAN recipe for
``cgan`` / ``dcgan``): BCE with the non-saturating generator loss, batch norm in D, fake labels
drawn uniformly, one Adam learning rate 2e-4 with betas (0.5, 0.999), no augmentation, no EMA.
A run with it is bit-identical to a run of medsyn before recipes existed
(``tests/test_train_recipes.py`` pins it), and a checkpoint written before recipes existed
resumes with it.

``stable`` is built from the parts that make GANs train reliably on small datasets, each an
option of its own:

| option | stable | cxr-acgan |
|---|---|---|
| ``--spectral-norm``: spectral normalisation of D, no batch norm in D | on | off |
| ``--loss``: hinge loss (Lim & Ye 2017) or BCE | hinge | bce |
| ``--conditioning`` (cgan): projection D (Miyato, Koyama 2018) | projection | concat |
| ``--augment``: DiffAugment on all D sees (Zhao et al. 2020) | 4 transforms (below) | none |
| ``--ema-decay``: EMA of G's weights, sampled and evaluated | 0.999 | 0 (off) |
| ``--fake-labels``: labels of fakes, from the class prior or uniform | prior | uniform |
| ``--lr`` / ``--lr-d``: two time-scale rates (Heusel et al. 2017) | 1e-4 / 4e-4 | 2e-4 / 2e-4 |
| ``--twin-classifier`` (acgan): TAC-GAN's twin class head (Gong et al. 2019) | on | off |

The 4 transforms are translation, cutout, brightness and contrast. The recipe also sets what
its parts imply: Adam betas (0.0, 0.9) as in SN-GAN / SAGAN for the hinge loss, no label
smoothing (it is a BCE target) and no dropout in the AC-GAN discriminator.

Widths: the seed's widths at 112 px and above (the GPU architecture); below, networks sized for
a CPU (:func:`recipe_values`).
"""

from __future__ import annotations

RECIPES = ("stable", "cxr-acgan")
LEGACY_RECIPE = "cxr-acgan"        # what a checkpoint written before recipes existed used

# The kinds' default recipe, chosen by the measurements of docs/benchmark.md ("Recipes").
DEFAULT_RECIPE = {"acgan": "cxr-acgan", "cgan": "stable", "dcgan": "cxr-acgan"}

# Options whose value comes from the recipe unless given (or inherited from a checkpoint).
RECIPE_OPTIONS = ("loss", "spectral_norm", "conditioning", "augment", "ema_decay", "fake_labels",
                  "lr", "lr_d", "beta1", "beta2", "label_smoothing", "dropout", "g_width",
                  "d_width", "twin_classifier")

# The options the stable recipe's parts set (the ablation removes one part at a time).
STABLE_PARTS = {
    "spectral_norm": {"spectral_norm": False},
    "hinge": {"loss": "bce"},
    "projection": {"conditioning": "concat"},
    "augment": {"augment": "none"},
    "ema": {"ema_decay": 0.0},
    "prior_labels": {"fake_labels": "uniform"},
    "ttur": {"lr_d": 1e-4},
    "twin_classifier": {"twin_classifier": False},
}

_SEED = {
    "common": {"loss": "bce", "spectral_norm": False, "augment": "none", "ema_decay": 0.0,
               "fake_labels": "uniform", "lr": 2e-4, "lr_d": None, "beta1": 0.5,
               "beta2": 0.999},
    "acgan": {"label_smoothing": 0.1, "dropout": 0.5, "g_width": 128, "d_width": 64,
              "twin_classifier": False},
    "cgan": {"label_smoothing": 0.0, "conditioning": "concat", "g_width": 64, "d_width": 64},
    "dcgan": {"label_smoothing": 0.0, "g_width": 64, "d_width": 64},
}

_STABLE = {
    "common": {"loss": "hinge", "spectral_norm": True, "augment": "translation,cutout,"
               "brightness,contrast", "ema_decay": 0.999, "fake_labels": "prior", "lr": 1e-4,
               "lr_d": 4e-4, "beta1": 0.0, "beta2": 0.9, "label_smoothing": 0.0},
    "acgan": {"dropout": 0.0, "twin_classifier": True},
    "cgan": {"conditioning": "projection"},
    "dcgan": {},
}

# Network widths (G, D) of the stable recipe below 112 px: sized for a CPU.
CPU_WIDTHS = {"acgan": (32, 32), "cgan": (32, 32), "dcgan": (32, 32)}
GPU_SIZE = 112


def default_recipe(kind: str) -> str:
    return DEFAULT_RECIPE[kind]


def recipe_values(recipe: str, kind: str, image_size: int) -> dict:
    """Every option value ``recipe`` sets for a ``kind`` run at ``image_size`` px (options that
    do not apply to the kind left out)."""
    if recipe == "cxr-acgan":
        values = {**_SEED["common"], **_SEED[kind]}
    elif recipe == "stable":
        values = {**_STABLE["common"], **_STABLE[kind]}
        widths = (_SEED[kind]["g_width"], _SEED[kind]["d_width"]) if image_size >= GPU_SIZE \
            else CPU_WIDTHS[kind]
        values["g_width"], values["d_width"] = widths
    else:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    if kind != "acgan":
        values.pop("dropout", None)
        values.pop("twin_classifier", None)
    if kind != "cgan":
        values.pop("conditioning", None)
    if kind == "dcgan":
        values.pop("fake_labels", None)
    return values


# Which recipe option usually prevents each failure of the collapse detector, the likelier first:
# (option, value that is on, the flag to suggest). The order follows the parts' papers (SN-GAN
# for a saturated D, DiffAugment for a D that memorises a small training set); medsyn measured
# only that the stable recipe as a whole avoids, for 10 epochs, the seed's per-class collapse on
# cxr3 at 64 px (docs/benchmark.md, "Recipes"), not which part does it.
_PREVENTS = {
    # D's outputs pinned at 0 or 1 for every image: its Lipschitz bound keeps it from saturating
    "saturated": (("spectral_norm", True, "--spectral-norm"),
                  ("loss", "hinge", "--loss hinge")),
    # D separates the training images from every fake: it has memorised the small training set
    "certain": (("augment", "any", "--augment translation,cutout,brightness,contrast"),
                ("spectral_norm", True, "--spectral-norm")),
    # G makes one image (per class)
    "alike": (("spectral_norm", True, "--spectral-norm"),
              ("augment", "any", "--augment translation,cutout,brightness,contrast")),
}


def _is_on(config: dict, option: str, on) -> bool:
    value = config.get(option)
    if on == "any":
        return value not in (None, "", "none")
    return value == on


def collapse_advice(failure: str, config: dict | None) -> str:
    """What to do about a collapse of kind ``failure`` (``saturated``, ``certain``, ``alike``)
    in a run with options ``config``: the recipe options that usually prevent it and that the
    run did not use, as a command fragment, else a lower learning rate."""
    config = config or {}
    missing = [flag for option, on, flag in _PREVENTS[failure]
               if not _is_on(config, option, on)]
    start = ("the run has likely collapsed; its samples are not worth evaluating. Start a new "
             "run (another --out)")
    if missing:
        recipe = "" if config.get("recipe") == "stable" else " (all in --recipe stable)"
        return f"{start} with {' and '.join(missing)}, which usually prevent this{recipe}"
    return f"{start} with a lower --lr (and --lr-d)"
