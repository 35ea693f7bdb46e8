"""Attribution maps: the example selection, the weight-randomisation sanity check (Adebayo
et al. 2018) on planted images and signals, the report section and ``medtorch explain``."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from medtorch.cli import main
from medtorch.errors import MedtorchError
from medtorch.explain import (
    get_explainer,
    randomisation_test,
    randomised_copy,
    rank_correlation,
    select_examples,
    write_attributions,
)
from medtorch.explain.core import attribute
from medtorch.explain.image import cam_layer

FAST = ["--set", "trainer.max_epochs=1", "--set", "trainer.progress=false",
        "--set", "eval.n_bootstrap=20"]  # fmt: skip


def test_examples_are_the_most_confident_correct_and_wrong_per_class() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.9, 0.1], [0.2, 0.8],
                      [0.3, 0.7], [0.45, 0.55], [0.99, 0.01]])  # fmt: skip
    # class 0: correct rows 0 and 2 (0.9, tie: row order), then 1; wrong: row 3
    # class 1: correct rows 4, 5; wrong: row 6
    assert select_examples(y, proba) == [0, 2, 3, 4, 5, 6]
    assert select_examples(y, proba, per_class=1) == [0, 3, 4, 6]


def test_rank_correlation_and_randomised_copy() -> None:
    a = np.arange(10.0)[None]
    assert rank_correlation(a, a)[0] == pytest.approx(1.0)
    assert rank_correlation(a, -a)[0] == pytest.approx(-1.0)
    assert rank_correlation(a, np.zeros_like(a))[0] == 0.0  # a constant map counts as 0
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 8, 8))
    torch.manual_seed(5)
    want = torch.rand(3)
    torch.manual_seed(5)
    twin = randomised_copy(model, seed=1)
    assert torch.equal(torch.rand(3), want)  # the global random state is untouched
    assert not torch.equal(twin[0].weight, model[0].weight)
    assert torch.equal(randomised_copy(model, seed=1)[0].weight, twin[0].weight)  # seeded


# ---- planted images: a green square decides the class, a red one is everywhere -------------


def _squares(n: int, rng: np.random.Generator, size: int = 32, side: int = 8):
    """Noise images; every one has a red distractor square; class 1 also has a green
    square in another quadrant. Returns images, labels and the green square's quadrant."""
    x = rng.uniform(0, 0.3, (n, 3, size, size)).astype(np.float32)
    y = np.arange(n) % 2
    quad = rng.integers(0, 4, n)
    other = (quad + rng.integers(1, 4, n)) % 4
    h = size // 2

    def put(i: int, q: int, colour: list[float]) -> None:
        r0 = (q // 2) * h + rng.integers(0, h - side + 1)
        c0 = (q % 2) * h + rng.integers(0, h - side + 1)
        x[i, :, r0 : r0 + side, c0 : c0 + side] = np.asarray(colour, np.float32)[:, None, None]

    for i in range(n):
        put(i, int(other[i]), [1, 0, 0])
        if y[i]:
            put(i, int(quad[i]), [0, 1, 0])
    return x, y, quad


class TinyCNN(nn.Module):
    def __init__(self, dims: int) -> None:
        super().__init__()
        conv, pool = (nn.Conv2d, nn.MaxPool2d) if dims == 2 else (nn.Conv1d, nn.MaxPool1d)
        c_in = 3 if dims == 2 else 1
        self.features = nn.Sequential(conv(c_in, 8, 3 if dims == 2 else 7, padding="same"),
                                      nn.ReLU(), pool(2) if dims == 2 else nn.Identity(),
                                      conv(8, 16, 3 if dims == 2 else 7, padding="same"), nn.ReLU())  # fmt: skip
        self.head = nn.Linear(16, 2)
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return self.head(h.mean(tuple(range(2, h.ndim))))  # global average pooling


def _fit(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int = 20) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(epochs):
        for s in range(0, len(x), 32):
            loss = nn.functional.cross_entropy(model(torch.tensor(x[s : s + 32])),
                                               torch.tensor(y[s : s + 32]))  # fmt: skip
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def _quadrant_mass(maps: np.ndarray, quads: np.ndarray) -> np.ndarray:
    h = maps.shape[1] // 2
    return np.array([a[(q // 2) * h : (q // 2 + 1) * h, (q % 2) * h : (q % 2 + 1) * h].sum()
                     / max(a.sum(), 1e-12) for a, q in zip(maps, quads)])  # fmt: skip


@pytest.mark.slow
def test_grad_cam_points_at_the_planted_square_and_fails_on_random_weights() -> None:
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    x, y, _ = _squares(256, rng)
    model = _fit(TinyCNN(2), x, y)
    xt, yt, qt = _squares(64, rng)
    assert (model(torch.tensor(xt)).argmax(1).numpy() == yt).mean() > 0.95
    pos = np.flatnonzero(yt == 1)[:16]
    explainer = get_explainer("image")
    assert explainer is not None and cam_layer(model) is model.features[3]  # the last Conv2d
    target = np.ones(len(pos), dtype=np.int64)
    maps = attribute(explainer, model, [xt[pos]], target)
    assert maps.shape == (16, 32, 32) and maps.min() >= 0 and maps.max() == pytest.approx(1.0)
    assert _quadrant_mass(maps, qt[pos]).mean() > 0.8  # chance: 0.25
    check = randomisation_test(explainer, model, [xt[pos]], target, maps)
    assert check["n"] == 16 and len(check["per_seed"]) == 3
    assert check["spearman"] < 0.5, check  # the trained maps are not those of random weights
    random_mass = np.mean([_quadrant_mass(attribute(explainer, randomised_copy(model, s),
                                                    [xt[pos]], target), qt[pos]).mean()
                           for s in (0, 1, 2)])  # fmt: skip
    assert random_mass < 0.65  # random weights do not find the deciding square


def test_cam_layer_attribute_is_the_target_layer() -> None:
    from medtorch.models import create_model

    model = create_model("resnet2d", n_inputs=3, n_classes=2, small_input=False).eval()
    model.cam_layer = model.layer4  # type: ignore[assignment]
    assert cam_layer(model) is model.layer4
    explainer = get_explainer("image")
    assert explainer is not None
    maps = attribute(explainer, model, [np.random.default_rng(0).random((2, 3, 32, 32),
                                                                      dtype=np.float32)],
                     np.array([0, 1]))  # fmt: skip
    assert maps.shape == (2, 32, 32) and np.isfinite(maps).all()
    with pytest.raises(MedtorchError, match="cam_layer"):
        cam_layer(nn.Linear(3, 2))


# ---- planted signals: a bump decides the class, a dip is everywhere ------------------------

T, W = 128, 12


def _bumps(n: int, rng: np.random.Generator):
    x = rng.normal(0, 0.3, (n, 1, T)).astype(np.float32)
    y = np.arange(n) % 2
    at = rng.integers(0, T - W, n)
    shape = np.sin(np.linspace(0, np.pi, W)).astype(np.float32)
    for i in range(n):
        d = int(rng.integers(0, T - W))
        while abs(d - at[i]) < W:
            d = int(rng.integers(0, T - W))
        x[i, 0, d : d + W] -= 2 * shape  # a distractor dip in every signal
        if y[i]:
            x[i, 0, at[i] : at[i] + W] += 2 * shape  # the planted bump: class 1
    return x, y, at


def test_signal_saliency_peaks_at_the_planted_bump_and_fails_on_random_weights() -> None:
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    x, y, _ = _bumps(256, rng)
    model = _fit(TinyCNN(1), x, y)
    xt, yt, at = _bumps(64, rng)
    assert (model(torch.tensor(xt)).argmax(1).numpy() == yt).mean() > 0.95
    pos = np.flatnonzero(yt == 1)[:16]
    explainer = get_explainer("signal")
    assert explainer is not None
    target = np.ones(len(pos), dtype=np.int64)
    maps = attribute(explainer, model, [xt[pos]], target)
    assert maps.shape == (16, T)
    peak_on_bump = [at[i] - W // 2 <= m.argmax() < at[i] + W + W // 2 for m, i in zip(maps, pos)]
    assert np.mean(peak_on_bump) > 0.9  # chance: about 0.19
    check = randomisation_test(explainer, model, [xt[pos]], target, maps)
    assert check["spearman"] < 0.3, check


# ---- the run: attributions.json, the report and `medtorch explain` -------------------------


def test_write_attributions_says_why_when_captum_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "captum", None)  # an import of captum now fails
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    x = np.zeros((4, 1, 32), np.float32)
    doc = write_attributions(tmp_path, TinyCNN(1), {"x": x}, np.array([0, 1, 0, 1]),
                             np.full((4, 2), 0.5), ["a", "b"], list("wxyz"), "signal")  # fmt: skip
    assert doc is not None and "pip install medtorch[vision]" in doc["unavailable"]
    assert json.loads((tmp_path / "attributions.json").read_text()) == doc
    assert write_attributions(tmp_path, TinyCNN(1), {"x": x}, np.zeros(4), np.full((4, 2), 0.5),
                              ["a", "b"], list("wxyz"), "codes") is None  # fmt: skip
    from medtorch.report.html import write_report

    html = write_report(tmp_path).read_text()
    assert "no attribution maps" in html and "pip install medtorch[vision]" in html


@pytest.fixture(scope="module")
def signal_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "lab2_seizure_cnn", "--out", str(out), *FAST]) == 0
    (run,) = out.iterdir()
    return run


@pytest.mark.slow
def test_a_signal_run_has_maps_in_its_report_and_from_explain(
    signal_run: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = json.loads((signal_run / "attributions.json").read_text())
    assert doc["kind"] == "signal" and isinstance(doc["randomisation"]["spearman"], float)
    assert [c["class"] for c in doc["classes"]] == json.loads(
        (signal_run / "model.json").read_text())["class_names"]  # fmt: skip
    for c in doc["classes"]:
        assert len(c["samples"]) <= 4 and (signal_run / c["figure"]).is_file()
    html = (signal_run / "report.html").read_text()
    assert "Attribution maps" in html and "Randomisation check" in html
    assert f"<b>{doc['randomisation']['spearman']:.2f}</b>" in html
    # new signals, read as `medtorch predict` reads them
    from medtorch.data.sources.uci_seizure import bundled_file

    lines = gzip.open(bundled_file(), "rt").read().splitlines()[:4]
    csv_path = tmp_path / "new.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "explained"
    assert main(["explain", str(signal_run), str(csv_path), "--out", str(out), "--limit", "2"]) == 0
    printed = capsys.readouterr().out
    assert "the first 2 of 3 read" in printed
    got = json.loads((out / "explanations.json").read_text())
    assert len(got["inputs"]) == 2
    for entry in got["inputs"]:
        assert (out / entry["figure"]).is_file()
        assert sum(entry["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert entry["predicted"] == max(entry["probabilities"], key=entry["probabilities"].get)
    # a task without a reader, or a kind without a method: one line each
    monkeypatch.setattr("medtorch.explain.registry.get_explainer", lambda kind: None)
    assert main(["explain", str(signal_run), str(csv_path), "--out", str(out)]) == 2
    assert "attribution method" in capsys.readouterr().err
    monkeypatch.undo()
    # --out may not be the run folder
    assert main(["explain", str(signal_run), str(csv_path), "--out", str(signal_run)]) == 2
    assert "not the run or the input" in capsys.readouterr().err


@pytest.mark.slow
def test_an_image_run_has_grad_cam_overlays_and_explain_reads_a_folder(
    tmp_path: Path, capsys
) -> None:
    from medtorch.data.tasks.ham10000 import write_ham10000_example

    params = write_ham10000_example(tmp_path)
    out = tmp_path / "runs"
    sets = [f"task.params.path={params['path']}", "task.params.image_size=16",
            "trainer.batch_size=8", "split.ratios=[0.4,0.2,0.4]", "trainer.class_weights=none",
            "trainer.monitor=valid_loss"]  # fmt: skip
    argv = ["train", "ham10000_resnet18", "--out", str(out), *FAST]
    assert main([*argv, *[a for s in sets for a in ("--set", s)]]) == 0
    (run,) = out.iterdir()
    doc = json.loads((run / "attributions.json").read_text())
    assert doc["kind"] == "image" and doc["method"].startswith("Grad-CAM")
    assert isinstance(doc["randomisation"]["spearman"], float)
    assert "Grad-CAM" in (run / "report.html").read_text()
    images = Path(params["path"]) / "images"
    explained = tmp_path / "explained"
    assert main(["explain", str(run), str(images), "--out", str(explained)]) == 0
    got = json.loads((explained / "explanations.json").read_text())
    assert len(got["inputs"]) == len(list(images.glob("*.jpg")))
    assert all((explained / e["figure"]).is_file() for e in got["inputs"])
    capsys.readouterr()
    # --out may not be the input folder (the maps would be read as inputs next time)
    assert main(["explain", str(run), str(images), "--out", str(images)]) == 2
    assert "not the run or the input" in capsys.readouterr().err


def test_the_report_embeds_only_figures_inside_the_run_folder(tmp_path: Path) -> None:
    from medtorch.report.html import write_report

    run = tmp_path / "run"
    (run / "attributions").mkdir(parents=True)
    secret = tmp_path / "outside.png"
    secret.write_bytes(b"\x89PNG not the run's")
    (run / "attributions" / "class_0.png").write_bytes(b"\x89PNG the run's own")
    doc = {"method": "m", "randomisation": {"spearman": 0.7, "n": 2, "what": "w"},
           "classes": [{"class": "a", "figure": "attributions/class_0.png",
                        "samples": [{"sample_id": "s1", "y_pred": "a", "p_pred": 0.9, "correct": True}]},
                       {"class": "b", "figure": "../outside.png",
                        "samples": [{"sample_id": "s2", "y_pred": "a", "p_pred": 0.8, "correct": False}]}]}  # fmt: skip
    (run / "attributions.json").write_text(json.dumps(doc))
    html = write_report(run).read_text()
    import base64

    assert base64.b64encode(b"\x89PNG the run's own").decode() in html
    assert base64.b64encode(b"\x89PNG not the run's").decode() not in html
    assert "figure ../outside.png is missing from the run folder" in html
    assert "<b>0.70</b>" in html and "partly trace the input" in html  # flagged: >= 0.5
