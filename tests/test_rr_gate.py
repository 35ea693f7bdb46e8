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


def _groups(n: int, k: int = 8) -> np.ndarray:
    """k made-up records, beats dealt round-robin."""
    return np.array([f"r{i % k}" for i in range(n)])


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

    model = _model(rr_gate_method=method, rr_gate_min_ppv=0.9)  # with an operating point
    rr, y = _beats()
    model.fit_after_training({"x": np.zeros((len(y), 1, 32)), "rr": rr}, y, _groups(len(y)))
    assert model.rr_gate.offset.item() != 0.0
    fresh = _model(rr_gate_method=method, rr_gate_min_ppv=0.9)
    assert not fresh.rr_gate.active
    fresh.load_state_dict(model.state_dict())
    assert fresh.rr_gate.active
    example = (torch.randn(8, 1, 32), torch.from_numpy(rr[:8]))
    assert torch.equal(fresh(*example), model(*example))
    path = export_onnx(fresh, example, tmp_path / "g.onnx", input_names=["x", "rr"])
    assert check_onnx_parity(fresh, path, example) < 1e-4


@pytest.mark.parametrize("method", ["logistic", "trees"])
def test_operating_point_is_the_most_sensitive_with_the_cv_ppv_floor(method: str) -> None:
    """rr_gate_min_ppv: the threshold comes from record-grouped CV on the fitting beats (here
    recomputed by hand with sklearn), and the gate calls S where score - offset > 0."""
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict

    from medtorch.models.rr_gate import RRGate

    rr, y = _beats(1500, seed=7)
    rr[:, 0] += np.random.default_rng(1).normal(0, 0.6, len(y))  # overlap: a real trade-off
    groups = _groups(len(y))
    points = {}
    for floor in (0.6, 0.9):
        gate = RRGate(2, n_classes=3, method=method, weight=10.0, min_ppv=floor)
        point = gate.fit(rr, y, groups)["operating_point"]
        assert point["met"] and point["cv_+P"] >= floor
        assert point["cv"] == "8 group folds (one group each)"
        assert gate.offset.item() == point["offset"]
        # the same CV by hand: Se and +P at the chosen offset, and no lower offset keeps +P
        pick = y <= 1
        z, t = rr[pick, :2].astype(np.float64), (y[pick] == 1).astype(int)
        est = RRGate(2, n_classes=3, method=method, weight=10.0).estimator()
        if method == "logistic":
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            est = make_pipeline(StandardScaler(), est)
        cv = cross_val_predict(est, z, t, groups=groups[pick], cv=LeaveOneGroupOut(),
                               method="decision_function")  # fmt: skip
        called = cv > point["offset"]
        assert round(float(called[t == 1].mean()), 4) == point["cv_Se"]
        assert round(float(t[called].mean()), 4) == point["cv_+P"]
        for v in np.unique(cv[cv < point["offset"]]):  # every lower threshold that finds
            more = cv >= v  # more S beats falls below the floor
            if more[t == 1].mean() > called[t == 1].mean():
                assert t[more].mean() < floor
        # the model's decision: S where the shifted score is positive
        logits = torch.zeros(len(y), 3)
        with torch.no_grad():
            pred = gate(logits, torch.from_numpy(rr)).argmax(1).numpy()
            raw = gate.score(torch.from_numpy(rr)).numpy()
        np.testing.assert_array_equal(pred == 1, raw > point["offset"])
        points[floor] = point
    assert points[0.6]["cv_Se"] >= points[0.9]["cv_Se"]
    assert points[0.6]["offset"] < points[0.9]["offset"]


def test_operating_point_out_of_reach_says_so(caplog: pytest.LogCaptureFixture) -> None:
    from medtorch.models.rr_gate import RRGate

    rng = np.random.default_rng(3)
    y = rng.choice([0, 1], size=600, p=[0.8, 0.2])
    rr = rng.normal(size=(600, 2)).astype(np.float32)  # no signal: +P stays near 0.2
    gate = RRGate(2, n_classes=2, method="logistic", min_ppv=0.95)
    point = gate.fit(rr, y, _groups(600))["operating_point"]
    assert not point["met"] and point["cv_+P"] < 0.95
    assert point["note"] == "floor not reached: the most predictive threshold used"
    assert "no threshold reaches a cross-validated +P of 0.950" in caplog.text
    # S beats in one record only: nothing to cross-validate; the fit's own threshold, said so
    one = np.where(np.arange(600) < 300, "a", "b")
    point = gate.fit(rr, np.where(one == "a", y, 0), one)["operating_point"]
    assert not point["met"] and point["offset"] == 0.0 == gate.offset.item()
    assert point["note"].startswith("not cross-validated: S beats in 1 of 2 groups")
    assert "too few to cross-validate" in caplog.text


