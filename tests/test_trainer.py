"""The trainer on tiny synthetic problems (a model defined here, not from the model zoo)."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from medtorch.config import OptimConfig, TrainerConfig
from medtorch.data.dataset import ArrayDataset
from medtorch.errors import ConfigError, SplitError
from medtorch.train import HISTORY_COLUMNS, Trainer
from medtorch.train.parts import build_optimizer, build_scheduler, class_weights

CLASSES = ["neg", "pos"]
TIMING = ("epoch_time_s", "train_samples_per_s")


def make_ds(
    n: int, seed: int, n_features: int = 8, rr: bool = False, p_pos: float = 0.5
) -> ArrayDataset:
    """Linearly separable: label = sign of a fixed direction, with a margin."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features)).astype(np.float32)
    w = np.linspace(1.0, -1.0, n_features, dtype=np.float32)
    y = (rng.random(n) < p_pos).astype(np.int64)
    x += np.outer(np.where(y == 1, 3.0, -3.0), w / np.linalg.norm(w))  # margin: 3 sd
    inputs = {"x": x}
    if rr:
        inputs["rr"] = rng.normal(size=(n, 4)).astype(np.float32)
    return ArrayDataset(inputs=inputs, y=y, groups=np.arange(n).astype(str), class_names=CLASSES)


class TinyNet(nn.Module):
    def __init__(self, n_features: int = 8, n_classes: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, K)


class TwoInputNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 2)
        self.b = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(rr)


def tcfg(**kw) -> TrainerConfig:
    # one thread: tiny models gain nothing from more, and lose a lot on a busy machine
    base = {"max_epochs": 3, "batch_size": 32, "progress": False, "seed": 1, "num_threads": 1}
    return TrainerConfig(**{**base, **kw})


def new_model(seed: int = 0, **kw) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(**kw)


def strip(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in history]


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def data() -> tuple[ArrayDataset, ArrayDataset]:
    return make_ds(400, seed=0), make_ds(200, seed=1)


def test_learns_separable_problem(data, tmp_path: Path) -> None:
    train, valid = data
    tr = Trainer(new_model(), OptimConfig(lr=1e-2), tcfg(max_epochs=8), tmp_path, CLASSES)
    hist = tr.fit(train, valid)
    assert hist[-1]["valid_accuracy"] > 0.95
    assert hist[-1]["valid_auroc"] > 0.95
    proba = tr.predict_proba(valid, checkpoint="best")
    assert proba.shape == (200, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-9)
    assert torch.is_grad_enabled()


def test_same_seed_same_weights(data) -> None:
    train, valid = data
    states = []
    for _ in range(2):
        tr = Trainer(new_model(), OptimConfig(), tcfg(max_epochs=2), None, CLASSES)
        tr.fit(train, valid)
        states.append(tr.model.state_dict())
    assert same_state(*states)


def test_resume_is_exact(data, tmp_path: Path) -> None:
    train, valid = data
    opt = OptimConfig(name="adamw", lr=5e-3, weight_decay=1e-2)
    straight = Trainer(new_model(), opt, tcfg(max_epochs=4), tmp_path / "a", CLASSES)
    h_straight = straight.fit(train, valid)

    first = Trainer(new_model(), opt, tcfg(max_epochs=2), tmp_path / "b", CLASSES)
    first.fit(train, valid)
    # a new process: new trainer, new model with different initial weights
    resumed = Trainer(new_model(seed=123), opt, tcfg(max_epochs=4), tmp_path / "b", CLASSES)
    h_resumed = resumed.fit(train, valid, resume=True)
    assert same_state(straight.model.state_dict(), resumed.model.state_dict())
    assert strip(h_straight) == strip(h_resumed)


