"""The registry of feature spaces: ``get_extractor(name)`` builds one by name.

A space declares, where it is registered, what it is built from beyond the device: the
*settings* of the evaluation it reads (``settings``) and whether it is fitted to the real
training split (``fitted``). Callers that build spaces by name (the evaluation pipeline, the
CLI, ``medsyn audit``) hand :func:`build_extractor` everything they have and each space takes
what it declared, so no caller tests space names. The settings callers provide:

    train              the real training split (ImageDataset); every fitted space reads it
    use_cache          read/write the on-disk caches of networks and features; fitted spaces
    val                the real validation split, or None (epoch selection of a classifier)
    classifier_recipe  the diagnostic classifier's recipe (--utility-recipe)
    ssl_recipe         the SimCLR encoder's recipe (--ssl-recipe)
    inception_weights  a local Inception weights file (--inception-weights), or None
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from medsyn.errors import ConfigError
from medsyn.evaluators.features.base import FeatureExtractor

# settings every fitted space reads, under the same keyword
FITTED_SETTINGS = ("train", "use_cache")


@dataclass(frozen=True)
class SpaceSpec:
    factory: Callable[..., FeatureExtractor]
    description: str = ""
    fitted: bool = False
    # factory keyword -> the evaluation setting it is given
    settings: Mapping[str, str] = field(default_factory=dict)


_REGISTRY: dict[str, SpaceSpec] = {}


def register_extractor(name: str, factory: Callable[..., FeatureExtractor],
                       description: str = "", overwrite: bool = False,
                       fitted: bool = False,
                       settings: Mapping[str, str] | Sequence[str] = ()) -> None:
    """Make ``get_extractor(name, **options)`` call ``factory(**options)``.

    ``factory`` receives ``device`` and any options the caller passes (``weights``, ...), and
    must accept (and may ignore) options it does not use (take ``**_``). ``fitted``: the space
    is fitted to the reference dataset's real training split (a network trained on it, or
    statistics of it), so the factory needs ``train=`` (and takes ``use_cache=``).
    ``settings``: further evaluation settings the factory takes (module docstring), as names
    (the factory keyword is the setting's name) or ``{factory keyword: setting}``.
    """
    if not overwrite and name in _REGISTRY:
        raise ConfigError(f"feature extractor {name!r} is already registered.")
    declared = dict(settings) if isinstance(settings, Mapping) else {s: s for s in settings}
    if fitted:
        declared = {**{s: s for s in FITTED_SETTINGS}, **declared}
    _REGISTRY[name] = SpaceSpec(factory, description, fitted, declared)


def list_extractors() -> dict[str, str]:
    """Registered extractor names and their one-line descriptions."""
    return {name: spec.description for name, spec in _REGISTRY.items()}


def is_fitted(name: str) -> bool:
    """Whether the named space is fitted to the real training split (needs ``train=``)."""
    return name in _REGISTRY and _REGISTRY[name].fitted


def reads_setting(name: str, setting: str) -> bool:
    """Whether the named space is built from the evaluation setting ``setting`` (e.g.
    ``"val"``: a caller loads the validation split only when a space or family reads it)."""
    return name in _REGISTRY and setting in _REGISTRY[name].settings.values()


def parse_extractor_names(names) -> list[str]:
    """``"inception,ssl"`` or a list of names -> the validated, de-duplicated list."""
    if isinstance(names, str):
        names = names.split(",")
    out = []
    for raw in names:
        name = str(raw).strip()
        if name and name not in out:
            out.append(name)
    unknown = [n for n in out if n not in _REGISTRY]
    if unknown or not out:
        raise ConfigError(f"unknown feature extractor(s) {', '.join(unknown) or '(none given)'}; "
                          f"registered: {', '.join(sorted(_REGISTRY))}.")
    return out


def _spec(name: str) -> SpaceSpec:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown feature extractor {name!r}; registered: "
                          f"{', '.join(sorted(_REGISTRY))}.")
    return _REGISTRY[name]


def get_extractor(name: str, **options) -> FeatureExtractor:
    return _spec(name).factory(**options)


def build_extractor(name: str, settings: Mapping[str, object], **options) -> FeatureExtractor:
    """The named space built from the ``settings`` it declared (those ``settings`` holds) and
    ``options`` (``device``, and whatever the caller passes to every space; they win)."""
    spec = _spec(name)
    declared = {kw: settings[s] for kw, s in spec.settings.items() if s in settings}
    return spec.factory(**{**declared, **options})
