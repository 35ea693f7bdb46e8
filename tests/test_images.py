"""Images: MedMNIST v2 by flag (RetinaMNIST reading and split), class-per-folder trees, bad
image files, the torchvision ResNet backbone, ordinal metrics."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from torch import nn

from medtorch.config import SplitConfig
from medtorch.data.sources.medmnist_info import MEDMNIST_2D, medmnist_flag
from medtorch.data.splits import describe_split, make_split
from medtorch.data.tasks.ham10000 import ham10000_dx, read_ham_input
from medtorch.data.tasks.image_folder import image_folder
from medtorch.data.tasks.images import (
    medmnist,
    read_image,
    read_medmnist_npz,
    retinamnist_grade,
    write_medmnist_npz,
)
from medtorch.data.tasks.registry import get_task
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
    # one channel: the sum of the RGB filters, so a grey image gives its RGB copy's response
    torch.testing.assert_close(net.conv1.weight, reference["conv1.weight"].sum(1, keepdim=True))
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
    import json

    from medtorch.cli import main

    sets = ["trainer.max_epochs=1", "model.params.small_input=false", "eval.n_bootstrap=0",
            "trainer.progress=false"]  # fmt: skip
    args = ["--data-dir", str(data_dir), "train", "retinamnist_resnet18", "--out", str(tmp_path)]
    assert main(args + [a for s in sets for a in ("--set", s)]) == 0
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["test"]["ordinal"]) >= {"quadratic_kappa", "referable_auroc"}
    npz = np.load(data_dir / "medmnist" / "retinamnist.npz")
    _predict_test_pngs(run, npz["test_images"], (0, 5, 17), tmp_path)


# ---- MedMNIST v2 by flag -------------------------------------------------------------------


def test_the_medmnist_table_agrees_with_the_medmnist_package() -> None:
    from medmnist import INFO as info  # in the test extra: never skipped

    from medtorch.data.sources.medmnist_info import _from_info

    flags_2d = {k for k in info if not k.endswith("3d")}
    assert set(MEDMNIST_2D) == flags_2d
    for flag, row in MEDMNIST_2D.items():
        assert row == _from_info(flag, info[flag]), flag
        assert medmnist_flag(flag) == medmnist_flag(flag, use_package=False)
    assert MEDMNIST_2D["chestmnist"].n_labels == 14 and MEDMNIST_2D["chestmnist"].multilabel
    assert MEDMNIST_2D["dermamnist"].licence == "CC BY-NC 4.0"


def test_every_medmnist_flag_reads_its_own_layout(tmp_path: Path) -> None:
    task = get_task("medmnist")
    for flag, row in MEDMNIST_2D.items():
        write_medmnist_npz(tmp_path / "medmnist" / f"{flag}.npz", flag, n=row.n_labels + 2)
        ds = medmnist(tmp_path, flag=flag)
        n = 3 * (row.n_labels + 2)
        assert ds.inputs["x"].shape == (n, row.n_channels, 28, 28), flag
        assert ds.meta["dataset"] == "medmnist" and ds.meta["flag"] == flag
        assert len(ds.class_names) == row.n_labels
        if flag == "chestmnist":
            assert ds.y.shape == (n, 14) and ds.multilabel
            assert task.families({"flag": flag}) == ("multilabel",)
        else:
            assert ds.y.shape == (n,) and set(np.unique(ds.y)) == set(range(row.n_labels))
            want = ("classification", "ordinal") if flag == "retinamnist" else ("classification",)
            assert task.families({"flag": flag}) == want
        assert "unknown" in ds.meta["split_caveat"]
        split = make_split(ds, OFFICIAL)
        assert [len(split[p]) for p in ("train", "valid", "test")] == [row.n_labels + 2] * 3


def test_medmnist_resizes_and_repeats_grayscale(tmp_path: Path) -> None:
    write_medmnist_npz(tmp_path / "medmnist" / "pneumoniamnist.npz", "pneumoniamnist")
    gray = medmnist(tmp_path, flag="pneumoniamnist")
    assert gray.inputs["x"].shape == (30, 1, 28, 28) and gray.class_names == ["normal", "pneumonia"]
    rgb = medmnist(tmp_path, flag="pneumoniamnist", channels=3, image_size=64)
    x = rgb.inputs["x"]
    assert x.shape == (30, 3, 64, 64) and x.dtype == np.float32
    assert np.array_equal(x[:, 0], x[:, 1]) and np.array_equal(x[:, 0], x[:, 2])
    assert rgb.meta["cohort"]["converted"] == {"grayscale repeated to 3 channels": 30}
    assert rgb.meta["image_size"] == 64 and rgb.meta["native_size"] == 28
    # the mean brightness survives the antialiased resize
    assert abs(float(x.mean()) - float(gray.inputs["x"].mean())) < 0.01
    same = medmnist(tmp_path, flag="pneumoniamnist", image_size=28)
    assert np.array_equal(same.inputs["x"], gray.inputs["x"])


def test_retinamnist_grade_is_medmnist_retinamnist(tmp_path: Path) -> None:
    path = _npz(tmp_path)
    old, new = (
        retinamnist_grade(None, path=str(path)),
        medmnist(None, flag="retinamnist", path=str(path)),
    )
    assert np.array_equal(old.inputs["x"], new.inputs["x"]) and np.array_equal(old.y, new.y)
    assert old.class_names == new.class_names == ["0 no DR", "1 mild", "2 moderate", "3 severe",
                                                  "4 proliferative"]  # fmt: skip
    assert (
        old.meta["ordinal"] == {"referable_from": 2}
        and "valid likely shares" in old.meta["split_caveat"]
    )
    assert get_task("retinamnist_grade").families() == ("classification", "ordinal")


def test_bad_medmnist_flags_and_files(tmp_path: Path) -> None:
    chest = write_medmnist_npz(tmp_path / "chest.npz", "chestmnist")
    cases = [
        (dict(flag="chestmnistt", path=str(chest)), r"MedMNIST v2 2-D dataset .*got 'chestmnistt' in task\.params\.flag"),
        (dict(flag=None, path=str(chest)), r"task\.params\.flag"),
        (dict(flag="pneumoniamnist", path=str(chest)), r"one label per image \(N, 1\), got \(10, 14\) in .*chest\.npz key train_labels"),
        (dict(flag="pathmnist", path=str(write_medmnist_npz(tmp_path / "oct.npz", "octmnist"))),
         r"3-channel images \(PathMNIST\), got '1 channels' in .*oct\.npz"),
        (dict(flag="chestmnist", path=str(write_medmnist_npz(tmp_path / "p.npz", "pneumoniamnist"))),
         r"labels \(N, 14\), one 0/1 column per ChestMNIST label, got \(10, 1\)"),
        (dict(flag="bloodmnist", path=str(write_medmnist_npz(tmp_path / "b.npz", "bloodmnist")), channels=1),
         r"channels 3 or null \(BloodMNIST is RGB\)"),
        (dict(flag="chestmnist", path=str(chest), channels=2), r"task\.params\.channels"),
        (dict(flag="chestmnist", path=str(chest), image_size=0), r"task\.params\.image_size"),
        (dict(flag="octmnist", file="medmnist/octmnist.npz"), r"MedMNIST \.npz file.*octmnist\.npz"),
    ]  # fmt: skip
    for params, pattern in cases:
        with pytest.raises(DataError, match=pattern) as err:
            medmnist(tmp_path, **params)
        assert "\n" not in str(err.value)
    arrays = dict(np.load(chest))
    arrays["val_labels"] = np.full_like(arrays["val_labels"], 2)
    np.savez(chest, **arrays)
    with pytest.raises(DataError, match=r"0/1 labels, got 2 in .*key val_labels \(row 0\)"):
        medmnist(None, flag="chestmnist", path=str(chest))


def _train_tiny(recipe: dict, tmp_path: Path):
    import medtorch as mt

    cfg = mt.load_recipe(recipe, {"trainer.max_epochs": 1, "trainer.progress": False,
                                  "eval.n_bootstrap": 0, "trainer.batch_size": 16,
                                  "trainer.num_threads": 1})  # fmt: skip
    return mt.train(cfg, out=tmp_path / "runs")


@pytest.mark.parametrize("flag,channels", [("chestmnist", 3), ("octmnist", None),
                                           ("breastmnist", None)])  # fmt: skip
def test_train_each_kind_of_medmnist_flag(flag: str, channels: int | None, tmp_path: Path) -> None:
    """A multi-label (ChestMNIST, repeated to RGB), a grayscale multi-class (OCTMNIST) and a
    binary (BreastMNIST) fixture train end to end through the API, on the official split."""
    import json

    path = write_medmnist_npz(tmp_path / f"{flag}.npz", flag)
    params = {"flag": flag, "path": str(path), **({"channels": channels} if channels else {})}
    run = _train_tiny({"name": f"tiny_{flag}", "data": {"dataset": "medmnist"},
                       "task": {"name": "medmnist", "params": params},
                       "split": {"method": "protocol", "protocol": "medmnist_official"},
                       "model": {"name": "resnet2d", "params": {"arch": "resnet18"}}}, tmp_path)  # fmt: skip
    assert run.status == "finished"
    metrics = json.loads((run.path / "metrics.json").read_text())["test"]
    model = json.loads((run.path / "model.json").read_text())
    assert metrics["n"] == 10
    assert model["hints"]["n_inputs"] == (channels or MEDMNIST_2D[flag].n_channels)
    if flag == "chestmnist":
        assert list(metrics["label_positives"]) == list(MEDMNIST_2D[flag].labels)
        assert metrics["n_labels"] == 14 and "micro_auroc" in metrics["overall"]
        _predict_matches_the_run(run.path, path, tmp_path)
    else:
        assert (
            "auroc" in metrics["overall"]
            and len(metrics["per_class"]) == MEDMNIST_2D[flag].n_labels
        )


def _predict_test_pngs(run: Path, test_images: np.ndarray, rows: tuple[int, ...],
                       tmp_path: Path) -> dict[str, dict[str, str]]:  # fmt: skip
    """`medtorch predict` on lossless PNG copies of some test images: the ids and every
    probability column are the run's own test predictions. Returns the predicted rows."""
    import csv

    from PIL import Image

    from medtorch.cli import main

    folder = tmp_path / "new"
    folder.mkdir()
    for i in rows:
        Image.fromarray(test_images[i]).save(folder / f"test{i}.png")
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run), str(folder), "--out", str(out)]) == 0
    with out.open() as f:
        got = {r["sample_id"].removesuffix(".png"): r for r in csv.DictReader(f)}
    with (run / "predictions_test.csv").open() as f:
        want = {r["sample_id"]: r for r in csv.DictReader(f) if r["sample_id"] in got}
    assert sorted(got) == sorted(want) == sorted(f"test{i}" for i in rows)
    for sid, row in got.items():
        for c in [k for k in row if k.startswith("p_")]:
            assert float(row[c]) == pytest.approx(float(want[sid][c]), abs=1e-5)
    return got