def test_resume_after_crash_with_cosine(data, tmp_path: Path) -> None:
    """A run killed mid-epoch 3 resumes from last.pt (epoch 2) and ends as an unbroken run."""
    train, valid = data
    opt = OptimConfig(lr=5e-3, scheduler="cosine")
    cfg = tcfg(max_epochs=4, sampler="balanced")
    straight = Trainer(new_model(), opt, cfg, tmp_path / "a", CLASSES)
    h_straight = straight.fit(train, valid)

    class Crash(RuntimeError):
        pass

    model = new_model()
    calls = {"n": 0}

    def bomb(module, args):
        calls["n"] += module.training
        if calls["n"] > 2 * math.ceil(400 / 32) + 3:  # 3 batches into epoch 3
            raise Crash

    handle = model.register_forward_pre_hook(bomb)
    with pytest.raises(Crash):
        Trainer(model, opt, cfg, tmp_path / "b", CLASSES).fit(train, valid)
    handle.remove()
    assert Trainer.load_checkpoint(tmp_path / "b/checkpoints/last.pt")["epoch"] == 2
    assert not list((tmp_path / "b/checkpoints").glob("*.tmp"))
    resumed = Trainer(new_model(seed=7), opt, cfg, tmp_path / "b", CLASSES)
    h_resumed = resumed.fit(train, valid, resume=True)
    assert same_state(straight.model.state_dict(), resumed.model.state_dict())
    assert strip(h_straight) == strip(h_resumed)
    # a schedule of another length cannot be resumed silently
    with pytest.raises(ConfigError, match="max_epochs"):
        Trainer(new_model(), opt, tcfg(max_epochs=6), tmp_path / "b", CLASSES).fit(
            train, valid, resume=True
        )


def test_early_stopping_and_best_checkpoint(data, tmp_path: Path) -> None:
    train, valid = data
    # lr so small that the valid loss barely moves, then a plateau: the monitored
    # accuracy stops improving quickly
    tr = Trainer(
        new_model(),
        OptimConfig(lr=1e-2),
        tcfg(max_epochs=40, patience=2, monitor="valid_accuracy"),
        tmp_path,
        CLASSES,
    )
    hist = tr.fit(train, valid)
    assert tr.stopped_early and len(hist) < 40
    assert tr.best_epoch == len(hist) - 2
    best = Trainer.load_checkpoint(tmp_path / "checkpoints/best.pt")
    accs = [r["valid_accuracy"] for r in hist]
    assert best["epoch"] == tr.best_epoch == 1 + int(np.argmax(accs))
    assert best["best_score"] == max(accs)
    last = Trainer.load_checkpoint(tmp_path / "checkpoints/last.pt")
    assert last["epoch"] == len(hist) and last["stopped_early"]
    # predict_proba("best") uses the best epoch's weights, not the current ones
    p_best = tr.predict_proba(valid, checkpoint="best")
    check = new_model()
    check.load_state_dict(best["model"])
    check.eval()
    with torch.no_grad():
        ref = torch.softmax(check(torch.from_numpy(valid.inputs["x"])).double(), 1).numpy()
    np.testing.assert_allclose(p_best, ref, rtol=1e-6)
    # resuming a finished run trains nothing
    again = Trainer(new_model(), OptimConfig(lr=1e-2), tr.cfg, tmp_path, CLASSES)
    assert len(again.fit(train, valid, resume=True)) == len(hist)


def test_schedulers(data) -> None:
    train, valid = data
    lr = 1e-2
    # cosine: lr falls every epoch and ends at 0
    tr = Trainer(
        new_model(), OptimConfig(lr=lr, scheduler="cosine"), tcfg(max_epochs=5), None, CLASSES
    )
    lrs = [r["lr"] for r in tr.fit(train, valid)]
    assert lrs[0] == pytest.approx(lr) and all(a > b for a, b in itertools.pairwise(lrs))
    assert tr.optimizer is not None and tr.optimizer.param_groups[0]["lr"] == pytest.approx(
        0, abs=1e-12
    )
    # onecycle: per-batch; peaks at lr after warmup_pct of the steps, ends far below
    cfg = OptimConfig(lr=lr, scheduler="onecycle", warmup_pct=0.25)
    opt = build_optimizer(new_model().parameters(), cfg)
    sched = build_scheduler(opt, cfg, max_epochs=4, steps_per_epoch=10, mode="min")
    trace = []
    for _ in range(40):
        trace.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert (
        max(trace) == pytest.approx(lr) and int(np.argmax(trace)) == 9
    )  # step pct_start * total - 1
    assert trace[-1] < lr / 100
    tr = Trainer(new_model(), cfg, tcfg(max_epochs=4), None, CLASSES)
    lrs = [r["lr"] for r in tr.fit(train, valid)]
    assert lrs[-1] < lr / 100 and max(lrs) <= lr
    # plateau: lr halves once the monitored metric stops improving (max mode for accuracy)
    cfg = OptimConfig(lr=lr, scheduler="plateau", plateau_patience=0, plateau_factor=0.5)
    tr = Trainer(new_model(), cfg, tcfg(max_epochs=6, monitor="valid_accuracy"), None, CLASSES)
    lrs = [r["lr"] for r in tr.fit(train, valid)]
    assert tr.scheduler.mode == "max"
    assert lrs[0] == lr and min(lrs) < lr
    # sgd runs too
    tr = Trainer(new_model(), OptimConfig(name="sgd", lr=0.1), tcfg(max_epochs=1), None, CLASSES)
    assert len(tr.fit(train, valid)) == 1


