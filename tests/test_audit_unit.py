"""medsyn audit without the real data: verdict logic on fabricated numbers, the perturbations
(deterministic, graded), direction declarations, argument errors, and an end-to-end run in
pixel space on a small image-folder dataset, down to the trust card in the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from report_fakes import generation_results, write_png
from typer.testing import CliRunner

from medsyn.cli import app
from medsyn.errors import ConfigError
from medsyn.evaluators.audit import perturbations as P
from medsyn.evaluators.audit.verdict import (
    DETECTED,
    LATE,
    MISSED,
    UNAVAILABLE,
    WRONG,
    classify,
    spearman,
)

# ---------------------------------------------------------------- verdicts (fabricated numbers)

CI0 = [9.0, 11.0]          # the real-vs-real interval around 10


def _judge(values, worse="higher"):
    intervals = [CI0] + [[v - 1, v + 1] if v is not None else None for v in values[1:]]
    return classify(values, intervals, worse)


@pytest.mark.parametrize("values, worse, verdict, threshold", [
    ([10, 12, 15, 20, 30], "higher", DETECTED, 1),        # out at the mildest level
    ([10, 10.5, 11.5, 20, 30], "higher", DETECTED, 2),    # level 2 is still "early" (of 4)
    ([10, 10.5, 10.8, 12, 30], "higher", LATE, 3),
    ([10, 10.2, 9.5, 10.9, 10.1], "higher", MISSED, None),
    ([10, 8, 6, 4, 2], "higher", WRONG, None),            # FID that improves with the failure
    ([10, 8.5, 12, 15, 20], "higher", WRONG, 2),          # better side first: still wrong
    ([10, 8, 6, 4, 2], "lower", DETECTED, 1),             # recall that drops
    ([10, 12, 13, 14, 15], "lower", WRONG, None),
    ([10, 10.5, 10.9, 12, 7], "either", LATE, 3),
    ([10, 8.5, 7, 6, 5], "either", DETECTED, 1),
])
def test_verdicts_on_fabricated_numbers(values, worse, verdict, threshold):
    out = _judge(values, worse)
    assert out["verdict"] == verdict
    assert out["threshold_level"] == threshold


def test_spearman_and_direction():
    out = _judge([10, 12, 15, 20, 30])
    assert out["spearman"] == pytest.approx(1.0)
    assert out["moves_right_way"] is True
    out = _judge([10, 8, 6, 4, 2], "lower")
    assert out["spearman"] == pytest.approx(-1.0) and out["moves_right_way"] is True
    out = _judge([10, 8, 6, 4, 2], "higher")
    assert out["moves_right_way"] is False
    # an independent check of the rank correlation: 1 - 6 sum d^2 / (n (n^2 - 1)), no ties
    x, y = [0, 1, 2, 3, 4], [1.0, 3.0, 2.0, 5.0, 4.0]
    d = np.argsort(np.argsort(x)) - np.argsort(np.argsort(y))
    assert spearman(x, y) == pytest.approx(1 - 6 * (d ** 2).sum() / (5 * 24))
    assert spearman([0, 1, 2], [1.0, 1.0, 1.0]) is None


def test_unavailable_cells_say_why():
    out = classify([None, 1.0, 2.0], [None, None, None], "higher")
    assert out["verdict"] == UNAVAILABLE and "level 0" in out["reason"]
    out = classify([1.0, 2.0, 3.0], [None, None, None], "higher")
    assert out["verdict"] == UNAVAILABLE and "bootstrap" in out["reason"]
    out = classify([1.0, None, None], [[0.5, 1.5], None, None], "higher")
    assert out["verdict"] == UNAVAILABLE


# ---------------------------------------------------------------- perturbations


def _pool(seed=0, n_pool=40, n=16, size=28):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    images = []
    for i in range(n_pool):
        base = 127 + 80 * np.sin(xx / (2 + i % 5)) * np.cos(yy / 3)
        images.append(np.clip(base + rng.normal(0, 10, (size, size)), 0, 255))
    images = torch.from_numpy(np.stack(images)[:, None].astype(np.uint8))
    labels = np.array([0] * 28 + [1] * 12)[:n_pool]
    base_rows = np.sort(np.concatenate([np.arange(0, 11), np.arange(28, 33)]))[:n]
    pool = P.Pool(images=images, labels=labels, base_rows=base_rows,
                  class_names=["a", "b"], copy_source=images[:10].flip(-1),
                  copy_labels=labels[:10])
    pool.clusters = np.arange(n_pool) % P.N_CLUSTERS
    return pool


@pytest.mark.parametrize("name", list(P.FAILURES))
def test_every_perturbation_is_deterministic_under_a_seed(name):
    failure = P.FAILURES[name]
    pool = _pool()
    for level in range(1, len(failure.levels) + 1):
        a = P.build_set(failure, level, pool, seed=3)
        b = P.build_set(failure, level, pool, seed=3)
        assert torch.equal(a.images, b.images)
        assert np.array_equal(a.labels, b.labels) and np.array_equal(a.pool_rows, b.pool_rows)
        assert a.images.dtype == torch.uint8 and a.images.shape == (pool.n, 1, 28, 28)
    if name in ("noise", "memorisation", "diversity", "label_swap", "class_drop"):
        a = P.build_set(failure, 2, pool, seed=3)
        c = P.build_set(failure, 2, pool, seed=4)
        assert not (torch.equal(a.images, c.images) and np.array_equal(a.labels, c.labels))


def test_pixel_failures_grow_with_severity():
    pool = _pool()
    base = P.real_set(pool).images.float()
    for name in ("blur", "noise", "intensity", "jpeg"):
        f = P.FAILURES[name]
        dist = [float((P.build_set(f, lv, pool, 0).images.float() - base).abs().mean())
                for lv in range(1, 5)]
        assert all(d > 0 for d in dist) and dist == sorted(dist), (name, dist)
    # blur removes high frequencies: the Laplacian's energy falls with sigma
    lap = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float32)[None, None]
    energy = [float(torch.nn.functional.conv2d(P.build_set(P.FAILURES["blur"], lv, pool, 0)
                                               .images.float(), lap).pow(2).mean())
              for lv in range(1, 5)]
    assert energy == sorted(energy, reverse=True)


def test_selection_failures_reuse_real_images():
    pool = _pool()
    drop = P.FAILURES["class_drop"]
    rare = P.rarest_class(pool)
    assert rare == 1
    full = P.build_set(drop, 4, pool, 0)
    assert (full.labels != rare).all() and (full.pool_rows >= 0).all()
    assert torch.equal(full.images, pool.images[torch.from_numpy(full.pool_rows)])
    half = P.build_set(drop, 2, pool, 0)
    members = int((pool.labels[pool.base_rows] == rare).sum())
    assert (half.labels == rare).sum() == members - round(0.5 * members)
    swap = P.build_set(P.FAILURES["label_swap"], 2, pool, 0)
    assert (swap.labels != pool.labels[pool.base_rows]).sum() == round(0.25 * pool.n)
    assert torch.equal(swap.images, P.real_set(pool).images) and swap.n_new == 0
    keep1 = P.build_set(P.FAILURES["cluster_drop"], 4, pool, 0)
    assert len(set(pool.clusters[keep1.pool_rows])) == 1


def test_memorisation_and_diversity():
    pool = _pool()
    mem = P.build_set(P.FAILURES["memorisation"], 2, pool, 0)
    assert mem.n_new == round(0.25 * pool.n)
    copies = mem.images[torch.from_numpy(mem.pool_rows < 0)].float()
    nearest = torch.cdist(copies.flatten(1), pool.copy_source.float().flatten(1)).min(1).values
    assert (nearest / 28 < 3 * P.COPY_NOISE_STD).all()       # slight noise only
    one = P.build_set(P.FAILURES["diversity"], 4, pool, 0)
    assert len(set(one.labels.tolist())) == 1
    # every image is one base image shifted by at most 1 px, plus noise of std 2
    base = P.real_set(pool).images.float()
    pad = torch.nn.functional.pad(base, (1, 1, 1, 1), mode="replicate")
    shifted = torch.stack([pad[:, :, dy:dy + 28, dx:dx + 28] for dy in range(3)
                           for dx in range(3)], 1)                        # [n, 9, 1, 28, 28]
    err = (one.images.float()[:, None, None] - shifted[None]).abs().mean((-1, -2, -3))
    best = err.flatten(1).min(1)                                           # per output image
    assert (best.values < 2.5).all()
    assert len(set((best.indices // 9).tolist())) == 1                     # the same source
    four = P.build_set(P.FAILURES["diversity"], 3, pool, 0)                # 5 % of 16 -> 1
    two = P.build_set(P.FAILURES["diversity"], 1, pool, 0)                 # 50 % -> 8 sources
    err2 = (two.images.float()[:, None, None] - shifted[None]).abs().mean((-1, -2, -3))
    assert len(set((err2.flatten(1).argmin(1) // 9).tolist())) == 8
    assert four.images.shape == one.images.shape


def test_failure_and_level_errors():
    with pytest.raises(ConfigError, match="blurr"):
        P.resolve_failures("blurr,noise")
    with pytest.raises(ConfigError, match="level 9"):
        P.build_set(P.FAILURES["blur"], 9, _pool(), 0)


# ---------------------------------------------------------------- directions and options


def test_every_default_feature_family_declares_directions():
    from medsyn.evaluators.metrics import list_metrics, metric_directions, register_metric
    from medsyn.evaluators.metrics.registry import _METRICS

    directions = metric_directions()
    assert directions["fid"] == "higher" and directions["recall"] == "lower"
    assert directions["memorization"] == "higher"
    assert "precision" in directions and "coverage" in directions
    assert "real_floor" not in directions              # not a property of the fakes
    with pytest.raises(ConfigError, match="worse direction"):
        register_metric("bad_direction_test", lambda ctx: {}, "x", worse={"x": "up"})
    assert "bad_direction_test" not in list_metrics()
    _METRICS.pop("bad_direction_test", None)


def test_gram_fid_option_matches_torch_fidelity():
    from medsyn.evaluators.metrics import EvalContext, EvalOptions, fid_entry

    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 64)).astype(np.float32)
    b = rng.normal(0.3, 1.1, size=(50, 64)).astype(np.float32)

    class Ext:
        name = "test"

    def fid(method):
        ctx = EvalContext(None, torch.zeros(1, 1, 2, 2, dtype=torch.uint8), None, Ext(),
                          EvalOptions(n_bootstrap=0, fid_method=method), torch.device("cpu"))
        return fid_entry(ctx, a, b, "t")[0]["value"]

    assert fid("gram") == pytest.approx(fid("torch-fidelity"), rel=1e-6)
    with pytest.raises(ConfigError, match="fid_method"):
        EvalOptions(fid_method="fast").validate()


# ---------------------------------------------------------------- CLI errors


def _cli(*args):
    return CliRunner().invoke(app, ["audit", *map(str, args)])


@pytest.mark.parametrize("args, message", [
    (["--dataset", "pneumoniamnist:train"], "held out from the reference"),
    (["--dataset", "pneumoniamnist", "--extractor", "nope"], "unknown feature space"),
    (["--dataset", "pneumoniamnist", "--failures", "blurr"], "unknown failure"),
    (["--dataset", "pneumoniamnist", "--metrics", "tsne"], "cannot be audited"),
    (["--dataset", "pneumoniamnist", "--metrics", "fidd"], "unknown metric"),
    (["--dataset", "pneumoniamnist", "--bootstrap", "1"], "--bootstrap"),
    (["--dataset", "pneumoniamnist", "-n", "3"], "-n"),
    (["--dataset", "pneumoniamnist", "--extractor", "pixels,pixels"], "named twice"),
    (["--dataset", "pneumoniamnist", "--batch-size", "0"], "--batch-size"),
])
def test_bad_arguments_give_one_line_errors(args, message):
    result = _cli(*args)
    assert result.exit_code == 1
    err = result.stderr.strip()
    assert err.startswith("medsyn: error:") and len(err.splitlines()) == 1
    assert message in err
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- end to end, pixel space


@pytest.fixture(scope="module")
def folder_dataset(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("audit-folder")
    for split, n in (("train", 40), ("test", 40)):
        for c, cls in enumerate(("dark", "bright")):
            for i in range(n // 2):
                path = write_png(root / split / cls / f"{i:03d}.png", size=(28, 28),
                                 seed=1000 * c + i + (0 if split == "train" else 500))
                img = np.asarray(Image.open(path)).astype(float) * 0.6 + 100 * c
                Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(path)
    return root


def test_cli_audit_writes_card_and_report_shows_it(folder_dataset, tmp_path):
    out = tmp_path / "audit"
    result = _cli("--dataset", f"folder:{folder_dataset}:test", "--extractor", "pixels",
                  "-n", "16", "--n-pool", "40", "--bootstrap", "5", "--out", out,
                  "--failures", "blur,class_drop,label_swap,memorisation")
    assert result.exit_code == 0, result.output
    assert "Trust card" in result.output
    audit = json.loads((out / "audit.json").read_text())
    assert audit["kind"] == "audit" and audit["settings"]["n"] == 16
    space = audit["spaces"]["pixels16"]
    assert set(space["cells"]) == {"blur", "class_drop", "label_swap", "memorisation"}
    for failure, cells in space["cells"].items():
        for cell in cells.values():
            assert cell["verdict"] in (DETECTED, LATE, MISSED, WRONG, UNAVAILABLE)
            assert len(cell["levels"]) == 5 and cell["levels"][0]["level"] == 0
            assert (out / audit["figures"]["pixels16"][failure]).is_file()
    # label swaps leave the pixels alone: unconditional metrics do not move at all
    swap = space["cells"]["label_swap"]
    assert len({lv["value"] for lv in swap["fid"]["levels"]}) == 1
    assert swap["fid"]["verdict"] == MISSED
    assert swap["intra_fid"]["levels"][4]["value"] > swap["intra_fid"]["levels"][0]["value"]
    assert audit["failures"]["class_drop"]["new_images"] == [0, 0, 0, 0, 0]
    assert (out / "card.md").read_text().count("|") > 10
    card = (out / "card.html").read_text()
    assert "Not scored in this space: is" in card and "&lt;" not in card     # IS: no logits

    # a run on the same dataset and size: its row links to the card shown in its section
    results_dir = tmp_path / "eval"
    results_dir.mkdir()
    res = generation_results("gan", 3, 50.0, run_dir=None, dataset=audit["dataset"]["name"],
                             image_size=28, classes=["bright", "dark"], utility=False,
                             figures=())
    res["provenance"]["extractor"] = {"name": "pixels16"}
    (results_dir / "results.json").write_text(json.dumps(res))
    report_out = tmp_path / "report"
    from medsyn.reports import build_report

    built = build_report([results_dir, out], report_out)
    html = (report_out / "index.html").read_text()
    assert not [p for p in built.problems if "audit.json" in str(p) or "trust" in str(p)]
    assert 'id="trust-card-1"' in html and 'href="#trust-card-1-pixels16"' in html
    assert 'class="trust-card"' in html and "Trust cards of datasets without" not in html
    assert list((report_out / "assets" / "trust-card-1").glob("*.png"))