def _predict_matches_the_run(run: Path, npz: Path, tmp_path: Path) -> None:
    """The same for a multi-label run: a sigmoid per label, so they need not sum to 1."""
    got = _predict_test_pngs(run, np.load(npz)["test_images"], (0, 3, 7), tmp_path)
    cols = [k for k in next(iter(got.values())) if k.startswith("p_")]
    assert any(abs(sum(float(r[c]) for c in cols) - 1) > 0.1 for r in got.values())


# ---- image_folder: a class-per-folder tree ----------------------------------------------


def _tree(root: Path, spec: dict[str, list[tuple[str, str, tuple[int, int]]]]) -> Path:
    """``root/<class>/<name>`` images: spec class -> [(file name, PIL mode, (w, h))]."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, files in spec.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for name, mode, (w, h) in files:
            shape = (h, w) if mode == "L" else (h, w, 3)
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(
                root / cls / name
            )
    return root


def _simple_tree(root: Path, n: int = 4) -> Path:
    return _tree(
        root, {c: [(f"{c}{k}.png", "RGB", (10 + k, 12)) for k in range(n)] for c in ("a", "b")}
    )


def test_image_folder_reads_a_class_tree(tmp_path: Path) -> None:
    root = _simple_tree(tmp_path / "t")
    (root / "a" / "notes.txt").write_text("x")
    (root / "b" / ".DS_Store").write_bytes(b"\0")
    (root / "b" / "sub").mkdir()
    _tree(root, {"b/sub": [("deep.png", "RGB", (8, 8))]})
    ds = image_folder(None, path=str(root), image_size=16)
    assert ds.inputs["x"].shape == (9, 3, 16, 16) and ds.class_names == ["a", "b"]
    assert ds.class_counts() == {"a": 4, "b": 5} and "b/sub/deep.png" in ds.sample_ids
    assert ds.meta["cohort"]["files_ignored"] == {"not an image (suffix)": 2}
    assert ds.meta["group_unit"] == "image" and "groups unknown" in ds.meta["split_caveat"]
    info = describe_split(ds, make_split(ds, SplitConfig(ratios=(0.5, 0.25, 0.25))), SplitConfig())
    assert "groups unknown" in info["leakage_note"]
    fixed = image_folder(None, path=str(root), image_size=8, classes=["b", "a", "c"])
    assert fixed.class_names == ["b", "a", "c"] and fixed.class_counts() == {"b": 5, "a": 4, "c": 0}
    assert np.array_equal(fixed.y[fixed.sample_ids == "a/a0.png"], [1])


def test_image_folder_groups_from_metadata(tmp_path: Path) -> None:
    root = _simple_tree(tmp_path / "t")
    rows = ["image,patient"] + [f"{c}{k}.png,P{k // 2}{c}" for c in "ab" for k in range(4)]
    (root / "meta.csv").write_text("\n".join(rows) + "\n")
    ds = image_folder(
        None, path=str(root), image_size=8, metadata="meta.csv", group_column="patient"
    )
    assert ds.meta["group_unit"] == "patient" and ds.meta["split_caveat"] is None
    assert len(set(ds.groups)) == 4 and ds.groups[list(ds.sample_ids).index("b/b3.png")] == "P1b"
    assert "no label" not in str(ds.meta["cohort"]["rows_dropped"])  # the CSV is not an image
    cfg = SplitConfig(method="grouped", ratios=(0.5, 0.25, 0.25))
    assert describe_split(ds, make_split(ds, cfg), cfg)["leakage_audit"] == "passed"
    # ids without the suffix (HAM style) and as paths under the root match too
    (root / "m2.csv").write_text("image,g\n" + "".join(f"{c}/{c}{k},g{k}\n" if c == "a" else
                                 f"{c}{k},g{k}\n" for c in "ab" for k in range(4)))  # fmt: skip
    assert len(image_folder(None, path=str(root), metadata="m2.csv", group_column="g")) == 8


def test_bad_image_folders_name_the_file(tmp_path: Path) -> None:
    def bad(root: Path, pattern: str, **kw) -> None:
        with pytest.raises(DataError, match=pattern) as err:
            image_folder(None, path=str(root), image_size=8, **kw)
        assert "\n" not in str(err.value)

    root = _simple_tree(tmp_path / "t")
    bad(
        root,
        r"class folders in task\.params\.classes \['a'\], got 'folder b' in .*t;",
        classes=["a"],
    )
    bad(_tree(tmp_path / "one", {"a": [("a.png", "RGB", (8, 8))]}), r"at least 2 class folders")
    bad(root, r"each class once", classes=["a", "a", "b"])
    bad(tmp_path / "none", r"task\.params\.path")
    bad(root, r"auto, rgb or gray", color="grey")
    meta = root / "meta.csv"
    meta.write_text("image,patient\na0.png,P1\nzz.png,P2\n")
    bad(
        root,
        r"'zz\.png with no file .*meta\.csv line 3 field image",
        metadata="meta.csv",
        group_column="patient",
    )
    meta.write_text("image,patient\n" + "".join(f"{c}{k}.png,P\n" for c in "ab" for k in range(3)))
    bad(
        root,
        r"a metadata row for every image, got 'none for a/a3\.png' in .*meta\.csv",
        metadata="meta.csv",
        group_column="patient",
    )
    meta.write_text("image,patient\na0.png,\n")
    bad(
        root,
        r"patient \(the split unit\).*line 2 field patient",
        metadata="meta.csv",
        group_column="patient",
    )
    meta.write_text("image,patient\na0.png,P\na0,P\n")
    bad(root, r"one row per image.*line 3 field image", metadata="meta.csv", group_column="patient")
    bad(root, r"columns image and lesion", metadata="meta.csv", group_column="lesion")
    bad(root, r"task\.params\.group_column", metadata="meta.csv")
    bad(root, r"metadata CSV", metadata="absent.csv", group_column="patient")
    (root / "c").mkdir()
    (root / "c" / "readme.md").write_text("x")
    bad(root, r"image files in every class folder, got 'none' in .*t/c; add images")


def test_image_folder_mixed_colour_is_explicit(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t", {"a": [("a0.png", "RGB", (8, 8)), ("a1.png", "L", (8, 8))],
                                  "b": [("b0.jpg", "RGB", (9, 7)), ("b1.png", "RGB", (8, 8))]})  # fmt: skip
    with pytest.raises(
        DataError,
        match=r"3 colour and 1 grayscale\), got 'grayscale image a1\.png' in .*t/a; set task\.params\.color",
    ):
        image_folder(None, path=str(root), image_size=8)
    rgb = image_folder(None, path=str(root), image_size=8, color="rgb")
    assert rgb.inputs["x"].shape == (4, 3, 8, 8)
    assert rgb.meta["cohort"]["converted"] == {"grayscale repeated to RGB": 1}
    gray = image_folder(None, path=str(root), image_size=8, color="gray")
    assert gray.inputs["x"].shape == (4, 1, 8, 8) and gray.meta["color"] == "gray"
    assert gray.meta["cohort"]["converted"] == {"colour to grayscale": 3}
    all_gray = _tree(tmp_path / "g", {c: [(f"{c}.png", "L", (8, 8))] for c in "ab"})
    assert image_folder(None, path=str(all_gray), image_size=8).inputs["x"].shape == (2, 1, 8, 8)
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint16)).save(all_gray / "a" / "deep.png")  # 16-bit
    with pytest.raises(DataError, match=r"8-bit images, got 'mode I;16.*deep\.png"):
        image_folder(None, path=str(all_gray), image_size=8)


def test_truncated_and_damaged_images_fail_even_if_pil_pads(tmp_path: Path, monkeypatch) -> None:
    from PIL import Image, ImageFile

    rng = np.random.default_rng(0)
    for suffix in ("jpg", "png"):
        f = tmp_path / f"x.{suffix}"
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(f)
        assert read_image(f).shape == (3, 32, 32)
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
        monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as some library may
        with pytest.raises(
            DataError, match=rf"readable image, got 'OSError \(truncated\)' in .*x\.{suffix}"
        ):
            read_image(f)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # put back as it was
    (tmp_path / "y.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    with pytest.raises(DataError, match=r"readable image.*y\.png"):
        read_image(tmp_path / "y.png")
    root = _simple_tree(tmp_path / "t")
    (root / "b" / "b1.png").write_bytes((root / "b" / "b1.png").read_bytes()[:60])
    with pytest.raises(DataError, match=r"readable image, got .* in .*b/b1\.png"):
        image_folder(None, path=str(root))


def test_ham_grayscale_image_is_an_error(tmp_path: Path) -> None:
    from PIL import Image

    ok = ["HAM_1,ISIC_1,mel,histo,50,male,back", "HAM_1,ISIC_2,mel,histo,50,male,back"]
    folder = _ham_folder(tmp_path, ok, ["ISIC_1", "ISIC_2"])
    Image.new("L", (8, 8), 100).save(folder / "images" / "ISIC_2.jpg")
    with pytest.raises(
        DataError,
        match=r"RGB dermoscopy image, got 'a grayscale image \(mode L\)' in .*ISIC_2\.jpg",
    ):
        ham10000_dx(None, path=str(folder), image_size=4)


def test_ham_prediction_refuses_a_grayscale_image_as_training_does(tmp_path: Path) -> None:
    """Prediction reads a dermoscopy image as training does: colour ones as (3, S, S), a
    grey one a one-line error naming the file (never silently repeated to RGB), from a
    folder of images and from a HAM10000-layout folder alike."""
    from PIL import Image

    ok = ["HAM_1,ISIC_1,mel,histo,50,male,back", "HAM_1,ISIC_2,mel,histo,50,male,back"]
    folder = _ham_folder(tmp_path, ok, ["ISIC_1", "ISIC_2"])
    hints = {"image_size": 4}
    got = read_ham_input(folder / "images", hints, {})
    assert got.inputs["x"].shape == (2, 3, 4, 4) and got.ids == ["ISIC_1.jpg", "ISIC_2.jpg"]
    with_meta = read_ham_input(folder, hints, {"metadata_features": True})
    assert np.array_equal(with_meta.inputs["x"], got.inputs["x"])
    Image.new("L", (8, 8), 100).save(folder / "images" / "ISIC_2.jpg")
    for path, params in ((folder / "images", {}), (folder, {"metadata_features": True})):
        with pytest.raises(
            DataError, match=r"RGB dermoscopy image, got .*mode L.* in .*ISIC_2\.jpg"
        ):
            read_ham_input(path, hints, params)


def test_train_then_predict_an_image_folder(tmp_path: Path) -> None:
    """A tiny tree trains through the API (grouped by patient from its metadata), then
    `medtorch predict RUN folder/` reads a folder of new images as in training."""
    import csv

    from medtorch.cli import main

    spec = {
        c: [(f"{c}{k}.png", "L", (12 + k % 3, 12)) for k in range(8)]
        for c in ("normal", "pneumonia")
    }
    root = _tree(tmp_path / "tree", spec)
    (root / "meta.csv").write_text("image,patient\n" + "".join(
        f"{c}{k}.png,{c}{k // 2}\n" for c in spec for k in range(8)))  # fmt: skip
    params = {
        "path": str(root),
        "image_size": 16,
        "metadata": "meta.csv",
        "group_column": "patient",
    }
    run = _train_tiny({"name": "tiny_folder", "data": {"dataset": "medmnist"},
                       "task": {"name": "image_folder", "params": params},
                       "split": {"method": "by_patient", "ratios": [0.5, 0.25, 0.25]},
                       "model": {"name": "resnet2d", "params": {"arch": "resnet18"}}}, tmp_path)  # fmt: skip
    assert run.status == "finished" and run.splits["leakage_audit"] == "passed"
    assert run.cohort["class_counts"] == {"normal": 8, "pneumonia": 8}
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run.path), str(root / "pneumonia"), "--out", str(out)]) == 0
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["sample_id"] for r in rows] == sorted(f"pneumonia{k}.png" for k in range(8))
    assert all(abs(float(r["p_normal"]) + float(r["p_pneumonia"]) - 1) < 1e-6 for r in rows)


def test_predict_applies_the_runs_image_tta(tmp_path: Path) -> None:
    """A run scored with eval.tta (the 8 symmetries of the square): `medtorch predict` on its
    test images averages the same views, so it gives the run's own test probabilities."""
    path = write_medmnist_npz(tmp_path / "breastmnist.npz", "breastmnist")
    run = _train_tiny({"name": "tiny_tta", "data": {"dataset": "medmnist"},
                       "task": {"name": "medmnist", "params": {"flag": "breastmnist", "path": str(path)}},
                       "split": {"method": "protocol", "protocol": "medmnist_official"},
                       "model": {"name": "resnet2d", "params": {"arch": "resnet18"}},
                       "eval": {"tta": True, "n_bootstrap": 0}}, tmp_path)  # fmt: skip
    assert run.config.eval.tta
    _predict_test_pngs(run.path, np.load(path)["test_images"], (0, 3, 7), tmp_path)