def test_class_weights() -> None:
    y = np.array([0] * 6 + [1] * 2 + [2] * 4)
    w = class_weights(TrainerConfig(class_weights="balanced"), y, 3)
    np.testing.assert_allclose(w, [12 / (3 * 6), 12 / (3 * 2), 12 / (3 * 4)])
    assert class_weights(TrainerConfig(), y, 3) is None
    np.testing.assert_allclose(
        class_weights(TrainerConfig(class_weights=[1, 2, 3]), y, 3), [1, 2, 3]
    )
    with pytest.raises(ConfigError, match=r"trainer\.class_weights"):
        Trainer(new_model(), OptimConfig(), tcfg(class_weights=[1.0, 2.0, 3.0]), None, CLASSES)
    with pytest.raises(SplitError):
        class_weights(TrainerConfig(class_weights="balanced"), np.array([0, 0]), 2)


def test_balanced_sampler_and_weighted_loss(tmp_path: Path) -> None:
    train = make_ds(1000, seed=3, p_pos=0.1)
    tr = Trainer(new_model(), OptimConfig(), tcfg(sampler="balanced", max_epochs=1), None, CLASSES)
    tr.fit(train, None)
    tr.shuffle_gen.manual_seed(0)
    y = torch.from_numpy(train.y)
    counts = np.bincount(train.y)
    order = tr._epoch_order(y, torch.as_tensor(1.0 / counts[train.y], dtype=torch.float64))
    assert len(order) == len(train)
    assert 0.45 < y[order].float().mean().item() < 0.55  # ~10% positives in the data
    tr = Trainer(
        new_model(), OptimConfig(), tcfg(class_weights="balanced", max_epochs=1), None, CLASSES
    )
    assert np.isfinite(tr.fit(train, None)[0]["train_loss"])


