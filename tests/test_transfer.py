"""Transfer learning: offline ImageNet weights that are right, weights files, staged
fine-tuning, torchvision v2 augmentation, image TTA and ONNX export of every backbone."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from medtorch.config import AugmentConfig, FinetuneConfig, OptimConfig, TrainerConfig
from medtorch.errors import ConfigError
from medtorch.models import create_model
from medtorch.train.augment import ImageTransforms, build_image_transforms
from medtorch.train.finetune import Finetune
from medtorch.train.inputs import augment_batch, tta_views
from medtorch.train.weights import save_weights

pytest.importorskip("timm")


def _photo(name: str, size: int = 224) -> torch.Tensor:
    """One of scikit-image's bundled photographs (a cat, a cup of coffee...) as (1, 3, S, S)
    in [0, 1]: public-domain / CC0 pictures that ship in a well-kept package."""
    skdata = pytest.importorskip("skimage.data")
    from PIL import Image

    img = (
        Image.fromarray(getattr(skdata, name)()).convert("RGB").resize((size, size), Image.BICUBIC)
    )
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).float()[None] / 255.0


# ImageNet class indices (the standard 1000-class order)
CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug


@pytest.mark.slow
def test_packaged_lite0_weights_name_imagenet_photographs() -> None:
    """The weights matched by position must be the right ones: the network names a cat and
    an espresso; the same network with random weights does not."""
    trained = create_model("efficientnet_lite0", 3, 1000, pretrained="imagenet").eval()
    random = create_model("efficientnet_lite0", 3, 1000, pretrained="none").eval()
    with torch.no_grad():
        cat, cup = _photo("chelsea"), _photo("coffee")
        p_cat, p_cup = trained(cat).softmax(-1)[0], trained(cup).softmax(-1)[0]
        assert int(p_cat.argmax()) in CATS and float(p_cat[list(CATS)].sum()) > 0.5
        assert int(p_cup.argmax()) in COFFEE and float(p_cup[list(COFFEE)].sum()) > 0.5
        r = random(cat).softmax(-1)[0]
        assert float(r.max()) < 0.05  # a random network is not confident about anything


def test_weights_file_loads_backbone_and_leaves_a_new_head_fresh(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = create_model("resnet2d", 3, 7, arch="resnet18", small_input=False)
    save_weights(src.state_dict(), tmp_path / "w.safetensors", {})
    torch.save(src.state_dict(), tmp_path / "w.pth")
    for f in ("w.safetensors", "w.pth"):
        torch.manual_seed(1)
        dst = create_model("resnet2d", 3, 5, arch="resnet18", small_input=False,
                           weights=str(tmp_path / f))  # fmt: skip
        assert torch.equal(dst.layer3[0].conv1.weight, src.layer3[0].conv1.weight)
        assert dst.fc.weight.shape == (5, 512)  # the 5-class head: fresh, not the 7-class one
        assert dst.input_norm is not None  # pretrained: normalises its own inputs


def test_weights_of_another_architecture_is_one_line(tmp_path: Path) -> None:
    save_weights(create_model("resnet2d", 3, 2, arch="resnet34").state_dict(),
                 tmp_path / "r34.safetensors", {})  # fmt: skip
    with pytest.raises(ConfigError, match=r"96 unexpected \(first \['layer1\.2\.") as err:
        create_model("resnet2d", 3, 2, arch="resnet18", weights=str(tmp_path / "r34.safetensors"))
    msg = str(err.value)
    assert "\n" not in msg and "r34.safetensors" in msg and "model.params.weights" in msg
    with pytest.raises(ConfigError, match="an existing weights file"):
        create_model("resnet2d", 3, 2, weights=str(tmp_path / "nope.pt"))


class _Payload:
    def __reduce__(self):  # runs on a plain pickle.load
        return (print, ("code ran",))


def test_weights_file_that_would_run_code_is_refused(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "evil.pth"
    bad.write_bytes(pickle.dumps({"conv1.weight": _Payload()}))
    with pytest.raises(ConfigError, match="tensors only") as err:
        create_model("resnet2d", 3, 2, weights=str(bad))
    assert "code ran" not in capsys.readouterr().out and "evil.pth" in str(err.value)


def test_run_folder_is_a_weights_source(tmp_path: Path) -> None:
    net = create_model("efficientnet_lite0", 3, 4)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    save_weights(net.state_dict(), tmp_path / "run" / "checkpoints" / "best.safetensors", {})
    again = create_model("efficientnet_lite0", 3, 2, weights=str(tmp_path / "run"))
    a, b = net.state_dict(), again.state_dict()
    assert torch.equal(a["net.blocks.3.0.conv_pw.weight"], b["net.blocks.3.0.conv_pw.weight"])
    assert b["net.classifier.weight"].shape == (2, 1280)


def test_finetune_schedule_groups_and_rates() -> None:
    net = create_model("resnet2d", 3, 3, arch="resnet18", small_input=False)
    cfg = FinetuneConfig(freeze_epochs=2, unfreeze=["layer4", "layer3", "all"],
                         backbone_lr_mult=0.1, layer_lr_decay=0.5)  # fmt: skip
    ft = Finetune(net, cfg)
    assert [n for n, _ in ft.groups] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert ft.trainable(1) == ft.trainable(2) == ["head"]
    assert ft.trainable(3) == ["layer4", "head"]
    assert ft.trainable(4) == ["layer3", "layer4", "head"]
    assert len(ft.trainable(5)) == 6
    mults = ft.lr_mults()  # layer4 0.1, layer3 0.05, ..., head 1
    assert mults[-1] == 1.0 and mults[-2] == pytest.approx(0.1) and mults[-3] == pytest.approx(0.05)
    groups = ft.param_groups(OptimConfig(lr=0.01))
    assert [g["lr"] for g in groups][-2:] == [pytest.approx(0.001), 0.01]
    two = Finetune(net, FinetuneConfig(freeze_epochs=0, unfreeze=[["layer4", "layer3"], "all"]))
    assert two.trainable(1) == ["layer3", "layer4", "head"] and len(two.trainable(2)) == 6
    with pytest.raises(ConfigError, match=r"trainer\.finetune\.unfreeze\[0\]"):
        Finetune(net, FinetuneConfig(unfreeze=["layer9"]))
    with pytest.raises(ConfigError, match="finetune_groups"):
        Finetune(torch.nn.Linear(3, 2), cfg)


def test_frozen_backbone_does_not_move_and_its_batchnorm_keeps_its_statistics() -> None:
    """One Trainer epoch with freeze_epochs=1: only the head changes, batch-norm running
    statistics included; with onecycle each group peaks at its own rate."""
    from medtorch.data.dataset import ArrayDataset
    from medtorch.train import Trainer

    torch.manual_seed(0)
    net = create_model("resnet2d", 3, 2, arch="resnet18", small_input=True)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = np.random.default_rng(0)
    x = rng.random((16, 3, 16, 16), dtype=np.float32)
    ds = ArrayDataset(inputs={"x": x}, y=np.arange(16) % 2, groups=np.arange(16),
                      class_names=["a", "b"])  # fmt: skip
    cfg = TrainerConfig(max_epochs=1, batch_size=8, progress=False, num_threads=1,
                        finetune=FinetuneConfig(freeze_epochs=1, backbone_lr_mult=0.1))  # fmt: skip
    tr = Trainer(net, OptimConfig(lr=0.01, scheduler="onecycle"), cfg, None, ["a", "b"])
    tr.fit(ds, ds)
    after = net.state_dict()
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("fc.") for k in changed), sorted(changed)[:5]
    peaks = [g["max_lr"] for g in tr.optimizer.param_groups]  # onecycle's per-group peak
    assert peaks[0] == pytest.approx(0.001) and peaks[-1] == 0.01


def test_image_transforms_per_image_and_one_line_errors() -> None:
    torch.manual_seed(0)
    x = torch.rand(6, 3, 20, 20)
    aug = ImageTransforms([{"RandomResizedCrop": {"scale": [0.3, 0.6]}},
                           {"ColorJitter": {"brightness": 0.5}}])  # fmt: skip
    out = aug(x)
    assert out.shape == x.shape and not torch.equal(out, x)
    cfg = AugmentConfig(transforms=[{"RandomRotation": {"degrees": 90}}], dihedral=True)
    batch = augment_batch([x, torch.zeros(6, 2)], ["image", "features"], cfg)
    assert batch[0].shape == x.shape and torch.equal(batch[1], torch.zeros(6, 2))
    with pytest.raises(ConfigError, match=r"trainer\.augment\.transforms\[0\]\.Lambda"):
        build_image_transforms([{"Lambda": {}}], (8, 8))
    with pytest.raises(ConfigError, match=r"transforms\[0\]\.ColorJitter"):
        build_image_transforms([{"ColorJitter": {"brightnes": 0.1}}], (8, 8))


def test_image_tta_is_the_eight_symmetries() -> None:
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    views = list(tta_views([x], ["image"]))
    assert len(views) == 8
    flat = {tuple(v[0].flatten().tolist()) for v in views}
    assert len(flat) == 8  # all distinct
    assert len(list(tta_views([torch.rand(1, 3, 4, 6)], ["image"]))) == 4  # not square: flips only


@pytest.mark.parametrize(
    ("name", "params", "size"),
    [
        ("resnet2d", {"arch": "resnet18", "small_input": True}, 28),
        ("resnet2d", {"arch": "resnet34", "small_input": False}, 64),
        ("resnet2d", {"arch": "resnet50", "small_input": False}, 64),
        ("efficientnet_lite0", {}, 64),
        ("efficientnet_lite0", {"input_norm": "imagenet"}, 96),
    ],
)
def test_every_image_backbone_exports_to_onnx_with_parity(
    tmp_path: Path, name, params, size
) -> None:
    pytest.importorskip("onnxruntime")
    from medtorch.export import check_onnx_parity, export_onnx

    torch.manual_seed(0)
    model = create_model(name, 3, 5, **params).eval()
    example = (torch.rand(2, 3, size, size),)
    path = export_onnx(model, example, tmp_path / f"{name}.onnx")
    assert check_onnx_parity(model, path, example) < 1e-4
    assert check_onnx_parity(model, path, (torch.rand(5, 3, size, size),)) < 1e-4


def test_grayscale_input_keeps_the_pretrained_response() -> None:
    """One channel: the stem's filters are the mean over RGB, so a grey image gives about
    the same features as its RGB copy."""
    rgb = create_model("efficientnet_lite0", 3, 1000, pretrained="imagenet").eval()
    grey = create_model("efficientnet_lite0", 1, 1000, pretrained="imagenet").eval()
    x = _photo("chelsea", 128).mean(1, keepdim=True)
    with torch.no_grad():
        a, b = rgb(x.repeat(1, 3, 1, 1)), grey(x)
    assert torch.allclose(a, b, atol=1e-3)


def test_a_fine_tuned_run_predicts_without_the_file_it_started_from(tmp_path: Path) -> None:
    """The run's checkpoint holds every weight: restoring it reads neither the starting
    weights file (deleted here) nor the ImageNet package, and keeps the input normalisation
    those weights switched on; the reference predictions are the run's own test ones."""
    import csv

    import medtorch as mt
    from medtorch.cli import main
    from medtorch.data.tasks.ham10000 import write_ham10000_example
    from medtorch.pipeline import restore_model

    params = write_ham10000_example(tmp_path)
    start = tmp_path / "start.safetensors"
    torch.manual_seed(0)
    save_weights(create_model("efficientnet_lite0", 3, 3).state_dict(), start, {})
    cfg = mt.load_recipe(
        {"name": "tiny_ft", "data": {"dataset": "ham10000_subset"},
         "task": {"name": "ham10000_dx", "params": params},
         "split": {"method": "by_lesion", "ratios": [0.5, 0.25, 0.25]},
         "model": {"name": "efficientnet_lite0", "params": {"weights": str(start)}},
         "trainer": {"finetune": {"freeze_epochs": 1}, "augment": {"transforms": [
             {"RandomResizedCrop": {"scale": [0.8, 1.0]}}]}}},
        {"trainer.max_epochs": 2, "trainer.progress": False, "eval.n_bootstrap": 0,
         "trainer.batch_size": 8, "trainer.num_threads": 1},
    )  # fmt: skip
    run = mt.train(cfg, out=tmp_path / "runs")
    assert run.status == "finished"
    start.unlink()
    _, _, model = restore_model(run.path)
    assert model.input_norm is not None  # (x - 0.5) / 0.5, as when it trained
    with (run.path / "predictions_test.csv").open() as f:
        saved = {r["sample_id"]: r for r in csv.DictReader(f)}
    new = tmp_path / "new"
    new.mkdir()
    for sid in saved:  # the test images as new files: the same probabilities come back
        (new / f"{sid}.jpg").write_bytes(
            (Path(params["path"]) / "images" / f"{sid}.jpg").read_bytes()
        )
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run.path), str(new), "--out", str(out)]) == 0
    with out.open() as f:
        for r in csv.DictReader(f):
            ref = saved[r["sample_id"].removesuffix(".jpg")]
            cols = [c for c in r if c.startswith("p_")]
            assert cols and all(abs(float(r[c]) - float(ref[c])) < 1e-4 for c in cols)
    assert main(["export", str(run.path), "--out", str(tmp_path / "m.onnx")]) == 0
