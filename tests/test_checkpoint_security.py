"""Nothing medtorch reads runs code: crafted checkpoints, weights files, YAML and archives.

Each crafted file carries a payload that would create a sentinel file if it ran; every test
asserts the file is refused with one line *and* that the sentinel never appears.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile
from pathlib import Path

import pytest
import torch

from medtorch.cli import main
from medtorch.config import dump_config, load_config
from medtorch.data.archive import safe_extract
from medtorch.errors import MedtorchError
from medtorch.models import create_model
from medtorch.pipeline import restore_model
from medtorch.train import checkpoint as ckpt

CLASSES = ["a", "b", "c", "d", "e"]


class Payload:
    """Unpickling this calls ``os.system`` (the classic pickle attack)."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg, msg
    return msg


def _model():
    torch.manual_seed(0)
    return create_model("lab_cnn", n_inputs=1, n_classes=5, n_times=178)


def make_run(root: Path) -> Path:
    """A minimal run folder as `medtorch train` writes it (config, model, normaliser)."""
    run = root / "run"
    (run / "checkpoints").mkdir(parents=True)
    dump_config(load_config("lab2_seizure_cnn"), run / "config.yaml")
    (run / "model.json").write_text(
        json.dumps(
            {
                "name": "lab_cnn",
                "params": {},
                "hints": {"n_inputs": 1, "n_times": 178},
                "class_names": CLASSES,
                "inputs": ["x"],
            }
        )
    )
    (run / "normalizer.json").write_text(json.dumps({"method": "none"}))
    return run


def crafted_pickle(path: Path, sentinel: Path) -> None:
    """A checkpoint with real weights plus one pickled object that runs a command."""
    torch.save({"model": _model().state_dict(), "extra": Payload(f"touch {sentinel}")}, path)


