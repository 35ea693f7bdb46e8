"""HTML run report and plots on a synthetic run folder."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from medtorch.metrics import evaluate
from medtorch.report import (
    plot_confusion,
    plot_learning_curves,
    plot_reliability,
    plot_roc_pr,
    write_report,
)
from medtorch.report.html import RANDOM_SPLIT_WARNING, _split_section

CLASSES = ["seizure", "tumour", "healthy"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(run: Path, split_method: str = "random", n: int = 240, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    groups = np.repeat(np.arange(n // 8), 8).astype(str)
    run.mkdir(parents=True, exist_ok=True)
    cfg = {"name": "seizure_mlp <test>", "data": {"dataset": "uci_epileptic_seizure"},
           "task": {"name": "seizure_3class"}, "split": {"method": split_method},
           "model": {"name": "mlp"}, "trainer": {"monitor": "valid_auroc"}}  # fmt: skip
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    splits = {
        "method": split_method,
        "seed": 6250,
        "leakage_audit": "passed" if split_method != "random" else "skipped (random split)",
        "partitions": {p: {"n": m, "n_groups": m // 8, "class_counts": {c: m // 3 for c in CLASSES}}
                       for p, m in (("train", 600), ("valid", 160), ("test", n))},
    }  # fmt: skip
    (run / "splits.json").write_text(json.dumps(splits))
    cohort = {
        "rows_read": 11500,
        "rows_dropped": {"no_label": 3},
        "class_counts": {"seizure": 2300},
    }
    (run / "cohort.json").write_text(json.dumps(cohort))
    result = evaluate(y, proba, CLASSES, groups=groups, n_bootstrap=100)
    (run / "metrics.json").write_text(json.dumps({"test": result, "valid": result}))
    with open(run / "history.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", "train_loss", "valid_loss", "valid_auroc", "lr", "epoch_time_s"])
        for ep in range(1, 9):
            w.writerow([ep, 1 / ep, 1.1 / ep + 0.01 * ep, 0.6 + 0.04 * ep, 1e-3, 0.5])
    with open(run / "predictions_test.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sample_id", "group", "y_true", *[f"p_{c}" for c in CLASSES], "y_pred"])
        for i in range(n):
            w.writerow([f"s{i}", groups[i], y[i], *proba[i].round(6), proba[i].argmax()])
    return run


def test_report_contains_metrics_images_and_no_external_links(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    out = write_report(run)
    page = out.read_text()
    assert out == run / "report.html"
    metrics = json.loads((run / "metrics.json").read_text())["test"]
    for name, m in metrics["overall"].items():
        assert f"<td>{name}</td>" in page
        if m["value"] is not None:
            assert f"{m['value']:.3f}" in page
    assert "seizure_mlp &lt;test&gt;" in page and "<test>" not in page  # escaped
    assert page.count("data:image/png;base64,") == 5  # confusion, ROC, PR, reliability, curves
    assert RANDOM_SPLIT_WARNING in page
    assert "rows_dropped / no_label" in page and "11500" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "http://" not in page and "https://" not in page
    for png in ("confusion_matrix", "roc", "pr", "reliability", "learning_curves"):
        assert (run / f"{png}.png").read_bytes()[:8] == PNG_MAGIC


def test_grouped_split_has_no_warning_and_leakage_note_is_used(tmp_path: Path) -> None:
    run = make_run(tmp_path / "g", split_method="by_patient")
    page = write_report(run).read_text()
    assert RANDOM_SPLIT_WARNING not in page and "leakage audit: <b>passed</b>" in page
    splits = json.loads((run / "splits.json").read_text())
    splits |= {"method": "random", "leakage_note": "rows of one EEG recording <share> parts"}
    section = _split_section(splits, None)
    assert "rows of one EEG recording &lt;share&gt; parts" in section
    assert 'class="warn"' in section
    failed = _split_section({**splits, "leakage_audit": "failed: 3 groups in train and test"}, None)
    assert 'class="bad"' in failed and "failed: 3 groups" in failed


def test_missing_files_give_sections_not_crashes(tmp_path: Path) -> None:
    run = make_run(tmp_path / "m")
    (run / "metrics.json").unlink()
    (run / "history.csv").unlink()
    (run / "cohort.json").write_text("{not json")
    page = write_report(run).read_text()
    assert "metrics.json is missing from the run folder" in page
    assert "history.csv is missing from the run folder" in page
    assert "could not read cohort.json" in page
    assert page.count("data:image/png;base64,") == 3  # ROC, PR, reliability from predictions

    empty = tmp_path / "empty"
    empty.mkdir()
    page = write_report(empty).read_text()
    for f in ("config.yaml", "splits.json", "metrics.json", "predictions_test.csv"):
        assert f"{f} is missing" in page


@pytest.mark.parametrize("k", [2, 4])
def test_plots_write_pngs(tmp_path: Path, k: int) -> None:
    rng = np.random.default_rng(k)
    y = rng.integers(0, k, 200)
    p = rng.dirichlet(np.ones(k), 200)
    names = [f"c{i}" for i in range(k)]
    paths = [*plot_roc_pr(y, p, names, tmp_path / "roc.png", tmp_path / "pr.png"),
             plot_reliability(y, p, tmp_path / "rel.png"),
             plot_confusion(np.eye(k, dtype=int) * 5 + 1, names, tmp_path / "cm.png"),
             plot_learning_curves({"epoch": [1, 2], "train_loss": [1.0, 0.5]},
                                  tmp_path / "lc.png")]  # fmt: skip
    for path in paths:
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5000


def test_aami_section_is_shown_when_metrics_have_it(tmp_path: Path) -> None:
    from medtorch.metrics import aami_report

    run = make_run(tmp_path / "a")
    metrics = json.loads((run / "metrics.json").read_text())
    assert "AAMI" not in write_report(run).read_text()
    y = np.array([0, 0, 0, 2, 2, 1, 3, 4])
    metrics["test"]["aami"] = aami_report(
        y, np.array([0, 0, 2, 2, 2, 0, 3, 4]), groups=np.arange(8) % 3, n_bootstrap=20
    )
    (run / "metrics.json").write_text(json.dumps(metrics))
    page = write_report(run).read_text()
    assert "test: AAMI heartbeat classes" in page
    assert "<th>+P</th>" in page and "<td>cohen_kappa</td>" in page
    v = metrics["test"]["aami"]["per_class"]["V"]["+P"]["value"]
    assert f"{v:.3f}" in page


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        ({"min_ppv": 0.5, "met": True, "offset": -1.65, "cv": "22 group folds (one group each)",
          "cv_Se": 0.68, "cv_+P": 0.5, "note": None},
         "(22 group folds (one group each), on the same beats) is at least 0.5: offset -1.65, "
         "CV Se 0.68 / +P 0.5."),
        ({"min_ppv": 0.9, "met": False, "offset": 0.3, "cv": "8 group folds (one group each)",
          "cv_Se": 0.1, "cv_+P": 0.6, "note": "floor not reached: the most predictive threshold used"},
         "CV Se 0.1 / +P 0.6; NOT met: floor not reached: the most predictive threshold used."),
        ({"min_ppv": 0.5, "met": False, "offset": 0.0, "cv": None,
          "note": "not cross-validated: S beats in 1 of 3 groups; offset 0 (the weighted fit's "
                  "own threshold) used"},
         "Operating point: not cross-validated: S beats in 1 of 3 groups"),
    ],
)  # fmt: skip
def test_second_stage_operating_point_is_reported(point: dict, expected: str) -> None:
    from html import unescape

    from medtorch.report.html import _metrics_section

    metrics = {"test": {"overall": {}},
               "after_training": {"method": "trees", "classes": [0, 1], "n_features": 7,
                                  "weight": 10.0, "n_beats": {"0": 9, "1": 3},
                                  "fitted_on": "train", "operating_point": point}}  # fmt: skip
    text = unescape(_metrics_section(metrics, None))
    assert expected in text


@pytest.mark.parametrize(
    ("stage", "expected"),
    [({"n_features": 7}, "on the first 7 RR features;"),  # metrics.json from before lists
     ({"features": [0, 24], "feature_names": ["log_prev_over_record", "z_p_rms"]},
      "on the features log_prev_over_record, z_p_rms;"),
     ({"features": [0, 24]}, "on the features 0, 24;")],
)  # fmt: skip
def test_second_stage_names_its_features(stage: dict, expected: str) -> None:
    from html import unescape

    from medtorch.report.html import _metrics_section

    metrics = {"test": {"overall": {}},
               "after_training": {"method": "trees", "classes": [0, 1], "weight": 10.0,
                                  "n_beats": {"0": 9, "1": 3}, "fitted_on": "train", **stage}}  # fmt: skip
    assert expected in unescape(_metrics_section(metrics, None))


@pytest.mark.parametrize(
    ("monitor", "kept", "panel"),
    [("valid_macro_f1", 2, 1), ("valid_loss", 3, 0), ("epoch", 4, 0)],
)
def test_learning_curves_mark_the_epoch_the_trainer_kept(
    monkeypatch, tmp_path: Path, monitor: str, kept: int, panel: int
) -> None:
    """The dashed line sits at ``kept_epoch``, not at an epoch the plot guesses is best
    (here the loss is lowest and macro F1 highest at epoch 1)."""
    from medtorch.report import plots

    figs: list = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figs.append(fig) or Path(path))
    h = {"epoch": [1, 2, 3, 4], "train_loss": [0.5, 0.6, 0.7, 0.8],
         "valid_loss": [0.4, 0.5, 0.6, 0.7], "valid_macro_f1": [0.9, 0.8, 0.7, 0.6]}  # fmt: skip
    plots.plot_learning_curves(h, tmp_path / "lc.png", monitor, kept_epoch=kept)
    axes = figs[0].axes
    marks = [(i, ln.get_xdata()[0], ln.get_label()) for i, ax in enumerate(axes)
             for ln in ax.lines if ln.get_linestyle() == "--"]  # fmt: skip
    assert [(i, x) for i, x, _ in marks] == [(panel, kept)]
    assert marks[0][2].startswith("kept:")
    plots.plot_learning_curves(h, tmp_path / "lc.png", monitor)  # no kept epoch: no mark
    assert not [ln for ax in figs[1].axes for ln in ax.lines if ln.get_linestyle() == "--"]
