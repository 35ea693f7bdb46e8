"""Images: RetinaMNIST reading and split, the torchvision ResNet backbone, ordinal metrics."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from torch import nn

from medtorch.config import SplitConfig
from medtorch.data.splits import describe_split, make_split
from medtorch.data.tasks.images import ham10000_dx, read_medmnist_npz, retinamnist_grade
from medtorch.errors import ConfigError, DataError, MedtorchError
from medtorch.metrics.ordinal import decision_report, ordinal_report
from medtorch.models import create_model

OFFICIAL = SplitConfig(method="protocol", protocol="medmnist_official")


@pytest.mark.realdata
def test_retinamnist_official_split_and_caveat(data_dir: Path) -> None:
    ds = retinamnist_grade(data_dir)
    assert ds.inputs["x"].shape == (1600, 3, 28, 28) and ds.inputs["x"].dtype == np.float32
    assert 0.0 <= ds.inputs["x"].min() and ds.inputs["x"].max() <= 1.0
    split = make_split(ds, OFFICIAL)
    # label counts from the dataset's SOURCE.md (MedMNIST info.py)
    want = {"train": [486, 128, 206, 194, 66], "valid": [54, 12, 28, 20, 6],
            "test": [174, 46, 92, 68, 20]}  # fmt: skip
    for part, counts in want.items():
        assert np.bincount(ds.y[split[part]], minlength=5).tolist() == counts
    note = describe_split(ds, split, OFFICIAL)["leakage_note"]
    assert "patients unknown" in note and "valid likely shares patients with train" in note


def _npz(tmp_path: Path, **override: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in (("train", 6), ("val", 2), ("test", 3)):
        arrays[f"{prefix}_images"] = rng.integers(0, 255, (n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{prefix}_labels"] = rng.integers(0, 5, (n, 1)).astype(np.uint8)
    arrays.update(override)
    path = tmp_path / "retina.npz"
    np.savez(path, **arrays)
    return path


def test_bad_medmnist_files_name_file_and_key(tmp_path: Path) -> None:
    parts = read_medmnist_npz(_npz(tmp_path), 5)
    assert [len(parts[p][1]) for p in ("train", "valid", "test")] == [6, 2, 3]
    cases = {
        "val_labels": (np.full((2, 1), 7, np.uint8), r"labels 0\.\.4, got 7 in .* key val_labels \(row 0\)"),
        "test_labels": (np.zeros((2, 1), np.uint8), r"3 labels \(one per image\), got 2 in .* key test_labels"),
        "train_images": (np.zeros((6, 28, 28, 3), np.float32), r"uint8 images .* key train_images"),
    }  # fmt: skip
    for key, (arr, pattern) in cases.items():
        with pytest.raises(DataError, match=pattern) as err:
            read_medmnist_npz(_npz(tmp_path, **{key: arr}), 5)
        assert "\n" not in str(err.value)
    path = _npz(tmp_path)
    path.write_bytes(path.read_bytes()[:200])  # truncated download
    with pytest.raises(DataError, match=r"readable \.npz archive.*retina\.npz; re-fetch"):
        read_medmnist_npz(path, 5)
    np.savez(path, train_images=np.zeros((1, 28, 28, 3), np.uint8))
    with pytest.raises(DataError, match=r"train_labels"):
        read_medmnist_npz(path, 5)
    with pytest.raises(DataError, match=r"MedMNIST \.npz file.*medtorch data info medmnist"):
        read_medmnist_npz(tmp_path / "absent.npz", 5)


def test_resnet2d_stem_follows_the_image_size() -> None:
    small = create_model("resnet2d", n_inputs=3, n_classes=5, image_size=28)
    big = create_model("resnet2d", n_inputs=1, n_classes=2, image_size=224)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, nn.Identity)
    assert big.conv1.kernel_size == (7, 7) and big.conv1.in_channels == 1
    assert small(torch.zeros(2, 3, 28, 28)).shape == (2, 5)
    assert create_model("resnet2d", n_inputs=3, n_classes=4, arch="resnet34").fc.out_features == 4
    with pytest.raises(MedtorchError, match=r"model\.params\.arch"):
        create_model("resnet2d", n_inputs=3, n_classes=5, arch="vgg16")
    with pytest.raises(MedtorchError, match=r"model\.params\.pretrained"):
        create_model("resnet2d", n_inputs=3, n_classes=5, pretrained="yes")


def test_imagenet_weights_from_the_torch_cache_without_network(tmp_path: Path, monkeypatch) -> None:
    import torchvision

    def offline(*a: object, **k: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr("torch.hub.urlopen", offline)  # never the network in tests
    with pytest.raises(
        ConfigError, match=r"resnet18-f37072fd\.pth .*model\.params\.pretrained=none"
    ) as err:
        create_model("resnet2d", n_inputs=3, n_classes=5, pretrained="imagenet")
    assert "\n" not in str(err.value)
    # a cached file (here: seeded random weights standing in for ImageNet's) is used as is
    torch.manual_seed(7)
    reference = torchvision.models.resnet18(weights=None).state_dict()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True, exist_ok=True)  # torch.hub made it on the failed try
    torch.save(reference, cache / "resnet18-f37072fd.pth")
    net = create_model("resnet2d", n_inputs=1, n_classes=5, pretrained="imagenet", image_size=224)
    assert torch.equal(net.layer4[1].conv2.weight, reference["layer4.1.conv2.weight"])
    torch.testing.assert_close(net.conv1.weight, reference["conv1.weight"].mean(1, keepdim=True))
    assert net.fc.out_features == 5  # a new head


def test_ordinal_report_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    logits = rng.normal(size=(300, 5)) + 2.0 * np.eye(5)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    names = [f"g{i}" for i in range(5)]
    r = ordinal_report(y, p, names, referable_from=2, n_bootstrap=200, seed=1)
    pred = p.argmax(1)
    assert r["quadratic_kappa"]["value"] == pytest.approx(
        skm.cohen_kappa_score(y, pred, weights="quadratic")
    )
    assert r["referable_auroc"]["value"] == pytest.approx(
        skm.roc_auc_score(y >= 2, p[:, 2:].sum(1))
    )
    assert r["grade_mae"]["value"] == pytest.approx(np.abs(pred - y).mean())
    ref = p[:, 2:].sum(1) >= 0.5
    assert r["referable_sensitivity"]["value"] == pytest.approx(ref[y >= 2].mean())
    assert r["referable_specificity"]["value"] == pytest.approx((~ref)[y < 2].mean())
    for m in ("quadratic_kappa", "referable_auroc", "grade_mae"):
        lo, hi = r[m]["ci"]
        assert lo < r[m]["value"] < hi
    # whole groups resampled: 30 groups of 10 give a wider CI than 300 single samples
    grouped = ordinal_report(y, p, names, 2, groups=np.arange(300) // 10, n_bootstrap=200)
    assert grouped["ci_method"].startswith("bootstrap over groups")
    with pytest.raises(ValueError, match="referable_from"):
        ordinal_report(y, p, names, referable_from=5, n_bootstrap=0)


def test_decision_report_sums_the_positive_classes() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 7, 400)
    p = rng.dirichlet(np.ones(7), 400) * 0.5 + 0.5 * np.eye(7)[y]
    pos = [0, 1, 4]
    r = decision_report(y, p, list("abcdefg"), positive=pos, name="malignant", n_bootstrap=100)
    truth, score = np.isin(y, pos), p[:, pos].sum(1)
    assert r["malignant_auroc"]["value"] == pytest.approx(skm.roc_auc_score(truth, score))
    assert r["malignant_sensitivity"]["value"] == pytest.approx((score[truth] >= 0.5).mean())
    assert r["decision"] == "malignant = a or b or e; called at P >= 0.5"
    with pytest.raises(ValueError, match="positive classes"):
        decision_report(y, p, list("abcdefg"), positive=list(range(7)), n_bootstrap=0)


@pytest.mark.realdata
def test_ham10000_grouped_by_lesion(data_dir: Path) -> None:
    ds = ham10000_dx(data_dir, image_size=32)
    assert ds.inputs["x"].shape == (5366, 3, 32, 32)
    # the subset's SOURCE.md table
    assert ds.class_counts() == {"akiec": 277, "bcc": 431, "bkl": 941, "df": 101, "mel": 951,
                                 "nv": 2546, "vasc": 119}  # fmt: skip
    assert len(np.unique(ds.groups)) == 3789 and ds.meta["group_unit"] == "lesion"
    split = make_split(ds, SplitConfig(method="by_lesion", ratios=(0.7, 0.15, 0.15)))
    info = describe_split(ds, split, SplitConfig(method="by_lesion", ratios=(0.7, 0.15, 0.15)))
    assert info["leakage_audit"] == "passed" and all(v == 0 for v in info["group_overlap"].values())
    binary = ham10000_dx(data_dir, image_size=16, target="malignant")
    assert binary.class_counts() == {"benign": 3707, "malignant": 277 + 431 + 951}


def _ham_folder(tmp_path: Path, rows: list[str], images: list[str]) -> Path:
    from PIL import Image

    (tmp_path / "images").mkdir(parents=True, exist_ok=True)
    for name in images:
        Image.new("RGB", (8, 8), (120, 60, 30)).save(tmp_path / "images" / f"{name}.jpg")
    header = "lesion_id,image_id,dx,dx_type,age,sex,localization\n"
    (tmp_path / "metadata.csv").write_text(header + "".join(r + "\n" for r in rows))
    return tmp_path


def test_bad_ham10000_metadata_names_line_and_field(tmp_path: Path) -> None:
    ok = ["HAM_1,ISIC_1,mel,histo,50,male,back", "HAM_1,ISIC_2,mel,histo,50,male,back"]
    ds = ham10000_dx(
        None, path=str(_ham_folder(tmp_path / "a", ok, ["ISIC_1", "ISIC_2"])), image_size=4
    )
    assert ds.inputs["x"].shape == (2, 3, 4, 4) and ds.groups.tolist() == ["HAM_1", "HAM_1"]
    cases = [
        (["HAM_1,ISIC_1,melanoma,histo,50,male,back"], r"dx in .*got 'melanoma' in .*line 2 field dx"),
        ([",ISIC_1,mel,histo,50,male,back"], r"lesion_id .*line 2 field lesion_id"),
        ([ok[0], "HAM_2,ISIC_9,nv,histo,50,male,back"], r"images/ISIC_9\.jpg missing.*line 3 field image_id"),
    ]  # fmt: skip
    for i, (rows, pattern) in enumerate(cases):
        folder = _ham_folder(tmp_path / f"c{i}", rows, ["ISIC_1"])
        with pytest.raises(DataError, match=pattern) as err:
            ham10000_dx(None, path=str(folder))
        assert "\n" not in str(err.value)
    folder = _ham_folder(tmp_path / "d", ok, ["ISIC_1", "ISIC_2"])
    (folder / "images" / "ISIC_2.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(
        DataError, match=r"readable image, got .UnidentifiedImageError. in .*ISIC_2\.jpg"
    ):
        ham10000_dx(None, path=str(folder))
    with pytest.raises(DataError, match=r"task\.params\.target"):
        ham10000_dx(None, path=str(folder), target="mel")


@pytest.mark.realdata
@pytest.mark.slow
def test_train_then_predict_image_files(data_dir: Path, tmp_path: Path) -> None:
    """`medtorch train` an image recipe, then `medtorch predict` PNG copies of test images:
    the same probabilities as the run's own test predictions, and the ordinal metrics."""
    import csv
    import json

    from PIL import Image

    from medtorch.cli import main

    sets = ["trainer.max_epochs=1", "model.params.small_input=false", "eval.n_bootstrap=0",
            "trainer.progress=false"]  # fmt: skip
    args = ["--data-dir", str(data_dir), "train", "retinamnist_resnet18", "--out", str(tmp_path)]
    assert main(args + [a for s in sets for a in ("--set", s)]) == 0
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["test"]["ordinal"]) >= {"quadratic_kappa", "referable_auroc"}
    npz = np.load(data_dir / "medmnist" / "retinamnist.npz")
    folder = tmp_path / "images"
    folder.mkdir()
    for i in (0, 5, 17):  # lossless copies of three test images
        Image.fromarray(npz["test_images"][i]).save(folder / f"test{i}.png")
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run), str(folder), "--out", str(out)]) == 0
    with out.open() as f:
        got = {r["sample_id"].removesuffix(".png"): r for r in csv.DictReader(f)}
    with (run / "predictions_test.csv").open() as f:
        want = {r["sample_id"]: r for r in csv.DictReader(f) if r["sample_id"] in got}
    assert sorted(got) == sorted(want) == ["test0", "test17", "test5"]
    for sid, row in got.items():
        for c in [k for k in row if k.startswith("p_")]:
            assert float(row[c]) == pytest.approx(float(want[sid][c]), abs=1e-5)
