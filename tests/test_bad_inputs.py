"""The bad-input corpus through the real CLI: every case one clear line, exit 2, no traceback.

The cases (``tests/bad_inputs_corpus.py``, one table) cover every reader and entry point:
recipes and ``--set``, data folders, UCI CSV, svmlight, WFDB records and annotations, HAM
images and metadata, MedMNIST npz, run folders, predict inputs and output paths. Each case
asserts exit code 2, exactly one non-empty stderr line (log lines count) that names what is
wrong, no traceback, and that nothing under the data folder (or the run folder it reads)
was written. The ``warn`` cases run and must say so on stderr instead of staying silent.

``python tests/bad_inputs_summary.py`` runs the same table and writes the counts to
``benchmarks/BAD_INPUTS.md``.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bad_inputs_corpus import CASES, Runs, run_case, verdict


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    return Runs(tmp_path_factory.mktemp("corpus_runs"))


def test_the_corpus_is_large_and_covers_every_reader() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(CASES) >= 40
    areas = Counter(c.area for c in CASES)
    for area in ("recipe", "--set", "data folder", "UCI CSV", "svmlight", "WFDB records",
                 "WFDB annotations", "images", "HAM metadata", "MedMNIST npz", "run folder",
                 "predict input", "output path", "export"):  # fmt: skip
        assert areas[area] >= 1, area
    assert sum(c.subprocess for c in CASES) >= 3  # some through `python -m medtorch`


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, runs: Runs, tmp_path: Path) -> None:
    res = run_case(case, tmp_path, runs)
    v = verdict(case, res)
    assert v == "ok", f"{case.id}: {v}; exit {res.code}; stderr {res.lines}; tb {res.traceback}; changed {res.data_changed}"  # fmt: skip
    if case.id == "recipe-python-tag":
        assert not (tmp_path / "PWNED").exists()  # the tag was refused, never executed


def test_metric_argument_errors_are_project_errors() -> None:
    import numpy as np

    from medtorch.errors import MedtorchError
    from medtorch.metrics.ordinal import decision_report, ordinal_report

    y, p = np.array([0, 1, 2]), np.eye(3)
    with pytest.raises(MedtorchError, match=r"referable_from in 1\.\.2"):
        ordinal_report(y, p, list("abc"), referable_from=0, n_bootstrap=0)
    with pytest.raises(MedtorchError, match=r"decision_report\(positive\)"):
        decision_report(y, p, list("abc"), positive=[0, 1, 2], n_bootstrap=0)


def test_yaml_loader_keeps_safe_load_semantics(tmp_path: Path) -> None:
    from medtorch.config import load_config, load_yaml
    from medtorch.recipes import list_recipes, recipe_path

    f = tmp_path / "a.yaml"
    f.write_text("base: &b {x: 1, y: 2}\nuse: {<<: *b, y: 3}\nlist: [1, 2]\n")
    assert load_yaml(f) == {"base": {"x": 1, "y": 2}, "use": {"x": 1, "y": 3}, "list": [1, 2]}
    for name in list_recipes():  # every shipped recipe still loads (no duplicate keys)
        assert load_config(name).name
        assert load_yaml(recipe_path(name))


def test_dataset_refuses_repeated_sample_ids() -> None:
    import numpy as np

    from medtorch.data.dataset import ArrayDataset
    from medtorch.errors import DataError

    x = np.zeros((3, 2), np.float32)
    with pytest.raises(DataError, match=r"unique sample ids.*'a' x2.*in f\.csv"):
        ArrayDataset({"x": x}, np.array([0, 1, 0]), np.array(["g1", "g2", "g3"]), ["n", "p"],
                     sample_ids=np.array(["a", "b", "a"]), meta={"source": "f.csv"})  # fmt: skip
