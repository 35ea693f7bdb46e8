"""A wheel of medtorch works on its own: built from the source tree, installed into a fresh
virtual environment, it finds its recipes and bundled data and runs ``medtorch demo``.

The fresh environment gets the dependencies (torch, ...) from the test interpreter's
site-packages through a ``.pth`` line, so nothing is downloaded; that directory's own
``.pth`` files (an editable install of the source tree) are not processed, and the test
checks that ``medtorch`` is imported from the wheel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*argv: str | Path, cwd: Path, timeout: int = 600) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg", PIP_DISABLE_PIP_VERSION_CHECK="1")
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_wheel_installs_and_runs_the_demo(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip"]
    _run(*pip, "wheel", ROOT, "--no-deps", "--no-build-isolation", "-q", "-w", wheels, cwd=tmp_path)
    (wheel,) = wheels.glob("medtorch-*.whl")

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                   cwd=tmp_path).strip()  # fmt: skip
    (Path(purelib) / "medtorch_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(*pip, "--python", python, "install", "-q", "--no-deps", "--no-index", wheel, cwd=tmp_path)

    work = tmp_path / "elsewhere"  # no recipes/ folder here: the shipped ones must be found
    work.mkdir()
    where = _run(python, "-c", "import medtorch; print(medtorch.__file__)", cwd=work).strip()
    assert Path(where).is_relative_to(venv), where
    listed = _run(venv / "bin" / "medtorch", "recipes", cwd=work).split()
    assert "lab2_seizure_cnn" in listed and "mitdb_aami_resnet1d" in listed

    out = _run(venv / "bin" / "medtorch", "demo", "--epochs", "1", "--out", "runs", "--set",
               "eval.n_bootstrap=50", cwd=work)  # fmt: skip
    (run,) = (work / "runs").iterdir()
    assert f"report: {Path('runs') / run.name / 'report.html'}" in out
    assert (run / "report.html").stat().st_size > 10_000
    assert (run / "checkpoints" / "best.pt").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_epoch"] == 1 and metrics["test"]["n"] == 2300
    assert "bundled" in json.loads((run / "cohort.json").read_text())["source"]
