"""The RR gate: a second stage (logistic or boosted trees) re-splitting the N + S probability
by rhythm."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medtorch.errors import ModelError
from medtorch.models import create_model

SMALL = {"base_filters": 4, "n_blocks": 2, "kernel_size": 5, "n_rr": 3, "rr_gate_features": 2}


def _beats(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """RR features where class 1 (S) has a short first feature and class 2 (V) anything."""
    rng = np.random.default_rng(seed)
    y = rng.choice([0, 1, 2], size=n, p=[0.7, 0.2, 0.1])
    rr = rng.normal(0.0, 0.3, size=(n, 3))
    rr[y == 1, 0] -= 1.5
    return rr.astype(np.float32), y


def _model(**kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("hannun_resnet1d_rr", n_inputs=1, n_classes=3, **{**SMALL, **kw}).eval()


def test_unfitted_gate_leaves_logits_alone() -> None:
    gated, plain = _model(), _model(rr_gate_features=0)
    plain.load_state_dict(gated.state_dict(), strict=False)
    x, rr = torch.randn(5, 1, 32), torch.randn(5, 3)
    assert torch.equal(gated(x, rr), plain(x, rr))


@pytest.mark.parametrize("method", ["logistic", "trees"])
def test_fitted_gate_splits_only_the_pair_by_rhythm(method: str) -> None:
    model = _model(rr_gate_method=method)
    rr, y = _beats()
    summary = model.fit_after_training({"x": np.zeros((len(y), 1, 32)), "rr": rr}, y)
    assert summary["n_beats"] == {"0": int((y == 0).sum()), "1": int((y == 1).sum())}
    if method == "logistic":
        assert summary["coef"][0] < 0  # a short first RR feature means S

    x = torch.randn(len(y), 1, 32)
    with torch.no_grad():
        p = torch.softmax(model(x, torch.from_numpy(rr)), 1)
        model.rr_gate.active = False
        p0 = torch.softmax(model(x, torch.from_numpy(rr)), 1)
    assert torch.allclose(p.sum(1), torch.ones(len(y)), atol=1e-5)
    assert torch.allclose(p[:, 2], p0[:, 2], atol=1e-6)  # V untouched
    assert torch.allclose(p[:, 0] + p[:, 1], p0[:, 0] + p0[:, 1], atol=1e-5)
    share_s = (p[:, 1] / (p[:, 0] + p[:, 1])).numpy()
    assert share_s[y == 1].mean() > 0.8 > 0.2 > share_s[y == 0].mean()


def test_tree_gate_walks_sklearns_trees_exactly() -> None:
    """The tensor copy of the boosted trees gives sklearn's decision function."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from medtorch.models.rr_gate import MAX_LEAVES, MAX_TREES, RRGate

    rr, y = _beats(3000, seed=1)
    gate = RRGate(2, n_classes=3, method="trees", weight=5.0)
    summary = gate.fit(rr, y)
    assert 1 <= summary["n_trees"] <= MAX_TREES and gate.n_steps == summary["max_depth"] >= 1
    assert gate.n_trees == summary["n_trees"]  # only the fitted trees are walked
    pick = y <= 1
    ref = HistGradientBoostingClassifier(max_iter=MAX_TREES, max_leaf_nodes=MAX_LEAVES,
                                         early_stopping=False, class_weight={0: 1.0, 1: 5.0},
                                         random_state=0)  # fmt: skip
    ref.fit(rr[pick, :2].astype(np.float64), (y[pick] == 1).astype(int))
    test_rr, _ = _beats(500, seed=2)
    ours = gate.score(torch.from_numpy(test_rr)).numpy()
    np.testing.assert_allclose(ours, ref.decision_function(test_rr[:, :2]), atol=1e-9)


def test_tree_gate_refit_keeps_no_tree_of_the_earlier_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    from medtorch.models import rr_gate
    from medtorch.models.rr_gate import MAX_TREES, RRGate

    rr, y = _beats(3000, seed=1)
    refit = RRGate(2, n_classes=3, method="trees", weight=5.0)
    assert refit.fit(rr, y)["n_trees"] == MAX_TREES  # no early stopping: all trees
    monkeypatch.setattr(rr_gate, "MAX_TREES", 20)  # a later fit with fewer trees
    fresh = RRGate(2, n_classes=3, method="trees", weight=5.0)
    assert fresh.fit(rr, y)["n_trees"] == 20
    refit.fit(rr, y)
    test_rr = torch.from_numpy(_beats(200, seed=4)[0])
    assert refit.n_trees == fresh.n_trees == 20
    assert torch.equal(refit.score(test_rr), fresh.score(test_rr))