def test_history_csv(data, tmp_path: Path) -> None:
    train, valid = data
    Trainer(new_model(), OptimConfig(), tcfg(max_epochs=2), tmp_path, CLASSES).fit(train, valid)
    with (tmp_path / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and tuple(rows[0]) == HISTORY_COLUMNS
    assert (tmp_path / "checkpoints/best.pt").is_file() and (
        tmp_path / "checkpoints/last.pt"
    ).is_file()
    state = Trainer.load_checkpoint(tmp_path / "checkpoints/last.pt")
    assert {"model", "optimizer", "scheduler", "epoch", "best_score", "rng", "history"} <= set(
        state
    )
    assert {"python", "numpy", "torch", "cuda", "shuffle"} == set(state["rng"])


def test_bad_config_and_data(data) -> None:
    train, valid = data
    with pytest.raises(ConfigError, match=r"valid_auroc.*trainer\.monitor"):
        Trainer(new_model(), OptimConfig(), tcfg(monitor="valid_auc"), None, CLASSES)
    tr = Trainer(new_model(), OptimConfig(), tcfg(), None, CLASSES)
    with pytest.raises(SplitError, match="empty training set"):
        tr.fit(train.subset([]), valid)
    with pytest.raises(SplitError, match="empty validation set"):
        tr.fit(train, valid.subset([]))
    with pytest.raises(ConfigError, match="cuda"):
        if torch.cuda.is_available():
            raise ConfigError("cuda present; nothing to check")
        Trainer(new_model(), OptimConfig(), tcfg(device="cuda"), None, CLASSES)


def test_no_valid_falls_back_to_train_loss(data, caplog) -> None:
    train, _ = data
    cfg = tcfg(max_epochs=2, monitor="valid_accuracy", monitor_mode="max")
    tr = Trainer(new_model(), OptimConfig(), cfg, None, CLASSES)
    with caplog.at_level("INFO", logger="medtorch"):
        hist = tr.fit(train, None)
    assert tr.monitor == "train_loss" and tr.mode == "min"
    assert "no validation set: monitoring train_loss instead of valid_accuracy" in caplog.text
    assert "epoch 2/2 train_loss" in caplog.text
    assert math.isnan(hist[0]["valid_loss"]) and tr.best_score == min(r["train_loss"] for r in hist)


def test_extra_input() -> None:
    train, valid = make_ds(300, seed=4, rr=True), make_ds(100, seed=5, rr=True)
    torch.manual_seed(0)
    tr = Trainer(TwoInputNet(), OptimConfig(lr=1e-2), tcfg(max_epochs=5), None, CLASSES)
    hist = tr.fit(train, valid)
    assert hist[-1]["valid_accuracy"] > 0.9
    assert tr.predict_proba(valid).shape == (100, 2)


def test_pick_cpu_kernels_from_counted_work() -> None:
    from medtorch.train.parts import pick_cpu_kernels

    cpu = torch.device("cpu")
    before = torch.get_num_threads()
    tiny = nn.Sequential(nn.Conv1d(1, 4, 5), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 60, 3))
    x = [torch.randn(8, 1, 64)]
    assert pick_cpu_kernels("mkldnn", 2, cpu, tiny, x) == (True, 2)  # explicit settings win
    assert pick_cpu_kernels("native", 1, cpu, tiny, x) == (False, 1)
    assert pick_cpu_kernels("auto", "auto", cpu, tiny, x) == (False, 1)  # overhead-bound
    big = nn.Sequential(nn.Conv1d(64, 64, 9, padding=4), nn.ReLU(), nn.Conv1d(64, 64, 9, padding=4))
    xb = [torch.randn(64, 64, 256)]
    if torch.backends.mkldnn.is_available():
        assert pick_cpu_kernels("auto", "auto", cpu, big, xb) == (True, before)
    bn = nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.Dropout(0.5))
    stats = bn[1].running_mean.clone()
    xs = [torch.randn(8, 1, 32) + 5]
    rng = torch.get_rng_state()
    pick_cpu_kernels("auto", "auto", cpu, bn, xs)
    assert torch.equal(bn[1].running_mean, stats) and bn.training  # no side effects
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.parametrize("cls", [torch.optim.Adam, torch.optim.AdamW])
def test_fast_adam_step_is_bit_identical_to_opt_step(cls) -> None:
    from medtorch.train.parts import FastAdamStep

    finals = []
    for fast in (False, True):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
        opt = cls(m.parameters(), lr=0.01, weight_decay=0.1, fused=True)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=50)
        assert FastAdamStep.supported(opt)
        step = FastAdamStep(opt) if fast else opt.step
        for _ in range(20):
            loss = m(torch.randn(4, 5)).pow(2).mean()
            for p in m.parameters():
                p.grad = None
            loss.backward()
            step()
            sched.step()
        finals.append(([p.detach().clone() for p in m.parameters()], opt.state_dict()))
    (a, sa), (b, sb) = finals
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert all(
        torch.equal(sa["state"][k]["exp_avg_sq"], sb["state"][k]["exp_avg_sq"]) for k in sa["state"]
    )
    assert not FastAdamStep.supported(torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1))


