"""EHR models: what the generic model tests cannot see (RETAIN's contributions, Deepr's
code sentence, order and time sensitivity, bad inputs) and a fast planted-signal check.

The generic tests (tests/test_models.py) already run every EHR model through shapes,
gradients, overfitting, determinism, batch independence and padding invariance."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from medtorch.errors import ModelError
from medtorch.models import create_model
from medtorch.models.deepr import code_sentence
from medtorch.models.ehr_parts import multi_hot, time_features
from medtorch.models.registry import ModelExample, get_entry
from medtorch.models.retain import reverse_rows

VOCAB = 30


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _visits(n: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    ex = get_entry("visit_gru").example
    x, t = ex.make_inputs(n, generator=torch.Generator().manual_seed(seed))
    return x, t


def _planted_module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "ehr" / "planted.py"
    spec = importlib.util.spec_from_file_location("ehr_planted", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ehr_planted"] = mod  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


# -- the example inputs follow the EHR arrays contract ------------------------------------------
def test_example_codes_follow_the_contract() -> None:
    x, t = _visits(64)
    assert x.dtype == torch.int64 and t.dtype == torch.float32
    assert x.shape == (64, 5, 4) and t.shape == (64, 5)
    mask = x[:, :, 0] != 0
    assert mask[:, 0].all(), "every sample has at least one visit"
    # left-aligned: once a visit (or a code in a visit) is padding, the rest is too
    assert not (mask[:, 1:] & ~mask[:, :-1]).any()
    real = x != 0
    assert not (real[..., 1:] & ~real[..., :-1]).any()
    assert ((x >= 0) & (x < VOCAB)).all() and (x == 1).any(), "unknown code 1 is drawn too"
    assert (t[~mask] == 0).all() and (t[mask] > 0).all()
    # days to the prediction time: the oldest visit is the farthest
    assert ((t[:, :-1] >= t[:, 1:]) | ~mask[:, 1:]).all()
    assert mask.sum(1).min() < 5 < mask.sum(1).max() + 1, "lengths vary"


def test_float_examples_are_unchanged() -> None:
    ex = ModelExample(shapes=((2, 24),))
    (x,) = ex.make_inputs(3, generator=torch.Generator().manual_seed(0))
    assert ex.n_inputs == 2 and x.dtype == torch.float32 and x.shape == (3, 2, 24)
    assert not ex.has_codes and ex.pad_inputs((x,), 2)[0] is x


def test_event_example_values_follow_the_codes() -> None:
    ex = get_entry("event_gru").example
    x, t, v = ex.make_inputs(32, generator=torch.Generator().manual_seed(0))
    assert ex.n_inputs == VOCAB and x.shape == t.shape == v.shape == (32, 8)
    pad = x == 0
    assert (t[pad] == 0).all() and (v[pad] == 0).all() and (v[~pad] != 0).all()
    # hours from admission start: increasing over the real events, earlier admissions < 0
    assert ((t[:, 1:] >= t[:, :-1]) | pad[:, 1:]).all() and (t[~pad] < 0).any()


# -- shared blocks ----------------------------------------------------------------------------
def test_multi_hot_marks_presence_and_ignores_padding() -> None:
    x = torch.tensor([[[2, 5, 0], [5, 0, 0]], [[1, 0, 0], [0, 0, 0]]])
    bag = multi_hot(x, 6)
    assert bag.tolist() == [[0, 0, 1, 0, 0, 1], [0, 1, 0, 0, 0, 0]]


def test_time_features_are_log_scaled_and_zero_on_padding() -> None:
    t = torch.tensor([[100.0, 10.0, 0.0]])
    mask = torch.tensor([[True, True, False]])
    f = time_features(t, mask)
    assert torch.allclose(f[0, :, 0], torch.log1p(torch.tensor([100.0, 10.0, 0.0])))
    assert torch.allclose(f[0, :, 1], torch.log1p(torch.tensor([0.0, 90.0, 0.0])))


def test_reverse_rows_reverses_only_the_real_visits() -> None:
    h = torch.arange(10.0).reshape(2, 5)
    out = reverse_rows(h, torch.tensor([3, 5]))
    assert out.tolist() == [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]]
    assert torch.equal(reverse_rows(out, torch.tensor([3, 5])), h)


def test_deepr_sentence_has_gap_tokens_between_visits() -> None:
    x = torch.tensor([[[5, 6, 0], [7, 0, 0], [8, 0, 0], [0, 0, 0]]])
    t = torch.tensor([[500.0, 400.0, 10.0, 0.0]])  # gaps 100 and 390 days
    edges = torch.tensor([30.0, 90.0, 180.0, 365.0])
    tokens, lengths = code_sentence(x, t, 20, edges)
    # 100 days is bucket 2 (3-6 months), 390 days bucket 4 (12+ months): ids 20 + bucket
    assert tokens[0, :6].tolist() == [5, 6, 22, 7, 24, 8]
    assert lengths.tolist() == [6] and (tokens[0, 6:] == 0).all()


# -- order and time -----------------------------------------------------------------------------
def _eval(name: str, **params) -> torch.nn.Module:
    torch.manual_seed(0)
    ex = get_entry(name).example
    return create_model(name, n_inputs=VOCAB, n_classes=2, **{**ex.params, **params}).eval()


def _reverse_visits(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = (x[:, :, 0] != 0).sum(1)
    return reverse_rows(x, lengths), reverse_rows(t, lengths)


@pytest.mark.parametrize("name", ["visit_gru", "visit_lstm", "retain", "deepr"])
def test_sequence_models_read_the_visit_order_itself(name: str) -> None:
    # the same visits and days, in reverse order: the recurrence or convolution sees it
    x, t = _visits()
    x_rev, _ = _reverse_visits(x, t)
    several = (x[:, :, 0] != 0).sum(1) > 1
    params = {"time_features": False} if name != "deepr" else {}
    model = _eval(name, **params)
    with torch.no_grad():
        assert not torch.allclose(model(x, t)[several], model(x_rev, t)[several], atol=1e-4)


def test_transformer_reads_order_from_the_times_only() -> None:
    x, t = _visits()
    x_rev, t_rev = _reverse_visits(x, t)
    several = (x[:, :, 0] != 0).sum(1) > 1
    with torch.no_grad():
        timed = _eval("visit_transformer")
        assert not torch.allclose(timed(x, t)[several], timed(x_rev, t)[several], atol=1e-4)
        # visits moved with their own days: the same set of (visit, time) pairs
        assert torch.allclose(timed(x, t), timed(x_rev, t_rev), atol=1e-5)
        untimed = _eval("visit_transformer", time_encoding="none")
        assert torch.allclose(untimed(x, t), untimed(x_rev, t), atol=1e-5)


def test_bag_of_codes_ignores_order_and_times() -> None:
    x, t = _visits()
    x_rev, t_rev = _reverse_visits(x, t)
    model = _eval("bag_logreg")
    with torch.no_grad():
        assert torch.allclose(model(x, t), model(x_rev, t_rev * 3.0))
        assert model(x.reshape(len(x), -1)).shape == (len(x), 2), "any layout of codes"


@pytest.mark.parametrize("name", ["visit_gru", "retain", "visit_transformer", "deepr"])
def test_times_change_the_output_unless_turned_off(name: str) -> None:
    x, t = _visits()
    with torch.no_grad():
        model = _eval(name)
        assert not torch.allclose(model(x, t), model(x, t * 7.0), atol=1e-4)
        if name in ("visit_gru", "retain"):
            off = _eval(name, time_features=False)
            assert torch.equal(off(x, t), off(x, t * 7.0))
        if name == "visit_transformer":
            off = _eval(name, time_encoding="none")
            assert torch.equal(off(x, t), off(x, t * 7.0))


def test_event_models_use_values_and_times() -> None:
    ex = get_entry("event_gru").example
    x, t, v = ex.make_inputs(12, generator=torch.Generator().manual_seed(0))
    for name in ("event_gru", "event_transformer"):
        model = _eval(name)
        with torch.no_grad():
            out = model(x, t, v)
            assert not torch.allclose(out, model(x, t, v + (x != 0)), atol=1e-4)
            assert not torch.allclose(out, model(x, t * 3.0, v), atol=1e-4)


# -- RETAIN's contributions -----------------------------------------------------------------------
@pytest.mark.parametrize("bag_mode", ["sum", "mean"])
def test_retain_contributions_sum_to_the_log_odds(bag_mode: str) -> None:
    x, t = _visits(16)
    model = _eval("retain", bag_mode=bag_mode).double()
    alpha, contrib = model.contributions(x, t.double())
    mask = x[:, :, 0] != 0
    assert alpha.shape == mask.shape and contrib.shape == x.shape
    assert torch.allclose(alpha.sum(1), torch.ones(16, dtype=torch.float64))
    assert (alpha[~mask] == 0).all() and (contrib[x == 0] == 0).all()
    with torch.no_grad():
        logits = model(x, t.double())
    _, bias = model.score_weights()
    log_odds = logits[:, 1] - logits[:, 0]
    assert torch.allclose(contrib.sum((1, 2)) + bias, log_odds, atol=1e-10)


def test_retain_contributions_per_label_of_a_multilabel_model() -> None:
    x, t = _visits(8)
    torch.manual_seed(0)
    model = create_model("retain", n_inputs=VOCAB, n_classes=4, embed_dim=16, alpha_hidden=8,
                         beta_hidden=8).double().train()  # fmt: skip
    with pytest.raises(ModelError, match="target class index"):
        model.contributions(x, t.double())
    _, contrib = model.contributions(x, t.double(), target=3)
    assert model.training, "contributions leave the training mode as it was"
    with torch.no_grad():
        logit = model.eval()(x, t.double())[:, 3]
    assert torch.allclose(contrib.sum((1, 2)) + model.head.bias[3], logit, atol=1e-10)
    with pytest.raises(ModelError, match=r"target in 0\.\.3"):
        model.contributions(x, t.double(), target=4)


def test_retain_explains_each_sample_of_a_multilabel_model_for_its_top_label() -> None:
    # the pipeline's explanations call explain(): it crashed for more than two outputs
    x, t = _visits(6)
    torch.manual_seed(1)
    model = create_model("retain", n_inputs=VOCAB, n_classes=5, embed_dim=16, alpha_hidden=8,
                         beta_hidden=8).double().train()  # fmt: skip
    alpha, contrib = model.explain(x, t.double())
    assert model.training and alpha.shape == x.shape[:2] and contrib.shape == x.shape
    with torch.no_grad():
        logits = model.eval()(x, t.double())
    top = logits.argmax(1)
    assert len(set(top.tolist())) > 1, "the check needs samples whose top label differs"
    expected = logits.gather(1, top[:, None])[:, 0]
    assert torch.allclose(contrib.sum((1, 2)) + model.head.bias[top], expected, atol=1e-10)


# -- bad inputs and params ------------------------------------------------------------------------
def test_float_codes_are_rejected_with_a_hint() -> None:
    x, t = _visits(4)
    with pytest.raises(
        ModelError,
        match=r"expected int64 code indices .* got 'float32' in model input x; .*normalisation",
    ):
        _eval("visit_gru")(x.float(), t)  # fmt: skip


def test_codes_outside_the_vocabulary_are_rejected() -> None:
    x, t = _visits(4)
    with pytest.raises(ModelError, match=r"code ids in 0\.\.29 .* got '0\.\.30' in model input x"):
        _eval("retain")(x.clamp(max=0) + (x != 0) * 30, t)


def test_wrong_layout_and_missing_times_are_rejected() -> None:
    x, t = _visits(4)
    with pytest.raises(ModelError, match=r"expected 3 axes \(N, V, C\) visits"):
        _eval("visit_transformer")(x[:, :, 0], t)
    with pytest.raises(ModelError, match=r"times t of shape \(4, 5\)"):
        _eval("visit_gru")(x)
    with pytest.raises(ModelError, match="model input v"):
        _eval("event_gru")(x[:, :, 0], t, t[:, :2])


@pytest.mark.parametrize(
    ("name", "params", "key"),
    [
        ("visit_gru", {"bag_mode": "max"}, "bag_mode"),
        ("visit_transformer", {"pooling": "first"}, "pooling"),
        ("visit_transformer", {"embed_dim": 30, "n_heads": 4}, "embed_dim"),
        ("event_transformer", {"time_encoding": "rotary"}, "time_encoding"),
        ("deepr", {"kernel_size": 4}, "kernel_size"),
        ("deepr", {"gap_days": [0, 30]}, "gap_days"),
        ("retain", {"dropout": 1.0}, "dropout"),
    ],
)
def test_invalid_params_name_their_key(name: str, params: dict, key: str) -> None:
    with pytest.raises(ModelError, match=rf"in model\.params\.{key};"):
        create_model(name, n_inputs=VOCAB, n_classes=2, **params)


# -- planted signal: the order of two codes carries the label -----------------------------------
def test_planted_generator_writes_a_meds_table_whose_bags_cannot_tell(tmp_path: Path) -> None:
    ep = _planted_module()
    data = ep.make_planted(400, seed=3, out_dir=tmp_path)
    import polars as pl

    events = pl.read_parquet(tmp_path / "events.parquet")
    labels = pl.read_parquet(tmp_path / "labels.parquet")
    assert events.columns == ["subject_id", "time", "code", "numeric_value"]
    assert (
        events.schema["time"] == pl.Datetime("us") and events.schema["numeric_value"] == pl.Float32
    )
    assert labels.columns == ["subject_id", "prediction_time", "boolean_value"]
    assert data.x.shape == (400, 8, 8) and data.x.dtype == np.int64
    assert 0.3 < data.y.mean() < 0.55
    # the label is exactly "A in an earlier visit than B", read back from the arrays
    a, b = data.vocab[ep.CODE_A], data.vocab[ep.CODE_B]
    # first visit holding each planted code (99: none)
    va, vb = (np.where((data.x == c).any(2), np.arange(8), 99).min(1) for c in (a, b))
    assert np.array_equal(data.y, ((va < 99) & (vb < 99) & (va < vb)).astype(np.int64))
    both = (va < 99) & (vb < 99)
    assert data.y[both].min() == 0 and data.y[both].max() == 1, "same codes, either label"
    assert (data.t[data.x[:, :, 0] == 0] == 0).all() and (data.t[data.x[:, :, 0] != 0] >= 1).all()


@pytest.mark.slow
def test_planted_order_signal_is_learned_by_sequence_models_not_by_bags() -> None:
    ep = _planted_module()
    data = ep.make_planted(1500, seed=0)
    aurocs = {}
    for name in ("bag_logreg", "visit_gru", "retain"):
        model, _, aurocs[name], _ = ep.train(name, data, seed=0, epochs=10)
        if name == "retain":
            frac_a, _, n_pos = ep.retain_top_code(model, data)
    assert aurocs["visit_gru"] >= 0.95, aurocs
    assert aurocs["retain"] >= 0.95, aurocs
    assert aurocs["bag_logreg"] < 0.8, aurocs
    assert n_pos > 50 and frac_a > 0.5, (frac_a, n_pos)


def test_the_trainer_fits_an_ehr_model_on_contract_arrays() -> None:
    # the project's Trainer on an ArrayDataset of int64 codes and float days, as the EHR
    # data layer will build it: model(*inputs.values()) = model(x, t)
    from medtorch.config import OptimConfig, TrainerConfig
    from medtorch.data.dataset import ArrayDataset
    from medtorch.train import Trainer

    ep = _planted_module()
    data = ep.make_planted(800, seed=1)

    def part(name: str) -> ArrayDataset:
        idx = data.split[name]
        inputs = {"x": data.x[idx], "t": data.t[idx]}
        return ArrayDataset(inputs, data.y[idx], idx.astype(str), ["negative", "positive"])

    torch.manual_seed(0)
    model = create_model("visit_gru", n_inputs=len(data.vocab) + 2, n_classes=2,
                         embed_dim=32, hidden_size=32, dropout=0.1)  # fmt: skip
    cfg = TrainerConfig(max_epochs=8, batch_size=64, progress=False, seed=0, num_threads=1)
    trainer = Trainer(model, OptimConfig(lr=1e-2), cfg, None, ["negative", "positive"])
    history = trainer.fit(part("train"), part("valid"))
    assert max(row["valid_auroc"] for row in history) > 0.9, history[-1]
    test = part("test")
    proba = trainer.predict_proba(test, checkpoint="best")
    assert proba.shape == (len(test), 2)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(test.y, proba[:, 1]) > 0.9
