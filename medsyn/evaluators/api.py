"""The Python API of the evaluation stage; ``medsyn evaluate`` is a command line over it.

    from medsyn.evaluators.api import evaluate, evaluate_checkpoint, evaluate_folder
    results = evaluate(fake_uint8, fake_labels, reference=ds_train, train=ds_train,
                       heldout=ds_test, out_dir="eval/x", n_bootstrap=50)
    results = evaluate_checkpoint("runs/x/epoch288.pt", extractor="inception,ssl")
    results = evaluate_folder("samples/", real="cxr3:train", options=EvalOptions(seed=1))

Each returns the results dict of results.json (docs/architecture.md section 3) and writes the
results folder. The settings of an evaluation are the fields of :class:`EvalOptions`, given
as ``options=`` and/or by name. How they run: :mod:`medsyn.evaluators.scoring` (images ->
results) and :mod:`medsyn.evaluators.pipeline` (checkpoints and folders -> images).
"""

from __future__ import annotations

from medsyn.evaluators.metrics import EvalOptions
from medsyn.evaluators.pipeline.checkpoint import checkpoint_out_dir, evaluate_checkpoint
from medsyn.evaluators.pipeline.folder import evaluate_folder, folder_out_dir
from medsyn.evaluators.scoring.evaluate import evaluate, versions
from medsyn.evaluators.scoring.spaces import FeatureSpaces

__all__ = ["EvalOptions", "FeatureSpaces", "checkpoint_out_dir", "evaluate",
           "evaluate_checkpoint", "evaluate_folder", "folder_out_dir", "versions"]
