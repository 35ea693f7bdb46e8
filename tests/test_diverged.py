"""A finite but huge learning rate makes the loss diverge: one line, no half run folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from medtorch.config import load_config
from medtorch.errors import MedtorchError
from medtorch.pipeline import train_run


def test_a_diverged_run_is_one_line_and_leaves_no_folder(tmp_path: Path) -> None:
    from medtorch.data.tasks.seizure import write_example

    path = write_example(tmp_path)["path"]  # 30 labelled one-second chunks
    cfg = load_config("lab2_seizure_cnn", ["optim.lr=1e30", "trainer.max_epochs=2",
                                           "trainer.progress=false", "eval.n_bootstrap=0",
                                           f"task.params.path={path}"])  # fmt: skip
    out = tmp_path / "runs"
    with pytest.raises(MedtorchError, match="finite") as err:
        train_run(cfg, out, bundled=True)
    assert "\n" not in str(err.value)
    assert not list(out.iterdir())  # nothing to resume: the new folder is gone