def test_tree_gate_fit_does_not_depend_on_the_beats_order() -> None:
    from medtorch.models.rr_gate import RRGate

    rr, y = _beats(12000, seed=5)  # > 10,000 beats: sklearn's default would stop early
    order = np.random.default_rng(0).permutation(len(y))
    a = RRGate(2, n_classes=3, method="trees", weight=5.0)
    b = RRGate(2, n_classes=3, method="trees", weight=5.0)
    a.fit(rr, y)
    b.fit(rr[order], y[order])
    test_rr = torch.from_numpy(_beats(500, seed=6)[0])
    torch.testing.assert_close(a.score(test_rr), b.score(test_rr), atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", ["logistic", "trees"])
def test_fitted_gate_survives_the_state_dict_and_onnx(tmp_path: Path, method: str) -> None:
    pytest.importorskip("onnxruntime")
    from medtorch.export import check_onnx_parity, export_onnx

    model = _model(rr_gate_method=method)
    rr, y = _beats()
    model.fit_after_training({"x": np.zeros((len(y), 1, 32)), "rr": rr}, y)
    fresh = _model(rr_gate_method=method)
    assert not fresh.rr_gate.active
    fresh.load_state_dict(model.state_dict())
    assert fresh.rr_gate.active
    example = (torch.randn(8, 1, 32), torch.from_numpy(rr[:8]))
    assert torch.equal(fresh(*example), model(*example))
    path = export_onnx(fresh, example, tmp_path / "g.onnx", input_names=["x", "rr"])
    assert check_onnx_parity(fresh, path, example) < 1e-4


def test_gate_errors_name_the_parameter() -> None:
    with pytest.raises(ModelError, match=r"model\.params\.rr_gate_features;"):
        _model(rr_gate_features=4)  # more than n_rr
    with pytest.raises(ModelError, match=r"model\.params\.rr_gate_classes;"):
        _model(rr_gate_classes=[1, 1])
    with pytest.raises(ModelError, match=r"got 'forest' in model\.params\.rr_gate_method;"):
        _model(rr_gate_method="forest")
    with pytest.raises(ModelError, match="training beats of both classes 0 and 1"):
        rr, y = _beats()
        _model().fit_after_training({"x": rr, "rr": rr}, np.where(y == 1, 0, y))


def test_pipeline_fits_the_gate_on_the_named_splits_and_patches_checkpoints(
    tmp_path: Path,
) -> None:
    """trainer.after_training_on=train+valid fits on both splits' beats, and every checkpoint
    carries the fitted gate; a bad value is a one-line config error naming the key."""
    from medtorch.config import load_config
    from medtorch.data.dataset import ArrayDataset
    from medtorch.errors import ConfigError
    from medtorch.pipeline import fit_after_training
    from medtorch.train import checkpoint as ckpt

    def part(seed: int) -> ArrayDataset:
        rr, y = _beats(seed=seed)
        x = np.zeros((len(y), 1, 32), np.float32)
        return ArrayDataset({"x": x, "rr": rr}, y, np.zeros(len(y)), ["N", "S", "V"])

    train, valid = part(0), part(1)
    model = _model(rr_gate_method="trees")
    (tmp_path / "checkpoints").mkdir()
    ckpt.save_atomic({"model": model.state_dict()}, tmp_path / "checkpoints" / "best.pt")
    summary = fit_after_training(model, {"train": train, "valid": valid}, tmp_path)
    assert summary is not None and summary["fitted_on"] == "train+valid"
    n_s = int((train.y == 1).sum() + (valid.y == 1).sum())
    assert summary["n_beats"]["1"] == n_s
    saved = ckpt.load_checkpoint(tmp_path / "checkpoints" / "best.pt")["model"]
    assert bool(saved["rr_gate.fitted"].item())
    fresh = _model(rr_gate_method="trees")
    fresh.load_state_dict(saved)
    x, rr = torch.zeros(len(valid.y), 1, 32), torch.from_numpy(valid.inputs["rr"])
    with torch.no_grad():
        assert torch.allclose(fresh(x, rr), model(x, rr))

    raw = {"data": {"dataset": "mitdb"}, "task": {"name": "mitdb_aami_beats"},
           "model": {"name": "hannun_resnet1d_rr"}}  # fmt: skip
    assert load_config(raw).trainer.after_training_on == "train"
    with pytest.raises(ConfigError, match="after_training_on") as err:
        load_config(raw, ["trainer.after_training_on=test"])
    assert "\n" not in str(err.value)
