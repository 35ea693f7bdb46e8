"""Model zoo tests. Every registered model gets the same checks, built from its registry
example (shapes + small params), so a model added later is tested with no edit here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from medtorch.errors import ModelError
from medtorch.models import create_model, list_models, model_info, model_params, register_model
from medtorch.models.registry import get_entry

BATCH = 16


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # These models are tiny: one thread is faster than several competing for 2 busy cores.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _build(name: str) -> tuple[nn.Module, tuple[torch.Tensor, ...], int]:
    ex = get_entry(name).example
    torch.manual_seed(0)
    model = create_model(name, n_inputs=ex.n_inputs, n_classes=ex.n_classes, **ex.params)
    inputs = ex.make_inputs(BATCH, generator=torch.Generator().manual_seed(1))
    return model, inputs, ex.n_classes


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list_models())
def test_forward_shape_gradients_no_nan(name: str) -> None:
    model, inputs, n_classes = _build(name)
    out = model(*inputs)
    assert out.shape == (BATCH, n_classes)
    assert torch.isfinite(out).all()
    out.logsumexp(dim=1).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient reaches {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {pname}"
        assert p.grad.abs().sum() > 0, f"{name}: all-zero gradient in {pname}"


@pytest.mark.parametrize("name", list_models())
def test_overfits_one_small_batch(name: str) -> None:
    model, inputs, n_classes = _build(name)
    y = torch.randint(0, n_classes, (BATCH,), generator=torch.Generator().manual_seed(2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    first = loss_fn(model(*inputs), y).item()
    acc = 0.0
    for step in range(300):
        opt.zero_grad()
        loss = loss_fn(model(*inputs), y)
        loss.backward()
        opt.step()
        if step % 10 == 9:
            model.eval()
            with torch.no_grad():
                acc = (model(*inputs).argmax(1) == y).float().mean().item()
            model.train()
            if acc >= 0.9:
                break
    assert acc >= 0.9, f"{name}: train accuracy {acc:.2f} after {step + 1} steps"
    assert loss.item() < first


@pytest.mark.parametrize("name", list_models())
def test_deterministic_given_the_seed(name: str) -> None:
    model, inputs, _ = _build(name)
    model.eval()
    with torch.no_grad():
        first = model(*inputs)
        again = model(*inputs)
        rebuilt = _build(name)[0].eval()(*inputs)
    assert torch.equal(first, again), f"{name}: two eval passes differ"
    assert torch.equal(first, rebuilt), f"{name}: the same seed built a different model"


@pytest.mark.parametrize("name", list_models())
def test_samples_do_not_see_each_other(name: str) -> None:
    # eval mode: a sample's logits are the same alone as in its batch
    model, inputs, _ = _build(name)
    model.eval()
    with torch.no_grad():
        batch = model(*inputs)
        for i in (0, 5, BATCH - 1):
            alone = model(*[x[i : i + 1] for x in inputs])
            assert torch.allclose(alone[0], batch[i], atol=1e-5), f"{name}: sample {i} differs"


CODE_MODELS = [n for n in list_models() if get_entry(n).example.has_codes]


@pytest.mark.parametrize("name", CODE_MODELS)
def test_padding_does_not_change_the_output(name: str) -> None:
    # two more padding visits (or events) and two more padding codes per visit
    ex = get_entry(name).example
    model, inputs, _ = _build(name)
    model.eval()
    padded = ex.pad_inputs(inputs, 2)
    assert padded[0].shape[1] == inputs[0].shape[1] + 2
    with torch.no_grad():
        assert torch.allclose(model(*padded), model(*inputs), atol=1e-5)


def test_every_model_has_a_description() -> None:
    assert all(model_info(n) for n in list_models())


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(ModelError) as err:
        create_model("lab_cnnn", n_inputs=1, n_classes=5)
    msg = str(err.value)
    assert msg.startswith("expected a registered model name, got 'lab_cnnn' in model.name;")
    assert "did you mean lab_cnn?" in msg
    assert "known: " + ", ".join(list_models()) in msg
    assert "\n" not in msg


def test_unknown_param_is_named_with_suggestion() -> None:
    with pytest.raises(ModelError, match=r"got 'n_time' in model.params; did you mean n_times\?"):
        create_model("lab_cnn", n_inputs=1, n_classes=5, n_time=178)


def test_invalid_param_values_raise_model_error() -> None:
    with pytest.raises(ModelError, match=r"in model\.params;"):
        create_model("gru", n_inputs=1, n_classes=5, hidden_size="big")
    with pytest.raises(ModelError, match=r"in model\.params\.n_times;"):
        create_model("lab_cnn", n_inputs=1, n_classes=5, n_times=10)
    with pytest.raises(ModelError, match=r"in model\.params\.dropout;"):
        create_model("hannun_resnet1d", n_inputs=1, n_classes=5, dropout=1.5)


def test_duplicate_registration_is_rejected() -> None:
    with pytest.raises(ModelError, match="'mlp' in register_model"):
        register_model("mlp")(lambda n_inputs, n_classes: nn.Linear(n_inputs, n_classes))


def test_list_models_pattern() -> None:
    assert list_models("hannun*") == ["hannun_resnet1d", "hannun_resnet1d_rr", "hannun_segments"]
    assert list_models("lab_*") == ["lab_cnn"]
    assert list_models("nothing*") == []
    assert {"mlp", "lab_cnn", "gru", "lstm", "resnet1d"} <= set(list_models())
    assert list_models("visit_*") == ["visit_gru", "visit_lstm", "visit_transformer"]
    assert list_models("event_*") == ["event_gru", "event_transformer"]
    assert "n_times" in model_params("lab_cnn")


def test_lab_cnn_matches_the_lab_parameter_count() -> None:
    # 2_CNN.ipynb: conv(1->6, k5), conv(6->16, k5), fc 16*41->128, 128->64, 64->5
    expected = (
        (1 * 5 * 6 + 6) + (6 * 5 * 16 + 16) + (16 * 41 * 128 + 128) + (128 * 64 + 64) + (64 * 5 + 5)
    )
    model = create_model("lab_cnn", n_inputs=1, n_classes=5, n_times=178)
    assert _n_params(model) == expected == 93209
    assert model(torch.zeros(2, 1, 178)).shape == (2, 5)


def test_lab_gru_and_mlp_match_the_lab_parameter_counts() -> None:
    # 3_RNN.ipynb: GRU(1, 32, num_layers=2) + fc 32->5; a GRU layer has 3 gates of
    # (in*H + H*H + 2H) weights and biases
    gru = 3 * (1 * 32 + 32 * 32 + 2 * 32) + 3 * (32 * 32 + 32 * 32 + 2 * 32) + (32 * 5 + 5)
    assert _n_params(create_model("gru", n_inputs=1, n_classes=5)) == gru
    # 1_FeedforwardNet.ipynb: FeedForwardNet(n_input=9978, n_hidden=256, n_output=1)
    ffn = (9978 * 256 + 256) + (256 * 256 + 256) + (256 * 1 + 1)
    assert _n_params(create_model("mlp", n_inputs=9978, n_classes=1)) == ffn


def test_hannun_default_is_the_paper_network() -> None:
    model = create_model("hannun_resnet1d", n_inputs=1, n_classes=4)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert len(convs) == 1 + 16 * 2  # 33 convs + the linear head = 34 layers
    assert {c.kernel_size[0] for c in convs} == {16}
    assert [c.out_channels for c in convs[1::2]] == [32] * 4 + [64] * 4 + [128] * 4 + [256] * 4
    strides = [c.stride[0] for c in convs[1::2]]
    assert strides == [1, 2] * 8
    x = torch.randn(2, 1, 256 * 4)
    assert model.eval()(x).shape == (2, 4)


def test_rr_model_uses_rr_features() -> None:
    model, (x, rr), _ = _build("hannun_resnet1d_rr")
    model.eval()
    assert not torch.allclose(model(x, rr), model(x, rr + 1.0))


def test_fast_gru_training_path_matches_nn_gru() -> None:
    """The CPU training path of the GRU gives nn.GRU's outputs and gradients (float64)."""
    from medtorch.models import fast_gru

    torch.manual_seed(0)
    model = create_model("gru", n_inputs=2, n_classes=3, dropout=0.0).double().train()
    x = torch.randn(4, 2, 9, dtype=torch.float64)
    assert fast_gru.usable(model.rnn, x.transpose(1, 2))
    fast = model(x)
    grads_fast = torch.autograd.grad(fast.square().sum(), list(model.parameters()))
    with torch.no_grad():  # the nn.GRU path (used for inference and export)
        ref_nograd = model(x)
    assert torch.allclose(fast, ref_nograd, atol=1e-12)
    _, h = model.rnn(x.transpose(1, 2))
    ref = model.head(h[-1])
    grads_ref = torch.autograd.grad(ref.square().sum(), list(model.parameters()))
    assert torch.allclose(fast, ref, atol=1e-12)
    for a, b in zip(grads_fast, grads_ref):
        assert torch.allclose(a, b, atol=1e-10)
