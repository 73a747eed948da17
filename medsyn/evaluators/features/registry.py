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
    extractor_weights  a local weights file of an encoder source (--extractor-weights), or None

Besides fixed names, a *source* is registered under a prefix and names a family of spaces:
``timm:<model>@<weights file>``, ``hf:<model folder>``, ``torchxrayvision:<weights>@<file>``
(features/encoders/). Its factory receives the text after the prefix as ``target=``.
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
# prefix (before the ":") -> the spec of every space "prefix:target"
_SOURCES: dict[str, SpaceSpec] = {}
_SOURCE_HELP: dict[str, str] = {}


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


def register_source(prefix: str, factory: Callable[..., FeatureExtractor],
                    description: str = "", usage: str = "", overwrite: bool = False,
                    settings: Mapping[str, str] | Sequence[str] = ()) -> None:
    """Make every name ``"prefix:target"`` a space built by ``factory(target=target, ...)``
    (e.g. ``timm:resnet50@weights.safetensors``). ``usage`` is what follows the prefix, as
    shown by ``--list`` (``"<model>@<weights file>"``). Sources are never fitted to the real
    data: their weights come from the user."""
    if ":" in prefix or not prefix:
        raise ConfigError(f"source prefix {prefix!r} must be a non-empty name without ':'.")
    if not overwrite and prefix in _SOURCES:
        raise ConfigError(f"feature source {prefix!r} is already registered.")
    declared = dict(settings) if isinstance(settings, Mapping) else {s: s for s in settings}
    _SOURCES[prefix] = SpaceSpec(factory, description, False, declared)
    _SOURCE_HELP[prefix] = f"{prefix}:{usage or '<target>'}"


def list_extractors() -> dict[str, str]:
    """Registered extractor names (and ``prefix:<target>`` sources) with their one-line
    descriptions."""
    return {**{name: spec.description for name, spec in _REGISTRY.items()},
            **{_SOURCE_HELP[p]: spec.description for p, spec in _SOURCES.items()}}


def _source_of(name: str) -> tuple[str, str] | None:
    """``(prefix, target)`` when ``name`` names a registered source's space, else None."""
    prefix, sep, target = name.partition(":")
    if sep and prefix in _SOURCES and name not in _REGISTRY:
        return prefix, target
    return None


def is_fitted(name: str) -> bool:
    """Whether the named space is fitted to the real training split (needs ``train=``)."""
    return name in _REGISTRY and _REGISTRY[name].fitted


def reads_setting(name: str, setting: str) -> bool:
    """Whether the named space is built from the evaluation setting ``setting`` (e.g.
    ``"val"``: a caller loads the validation split only when a space or family reads it)."""
    spec = _REGISTRY.get(name) or (_SOURCES[_source_of(name)[0]] if _source_of(name) else None)
    return spec is not None and setting in spec.settings.values()


def parse_extractor_names(names) -> list[str]:
    """``"inception,ssl"`` or a list of names -> the validated, de-duplicated list."""
    if isinstance(names, str):
        names = names.split(",")
    out = []
    for raw in names:
        name = str(raw).strip()
        if name and name not in out:
            out.append(name)
    unknown = [n for n in out if n not in _REGISTRY and _source_of(n) is None]
    if unknown or not out:
        raise ConfigError(f"unknown feature extractor(s) {', '.join(unknown) or '(none given)'}; "
                          f"registered: {_known()}.")
    empty = [n for n in out if _source_of(n) is not None and not _source_of(n)[1].strip()]
    if empty:
        raise ConfigError(f"feature source {empty[0]!r} names no model: write it as "
                          f"{_SOURCE_HELP[_source_of(empty[0])[0]]}.")
    return out


def _known() -> str:
    return ", ".join([*sorted(_REGISTRY), *sorted(_SOURCE_HELP.values())])


def _spec(name: str) -> tuple[SpaceSpec, dict]:
    """The spec that builds ``name`` and the options its name gives (a source's target)."""
    if name in _REGISTRY:
        return _REGISTRY[name], {}
    source = _source_of(name)
    if source is None:
        raise ConfigError(f"unknown feature extractor {name!r}; registered: {_known()}.")
    return _SOURCES[source[0]], {"target": source[1].strip()}


def get_extractor(name: str, **options) -> FeatureExtractor:
    spec, named = _spec(name)
    return spec.factory(**{**options, **named})


def build_extractor(name: str, settings: Mapping[str, object], **options) -> FeatureExtractor:
    """The named space built from the ``settings`` it declared (those ``settings`` holds) and
    ``options`` (``device``, and whatever the caller passes to every space; they win)."""
    spec, named = _spec(name)
    declared = {kw: settings[s] for kw, s in spec.settings.items() if s in settings}
    return spec.factory(**{**declared, **options, **named})
