"""The lab notebooks (labs/*.py, Jupytext percent format): every one runs top to bottom in
a Jupyter kernel without an error, in under 3 minutes; the sources are valid Jupytext,
carry no outputs and no machine paths, and each is listed in labs/README.md."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

if os.environ.get("CI"):  # in CI the labs extra is installed (make test): never skip there
    import jupytext
    import nbclient
else:
    jupytext = pytest.importorskip("jupytext", reason="pip install -e '.[labs]'")
    nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[labs]'")

ROOT = Path(__file__).resolve().parents[1]
LABS = ROOT / "labs"
NOTEBOOKS = sorted(LABS.glob("[0-9][0-9]_*.py"))
# labs that read $MEDTORCH_DATA (the others use the copy of UCI seizure bundled with medtorch)
NEEDS_DATA = {"01_feedforward_ehr", "04_rnn_visits", "05_advanced"}
EXPECTED = ["00_pytorch_basics", "01_feedforward_ehr", "02_cnn_eeg", "03_rnn_eeg",
            "04_rnn_visits", "05_advanced"]  # fmt: skip
LIMIT_S = 180.0


def test_every_lab_is_there_and_listed() -> None:
    assert [p.stem for p in NOTEBOOKS] == EXPECTED
    readme = (LABS / "README.md").read_text()
    for stem in EXPECTED:
        assert f"{stem}.py" in readme, f"labs/README.md does not list {stem}.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lab_is_valid_jupytext(path: Path) -> None:
    text = path.read_text()
    nb = jupytext.reads(text, fmt="py:percent")
    meta = nb.metadata["jupytext"]
    assert meta["formats"] == "ipynb,py:percent", "paired to .ipynb in percent format"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    kinds = [c.cell_type for c in nb.cells]
    assert kinds[0] == "markdown" and nb.cells[0].source.startswith("# Lab ")
    assert kinds.count("code") >= 3
    assert "## Exercises" in nb.cells[-1].source, "each lab ends with exercises"
    # a round trip through .ipynb gives the same cells back (nothing jupytext would rewrite)
    again = jupytext.reads(jupytext.writes(nb, fmt="ipynb"), fmt="ipynb")
    assert [c.source for c in again.cells] == [c.source for c in nb.cells]
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"(?<![\w$])/(work|tmp|home|Users|root)/", text), "machine path"


def test_committed_notebooks_carry_no_outputs() -> None:
    """The .py files are the sources; a paired .ipynb is ignored by git, and any .ipynb that
    is committed all the same must be without outputs."""
    try:
        listed = subprocess.run(["git", "ls-files", "labs"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.split()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    for name in (n for n in listed if n.endswith(".ipynb")):
        nb = json.loads((ROOT / name).read_text())
        for cell in nb["cells"]:
            assert not cell.get("outputs") and cell.get("execution_count") is None, name


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lab_runs(path: Path, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    env_data = None
    if path.stem in NEEDS_DATA:
        env_data = str(request.getfixturevalue("data_dir"))  # fails in CI when missing
    nb = jupytext.read(path, fmt="py:percent")
    # a kernel spec of this very interpreter, so the notebook runs where the test runs
    spec = tmp_path / "jupyter" / "kernels" / "medtorch-labs"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "medtorch labs",
                                                  "language": "python"}))  # fmt: skip
    keys = ("MEDTORCH_DATA", "MPLBACKEND", "TMPDIR", "JUPYTER_PATH", "PYTHONPATH")
    saved = {k: os.environ.get(k) for k in keys}
    if pp := os.environ.get("PYTHONPATH"):  # the kernel starts in labs/: make entries absolute
        os.environ["PYTHONPATH"] = os.pathsep.join(
            str(Path(p).resolve()) for p in pp.split(os.pathsep) if p
        )
    if env_data:
        os.environ["MEDTORCH_DATA"] = env_data
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    os.environ["TMPDIR"] = str(tmp_path)  # the labs' run folders go to a temp dir
    os.environ["JUPYTER_PATH"] = str(tmp_path / "jupyter")
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    try:
        client = nbclient.NotebookClient(
            nb, kernel_name="medtorch-labs", timeout=600,
            resources={"metadata": {"path": str(LABS)}},
        )  # fmt: skip
        client.execute()  # raises CellExecutionError on the first cell that fails
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    request.node.user_properties.append(("wall_s", round(wall, 1)))
    times = ROOT / "runs" / "lab_times" / f"{path.stem}.json"  # one file each: xdist-safe
    times.parent.mkdir(parents=True, exist_ok=True)
    times.write_text(json.dumps({"wall_s": round(wall, 1), "kernel_cpu_s": round(cpu, 1)}) + "\n")
    print(f"{path.stem}: {wall:.1f} s wall, {cpu:.1f} s kernel CPU")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]  # fmt: skip
    assert not errors
    assert wall < LIMIT_S, f"{path.stem} took {wall:.0f} s (limit {LIMIT_S:.0f} s)"