def test_crafted_best_pt_is_refused_and_never_runs(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    sentinel = tmp_path / "PWNED"
    crafted_pickle(run / "checkpoints" / "best.pt", sentinel)
    with pytest.raises(MedtorchError) as exc:
        restore_model(run)
    msg = _one_line(exc.value)
    assert "best.pt" in msg and "refused" in msg
    assert not sentinel.exists()


def test_crafted_checkpoint_through_the_cli_is_one_line(tmp_path: Path, capsys) -> None:
    run = make_run(tmp_path)
    sentinel = tmp_path / "PWNED"
    crafted_pickle(run / "checkpoints" / "best.pt", sentinel)
    signals = tmp_path / "signals.csv"
    signals.write_text(",".join(f"X{i}" for i in range(1, 179)) + "\n" + ",".join(["0"] * 178))
    code = main(["predict", str(run), str(signals), "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert len([ln for ln in err.strip().splitlines() if ln.startswith("error:")]) == 1
    assert not sentinel.exists()


def test_crafted_resume_checkpoint_is_refused(tmp_path: Path) -> None:
    sentinel = tmp_path / "PWNED"
    path = tmp_path / "last.pt"
    crafted_pickle(path, sentinel)
    with pytest.raises(MedtorchError, match="refused") as exc:
        ckpt.load_checkpoint(path)
    assert "last.pt" in _one_line(exc.value)
    assert not sentinel.exists()


# -- safetensors weights -------------------------------------------------------------------------
def _safetensors_bytes(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def test_weights_file_round_trip(tmp_path: Path) -> None:
    state = _model().state_dict()
    path = tmp_path / "best.safetensors"
    ckpt.save_weights(state, path, {"epoch": 3})
    back, meta = ckpt.load_weights(path)
    assert meta["epoch"] == "3"
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)


@pytest.mark.parametrize(
    "case",
    ["oversized_header", "overlapping_offsets", "out_of_range", "truncated", "empty", "not_json"],
)
def test_crafted_safetensors_headers_are_refused(tmp_path: Path, case: str) -> None:
    path = tmp_path / "best.safetensors"
    good = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    if case == "oversized_header":
        blob = struct.pack("<Q", 2**40) + b"{}"
    elif case == "overlapping_offsets":
        hdr = {**good, "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
        blob = _safetensors_bytes(hdr, b"\0" * 12)
    elif case == "out_of_range":
        hdr = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8000]}}
        blob = _safetensors_bytes(hdr, b"\0" * 8)
    elif case == "truncated":
        ckpt.save_weights(_model().state_dict(), path, {})
        blob = path.read_bytes()[: path.stat().st_size // 2]
    elif case == "empty":
        blob = b""
    else:
        blob = struct.pack("<Q", 8) + b"not json"
    path.write_bytes(blob)
    with pytest.raises(MedtorchError) as exc:
        ckpt.load_weights(path)
    msg = _one_line(exc.value)
    assert "best.safetensors" in msg


def test_run_weights_prefer_safetensors(tmp_path: Path) -> None:
    """A run folder's best weights are read from best.safetensors, which holds no code at all."""
    run = make_run(tmp_path)
    model = _model()
    ckpt.save_weights(model.state_dict(), run / "checkpoints" / "best.safetensors", {"epoch": 1})
    sentinel = tmp_path / "PWNED"
    crafted_pickle(run / "checkpoints" / "best.pt", sentinel)  # never read
    _, _, restored = restore_model(run)
    assert all(torch.equal(a, b) for a, b in zip(restored.state_dict().values(),
                                                 model.state_dict().values()))  # fmt: skip
    assert not sentinel.exists()


# -- YAML ----------------------------------------------------------------------------------------
def test_yaml_python_tags_are_refused(tmp_path: Path, capsys) -> None:
    sentinel = tmp_path / "PWNED"
    evil = f"name: x\ndata: !!python/object/apply:os.system ['touch {sentinel}']\n"
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(evil)
    with pytest.raises(MedtorchError) as exc:
        load_config(recipe)
    _one_line(exc.value)
    assert not sentinel.exists()
    # the same inside a run folder's config.yaml, read by `medtorch predict` / `--resume`
    run = make_run(tmp_path)
    (run / "config.yaml").write_text(evil)
    with pytest.raises(MedtorchError) as exc:
        restore_model(run)
    _one_line(exc.value)
    code = main(["train", "--resume", str(run)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert not sentinel.exists()


# -- archives ------------------------------------------------------------------------------------
def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:xz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def test_safe_extract_keeps_a_good_archive(tmp_path: Path) -> None:
    arc = _tar(
        tmp_path / "ok.tar.xz", [_file("training/A00001.mat", b"abc"), _file("REFERENCE.csv")]
    )
    out = safe_extract(arc, tmp_path / "out")
    assert (tmp_path / "out/training/A00001.mat").read_bytes() == b"abc"
    assert sorted(p.name for p in out) == ["A00001.mat", "REFERENCE.csv"]


@pytest.mark.parametrize(
    "member",
    [
        _file("../escaped.txt"),
        _file("/tmp/absolute-escape.txt"),
        _file("a/../../escaped.txt"),
        _link("evil_link", "../../etc/passwd", tarfile.SYMTYPE),
        _link("evil_hard", "/etc/passwd", tarfile.LNKTYPE),
        _link("dev", "", tarfile.CHRTYPE),
    ],
    ids=["dotdot", "absolute", "nested_dotdot", "symlink_out", "hardlink_out", "device"],
)
def test_safe_extract_refuses_members_leaving_the_folder(tmp_path: Path, member) -> None:
    arc = _tar(tmp_path / "evil.tar.xz", [_file("fine.txt"), member])
    dest = tmp_path / "inner" / "out"
    with pytest.raises(MedtorchError) as exc:
        safe_extract(arc, dest)
    msg = _one_line(exc.value)
    assert "evil.tar.xz" in msg and member[0].name in msg
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "inner/escaped.txt").exists()
    assert not Path("/tmp/absolute-escape.txt").exists()
    assert not dest.exists() or not any(dest.iterdir())  # nothing half-extracted


def test_safe_extract_damaged_archive_is_one_line(tmp_path: Path) -> None:
    arc = tmp_path / "cut.tar.xz"
    arc.write_bytes(_tar(tmp_path / "ok.tar.xz", [_file("a.txt", b"a" * 1000)]).read_bytes()[:40])
    with pytest.raises(MedtorchError) as exc:
        safe_extract(arc, tmp_path / "out")
    assert "cut.tar.xz" in _one_line(exc.value)