def test_state_dict_from_before_operating_points_loads_with_offset_zero() -> None:
    model = _model(rr_gate_method="trees")
    rr, y = _beats()
    model.fit_after_training({"x": np.zeros((len(y), 1, 32)), "rr": rr}, y)
    old = {k: v for k, v in model.state_dict().items() if k != "rr_gate.offset"}
    fresh = _model(rr_gate_method="trees")
    fresh.load_state_dict(old)
    assert fresh.rr_gate.active and fresh.rr_gate.offset.item() == 0.0
    x = torch.randn(6, 1, 32)
    assert torch.equal(fresh(x, torch.from_numpy(rr[:6])), model(x, torch.from_numpy(rr[:6])))


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
    for bad in (0.0, 1.0, "half", True):
        with pytest.raises(ModelError, match=r"model\.params\.rr_gate_min_ppv;"):
            _model(rr_gate_min_ppv=bad)
    rr, y = _beats()
    with pytest.raises(ModelError, match=r"one group id per beat .*rr_gate_min_ppv=0\.5"):
        _model(rr_gate_min_ppv=0.5).fit_after_training({"x": rr, "rr": rr}, y)


def test_pipeline_fits_the_gate_on_the_named_splits_and_patches_checkpoints(
    tmp_path: Path,
) -> None:
    """model.params.after_training_on=train+valid fits on both splits' beats, and every checkpoint
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

    # the setting is the model's own (model.params.after_training_on), validated by it
    assert _model().after_fit_on == ("train",)
    with pytest.raises(ModelError, match="after_training_on") as err:
        create_model("hannun_resnet1d_rr", 1, 3, after_training_on="test")
    assert "\n" not in str(err.value)
    # a recipe with the old key is told where it went; a run folder's is moved
    raw = {"data": {"dataset": "mitdb"}, "task": {"name": "mitdb_aami_beats"},
           "model": {"name": "hannun_resnet1d_rr"}}  # fmt: skip
    with pytest.raises(ConfigError, match=r"model\.params\.after_training_on") as err2:
        load_config(raw, ["trainer.after_training_on=train+valid"])
    assert "\n" not in str(err2.value)
    from medtorch.config import migrate_moved_keys

    old = {**raw, "trainer": {"after_training_on": "train+valid"}}
    moved = load_config(migrate_moved_keys(old))
    assert moved.model.params["after_training_on"] == "train+valid"


@pytest.mark.parametrize("method", ["logistic", "trees"])
def test_gate_on_listed_columns_is_the_gate_on_those_columns(tmp_path: Path, method: str) -> None:
    """rr_gate_features as a list reads those columns of rr, in that order, and exports."""
    pytest.importorskip("onnxruntime")
    from medtorch.export import check_onnx_parity, export_onnx
    from medtorch.models.rr_gate import RRGate

    rr, y = _beats()
    rr = np.concatenate([rr[:, 1:], rr[:, :1]], axis=1)  # the S-telling feature now last
    listed = RRGate([2, 1], n_classes=3, method=method)
    listed.fit(rr, y)
    alone = RRGate(2, n_classes=3, method=method)
    alone.fit(rr[:, [2, 1]], y)
    t = torch.from_numpy(rr)
    torch.testing.assert_close(listed.score(t), alone.score(t[:, [2, 1]]), atol=1e-9, rtol=0)
    model = _model(rr_gate_method=method, rr_gate_features=[2, 1])
    model.fit_after_training({"x": np.zeros((len(y), 1, 32)), "rr": rr}, y)
    example = (torch.randn(8, 1, 32), t[:8])
    path = export_onnx(model, example, tmp_path / "g.onnx", input_names=["x", "rr"])
    assert check_onnx_parity(model, path, example) < 1e-4
    with pytest.raises(ModelError, match=r"\(N, >= 3\)"):
        listed.fit(rr[:, :2], y)


def test_network_reads_only_its_leading_rr_features() -> None:
    """rr_net_features=k: the network's RR MLP sees rr[:, :k]; the rest is the gate's."""
    model = _model(rr_net_features=2, rr_gate_features=[2])
    assert model.rr_mlp[0].in_features == 2
    x, rr = torch.randn(4, 1, 32), torch.randn(4, 3)
    changed = rr.clone()
    changed[:, 2] += 5.0
    assert torch.equal(model(x, rr), model(x, changed))  # the gate is not fitted yet


@pytest.mark.parametrize(
    ("key", "value"),
    [("rr_gate_features", [0, 3]), ("rr_gate_features", []), ("rr_gate_features", [True]),
     ("rr_net_features", 4), ("rr_net_features", -1)],
)  # fmt: skip
def test_column_errors_name_the_parameter(key: str, value: object) -> None:
    with pytest.raises(ModelError, match=f"model.params.{key}"):
        _model(**{key: value})
