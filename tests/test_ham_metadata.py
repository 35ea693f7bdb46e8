"""HAM10000 with the patient metadata beside each image: the encoding (nothing fitted),
its bad values, the image backbones' metadata branch, and a metadata run trained,
predicted from a folder in the HAM10000 layout, explained and exported."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from medtorch.data.tasks.ham10000 import (
    HAM_SITES,
    META_FEATURES,
    encode_metadata,
    ham10000_dx,
    write_ham10000_example,
)
from medtorch.data.tasks.registry import get_task
from medtorch.errors import ConfigError, DataError
from medtorch.models import create_model
from medtorch.models.pretrained import load_into
from medtorch.train.finetune import check_covers, layer_groups


def _row(age: str, sex: str, site: str) -> dict[str, str]:
    return {"age": age, "sex": sex, "localization": site}


def test_the_encoding_by_hand() -> None:
    m = encode_metadata([_row("45.0", "male", "back"), _row("", "unknown", "unknown"),
                         _row("80", "Female", "upper extremity")])  # fmt: skip
    assert m.shape == (3, len(META_FEATURES)) == (3, 18) and m.dtype == np.float32
    site = {s: 4 + i for i, s in enumerate(HAM_SITES)}
    want = np.zeros((3, 18), np.float32)
    want[0, [0, 2, site["back"]]] = [0.45, 1, 1]
    want[1, 1] = 1  # age unknown; sex and site unknown: all zero
    want[2, [0, 3, site["upper extremity"]]] = [0.8, 1, 1]
    assert np.array_equal(m, want)


def test_the_task_carries_the_metadata(tmp_path: Path) -> None:
    params = write_ham10000_example(tmp_path)
    plain = ham10000_dx(None, path=params["path"], image_size=16)
    ds = ham10000_dx(None, path=params["path"], image_size=16, metadata_features=True)
    assert list(plain.inputs) == ["x"] and list(ds.inputs) == ["x", "meta"]
    assert ds.inputs["meta"].shape == (14, 18) and ds.meta["meta_features"] == META_FEATURES
    with (Path(params["path"]) / "metadata.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["dx"]]
    assert np.array_equal(ds.inputs["meta"], encode_metadata(rows))
    assert np.array_equal(ds.inputs["x"], plain.inputs["x"])
    assert dict(get_task("ham10000_dx").kinds({"metadata_features": True})) == {
        "x": "image", "meta": "features"}  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [(",40,", ",forty,", "line 6 field age"), (",40,", ",130,", "line 6 field age"),
     (",face", ",elbow", "line 7 field localization"), (",female,", ",f,", "line 3 field sex")],
)  # fmt: skip
def test_a_bad_metadata_value_names_its_line_and_field(
    tmp_path: Path, old: str, new: str, where: str
) -> None:
    params = write_ham10000_example(tmp_path)
    meta = Path(params["path"]) / "metadata.csv"
    text = meta.read_text()
    assert old in text
    meta.write_text(text.replace(old, new, 1))
    ham10000_dx(None, path=params["path"], image_size=16)  # not read without metadata
    with pytest.raises(DataError, match=where):
        ham10000_dx(None, path=params["path"], image_size=16, metadata_features=True)


def test_metadata_needs_its_columns(tmp_path: Path) -> None:
    params = write_ham10000_example(tmp_path)
    meta = Path(params["path"]) / "metadata.csv"
    meta.write_text(meta.read_text().replace(",sex,", ",gender,", 1))
    assert len(ham10000_dx(None, path=params["path"], image_size=16).y) == 14
    with pytest.raises(DataError, match=r"add column sex.*task\.params\.metadata_features: false"):
        ham10000_dx(None, path=params["path"], image_size=16, metadata_features=True)
    with pytest.raises(DataError, match=r"task\.params\.metadata_features"):
        ham10000_dx(None, path=params["path"], metadata_features="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "params"), [("efficientnet_lite0", {}),
                                              ("resnet2d", {"dropout": 0.2})])  # fmt: skip
def test_the_metadata_branch(name: str, params: dict) -> None:
    """The logits depend on the metadata, the branch trains with the head, a model without
    the branch loads into one with it (the branch and head start fresh), and the image alone
    is refused in one line."""
    torch.manual_seed(0)
    model = create_model(name, 3, 4, n_meta=18, **params).eval()
    x, meta = torch.rand(2, 3, 32, 32), torch.zeros(2, 18)
    other = meta.clone()
    other[:, [0, 2, 6]] = torch.tensor([0.7, 1.0, 1.0])
    with torch.no_grad():
        a, b = model(x, meta), model(x, other)
    assert a.shape == (2, 4) and not torch.allclose(a, b)
    groups = layer_groups(model)
    check_covers(model, groups)
    head = {id(p) for p in dict(groups)["head"]}
    assert all(id(p) in head for p in model.meta.parameters())
    with pytest.raises(ConfigError, match="trained with patient metadata"):
        model(x)
    plain = create_model(name, 3, 4, **params)
    fresh = load_into(
        model, plain.state_dict(), "plain", head_prefixes=("fc.", "net.classifier.", "meta.")
    )
    assert any(k.startswith("meta.") for k in fresh)
    with pytest.raises(ConfigError, match=r"model\.params\.meta_hidden"):
        create_model(name, 3, 4, n_meta=18, meta_hidden=0)


def test_a_metadata_run_predicts_explains_and_exports(tmp_path: Path) -> None:
    """Trained with metadata, the run predicts a HAM10000-layout folder with the test
    probabilities it saved itself (the model reads the folder's metadata.csv), refuses a
    folder of images alone in one line, and explains and exports with both inputs."""
    import medtorch as mt
    from medtorch.cli import main

    params = write_ham10000_example(tmp_path)
    cfg = mt.load_recipe("ham10000_transfer_meta", {
        "task.params.path": params["path"], "task.params.image_size": 32,
        "split.ratios": [0.5, 0.25, 0.25], "model.params.pretrained": "none",
        "trainer.class_weights": "none", "trainer.max_epochs": 2, "trainer.batch_size": 8,
        "trainer.progress": False, "trainer.num_threads": 1, "eval.n_bootstrap": 0})  # fmt: skip
    run = mt.train(cfg, out=tmp_path / "runs")
    assert run.status == "finished"
    assert json_hints(run.path)["n_meta"] == 18
    with (run.path / "predictions_test.csv").open() as f:
        saved = {r["sample_id"]: r for r in csv.DictReader(f)}
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run.path), params["path"], "--out", str(out)]) == 0
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 15  # every row of the folder, the unlabelled one too
    checked = 0
    for r in rows:
        if r["sample_id"] in saved:
            ref = saved[r["sample_id"]]
            cols = [c for c in r if c.startswith("p_")]
            assert cols and all(abs(float(r[c]) - float(ref[c])) < 1e-4 for c in cols)
            checked += 1
    assert checked == len(saved) > 0
    images = str(Path(params["path"]) / "images")
    assert main(["predict", str(run.path), images, "--out", str(tmp_path / "p2.csv")]) == 2
    assert main(["explain", str(run.path), params["path"], "--out", str(tmp_path / "ex")]) == 0
    assert len(list((tmp_path / "ex").glob("*.png"))) == 15
    assert main(["export", str(run.path), "--out", str(tmp_path / "m.onnx")]) == 0


def json_hints(run_dir: Path) -> dict:
    import json

    return json.loads((run_dir / "model.json").read_text())["hints"]