def test_predict_proba_tta_averages_flipped_views() -> None:
    class Sym(nn.Module):  # invariant to time reversal and sign: TTA must change nothing
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(1, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x.pow(2).mean(dim=(1, 2), keepdim=False).unsqueeze(1))

    class Odd(nn.Module):  # depends on the sign of the first sample only
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.tensor([3.0, -3.0]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, 0, :1] * self.w

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 1, 16)).astype(np.float32)
    ds = ArrayDataset({"x": x}, rng.integers(0, 2, 20), np.arange(20).astype(str), ["a", "b", "c"])
    tcfg = TrainerConfig(progress=False)
    sym = Trainer(Sym(), OptimConfig(), tcfg, None, ["a", "b", "c"])
    assert np.allclose(sym.predict_proba(ds), sym.predict_proba(ds, tta=True))
    ds2 = ArrayDataset({"x": x}, rng.integers(0, 2, 20), np.arange(20).astype(str), ["a", "b"])
    odd = Trainer(Odd(), OptimConfig(), tcfg, None, ["a", "b"])
    p = odd.predict_proba(ds2, tta=True)
    plain = odd.predict_proba(ds2)
    assert not np.allclose(p, plain)
    # TTA is the mean of the softmax over the four views
    views = [x, x[..., ::-1], -x, -x[..., ::-1]]
    want = np.mean(
        [torch.softmax(odd.model(torch.as_tensor(v.copy())), 1).detach().numpy() for v in views], 0
    )
    assert np.allclose(p, want, atol=1e-6)


def test_monitor_epoch_keeps_the_last_epoch(data, tmp_path: Path) -> None:
    """trainer.monitor=epoch: best.pt is the last epoch's weights, with or without valid."""
    train, valid = data
    cfg = tcfg(max_epochs=3, monitor="epoch")
    tr = Trainer(new_model(), OptimConfig(lr=1e-2), cfg, tmp_path, CLASSES)
    tr.fit(train, valid)
    assert tr.best_epoch == 3 and tr.mode == "max"
    best = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=False)["model"]
    last = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(best[k], last[k]) for k in last)
    solo = Trainer(new_model(), OptimConfig(lr=1e-2), cfg, None, CLASSES)
    solo.fit(train, None)
    assert solo.monitor == "epoch" and solo.best_epoch == 3
    with pytest.raises(ConfigError, match=r"trainer\.monitor_mode"):
        Trainer(new_model(), OptimConfig(), tcfg(monitor="epoch", monitor_mode="min"), None,
                CLASSES).fit(train, valid)  # fmt: skip


def test_inference_batches_shrink_for_large_samples(monkeypatch) -> None:
    """Validation and prediction batches hold at most MAX_BATCH_VALUES input values (a 224 px
    image pass fits a laptop); the probabilities do not depend on the batch."""
    from medtorch.predict import _proba
    from medtorch.train import evaluation

    assert evaluation.batch_rows(1024, torch.zeros(2, 3, 224, 224)) == 111
    assert evaluation.batch_rows(1024, torch.zeros(2, 1, 178)) == 1024  # a signal: as asked
    assert evaluation.batch_rows(1024, torch.zeros(2, 3, 4096, 4096)) == 1

    class Pool(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)
            self.seen: list[int] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.seen.append(len(x))
            return self.fc(x.mean((2, 3)))

    rng = np.random.default_rng(0)
    ds = ArrayDataset(inputs={"x": rng.random((20, 3, 10, 10), dtype=np.float32)},
                      y=np.arange(20) % 2, groups=np.arange(20).astype(str), class_names=CLASSES)  # fmt: skip
    torch.manual_seed(0)
    net = Pool()
    tr = Trainer(net, OptimConfig(), tcfg(eval_batch_size=1024), None, CLASSES)
    whole = tr.predict_proba(ds, tta=True)
    assert set(net.seen) == {20}  # 8 views, each in one batch
    monkeypatch.setattr(evaluation, "MAX_BATCH_VALUES", 1000)  # 3 images of 3 x 10 x 10
    net.seen.clear()
    np.testing.assert_allclose(tr.predict_proba(ds, tta=True), whole, rtol=1e-6)
    assert max(net.seen) == 3 and sum(net.seen) == 8 * 20
    net.seen.clear()
    np.testing.assert_allclose(_proba(net.eval(), [ds.inputs["x"]], tta=True), whole, rtol=1e-6)
    assert max(net.seen) == 3 and sum(net.seen) == 8 * 20
