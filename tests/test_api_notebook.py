"""In a Jupyter kernel: ``mt.train`` draws a progress bar (a widget when ipywidgets is
installed), ``run.plot`` shows a PNG inline and ``run.show_report`` displays the report."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.mark.slow
def test_train_plot_and_report_in_a_kernel(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    rng = np.random.default_rng(0)
    with (tmp_path / "uci.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["", *[f"X{i}" for i in range(1, 179)], "y"])
        for r in range(200):
            y = 1 + r % 5
            w.writerow([f"X{1 + r // 40}.V1.{r % 40}", *rng.normal(40 * y, 30, 178).round(1), y])
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            f"import sys; sys.path.insert(0, {str(SRC)!r})\nimport medtorch as mt\n"
            "run = mt.train('lab2_seizure_cnn', out='runs', overrides={'task.params.path': "
            "'uci.csv', 'trainer.max_epochs': 1, 'trainer.batch_size': 16, 'eval.n_bootstrap': 10})"
        ),
        nbformat.v4.new_code_cell("run.plot('roc')"),
        nbformat.v4.new_code_cell("run.show_report()"),
    ]
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    train, plot, report = (c.outputs for c in nb.cells)
    try:
        import ipywidgets  # noqa: F401

        bar = "application/vnd.jupyter.widget-view+json"
        assert any(bar in o.get("data", {}) for o in train), train
    except ImportError:  # a text bar on stderr
        assert any(o.get("name") == "stderr" and "epoch 1/1" in o.get("text", "") for o in train)
    assert any("image/png" in o.get("data", {}) for o in plot), plot
    html = [o["data"]["text/html"] for o in report if "text/html" in o.get("data", {})]
    assert html and html[0].startswith("<iframe srcdoc=") and "Confusion matrix" in html[0]
