"""Score synthetic images against real ones: FID, KID, IS, intra-FID, precision / recall /
density / coverage, the real-vs-real floor, memorization, t-SNE (docs/evaluation.md).

    import medsyn.evaluators as ev
    results = ev.evaluate(fake_uint8, fake_labels, reference=ds_train, train=ds_train,
                          heldout=ds_test, out_dir="runs/x/eval/epoch288")
    results = ev.evaluate_checkpoint("runs/x/epoch288.pt")        # -> runs/x/eval/epoch288/
    results = ev.evaluate_folder("samples/", real="cxr3:train")
    ev.add_metrics("runs/x/eval/epoch288", {"utility": {...}})    # other stages' families

Names are imported lazily so that ``medsyn --help`` does not load torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "evaluate": "api", "versions": "api", "audit": "audit",
    "evaluate_checkpoint": "api", "evaluate_folder": "api", "EvalOptions": "api",
    "evaluate_utility": "metrics.utility.protocol",
    "FeatureExtractor": "features", "InceptionExtractor": "features",
    "PixelExtractor": "features", "TorchModuleExtractor": "features",
    "get_extractor": "features", "list_extractors": "features",
    "register_extractor": "features",
    "Features": "features", "dataset_features": "features", "extract_features": "features",
    "EvalContext": "metrics", "entry": "metrics", "unavailable": "metrics",
    "list_metrics": "metrics", "register_metric": "metrics",
    "SCHEMA_VERSION": "results", "add_metrics": "results", "load_results": "results",
    "metric_rows": "results", "metric_spaces": "results", "write_results": "results",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        module = importlib.import_module(f"medsyn.evaluators.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'medsyn.evaluators' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
