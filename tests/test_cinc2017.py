"""CinC 2017: installing the archive (local or from a fake PhysioNet), safe unpacking, the
rhythm task and its bad inputs, the challenge score, the segment network, predict."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from medtorch.cli import main
from medtorch.data import registry
from medtorch.data.datasets import cinc2017 as ds_mod
from medtorch.data.sources.wfdb_strip import read_strip
from medtorch.data.tasks.cinc2017 import read_labels, write_example, write_record
from medtorch.data.tasks.registry import build_task
from medtorch.errors import DataError
from medtorch.metrics.cinc2017 import challenge_report
from medtorch.models.registry import create_model


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEDTORCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _layout(tmp_path: Path) -> Path:
    """The example records in the archive's layout: ``<root>/cinc2017/training2017``."""
    root = tmp_path / "layout"
    write_example(root)
    return root


def _tar(tmp_path: Path, name: str = "training2017.tar.xz") -> Path:
    root = _layout(tmp_path)
    archive = tmp_path / "src" / name
    archive.parent.mkdir(exist_ok=True)
    with tarfile.open(archive, "w:xz") as tf:
        tf.add(root / "cinc2017", arcname="cinc2017")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    archive.with_name(name + ".sha256").write_text(f"{digest}  {name}\n")
    return archive


def test_install_from_local_archive_then_the_task_reads_it(tmp_path: Path, cache: Path) -> None:
    archive = _tar(tmp_path)
    assert registry.dataset_status("cinc2017", tmp_path / "empty") == "missing"
    assert not registry.verify("cinc2017", tmp_path / "empty")[0][1]
    done = registry.fetch("cinc2017", tmp_path / "empty", source=archive)
    assert registry.dataset_status("cinc2017", tmp_path / "empty") == "present"
    records = Path(done[-1])
    assert (records / "RECORDS").is_file() and cache in records.parents
    assert not (archive.parent / "cinc2017").exists()  # nothing unpacked beside the archive
    ds = build_task("cinc2017_rhythm", tmp_path / "empty", {})  # the install is found
    assert ds.class_names == ["N", "A", "O", "~"] and list(ds.inputs) == ["x", "length"]
    assert (
        ds.inputs["x"].shape == (5, 1, 600 + 150 * 4)
        and ds.groups.tolist() == ds.sample_ids.tolist()
    )
    assert ds.inputs["length"][:, 0].tolist() == [600, 750, 900, 1050, 1200]
    assert ds.meta["cohort"]["rows_dropped"] == {"no label in REFERENCE-v3.csv": 1}
    assert "identifies no patient" in ds.meta["split_caveat"]
    # the archive in a data dir is unpacked into the cache on first use
    data = tmp_path / "data" / "cinc2017"
    data.mkdir(parents=True)
    for f in archive.parent.iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    assert registry.verify("cinc2017", tmp_path / "data") == [("training2017.tar.xz", True, "ok")]
    assert ds_mod.records_dir(tmp_path / "data") == records  # same archive, same cache entry
    (data / "training2017.tar.xz").write_bytes(b"damaged")
    [(_, ok, reason)] = registry.verify("cinc2017", tmp_path / "data")
    assert not ok and "sha256 mismatch" in reason
    assert registry.dataset_status("cinc2017", tmp_path / "data") == "partial (0 of 1 files)"
    (data / "training2017.tar.xz").write_bytes(archive.read_bytes())
    binary = build_task("cinc2017_rhythm", tmp_path / "data", {"af_vs_rest": True, "sfreq_hz": 100})
    assert binary.class_names == ["non_AF", "AF"] and binary.y.tolist() == [0, 1, 0, 0, 0]
    assert binary.inputs["length"][0, 0] == 200  # 600 samples at 300 Hz -> 100 Hz


def test_archive_whose_checksum_does_not_match(tmp_path: Path, capsys) -> None:
    archive = _tar(tmp_path)
    archive.with_name(archive.name + ".sha256").write_text(f"{'0' * 64}  {archive.name}\n")
    with pytest.raises(DataError, match=r"expected sha256 000000000000\.\.\. .*got") as err:
        ds_mod.install_archive(archive)
    assert "\n" not in str(err.value)
    argv = ["--data-dir", str(tmp_path), "data", "fetch", "cinc2017", "--from", str(archive)]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "sha256" in lines[0] and archive.name in lines[0]
    archive.with_name(archive.name + ".sha256").unlink()
    with pytest.raises(DataError, match="checksum file beside the archive"):
        ds_mod.install_archive(archive)
    with pytest.raises(DataError, match="drop --from"):
        registry.fetch("mitdb", tmp_path, source=archive)


def _bad_tar(path: Path, kind: str) -> None:
    with tarfile.open(path, "w") as tf:
        info = tarfile.TarInfo("ok.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"ok"))
        bad = tarfile.TarInfo({"dotdot": "../evil.txt", "absolute": "/tmp/evil.txt"}.get(kind, "x"))
        if kind == "symlink":
            bad.type, bad.linkname = tarfile.SYMTYPE, "../../outside"
        elif kind == "hardlink":
            bad.type, bad.linkname = tarfile.LNKTYPE, "../outside"
        elif kind == "device":
            bad.type, bad.devmajor, bad.devminor = tarfile.CHRTYPE, 1, 3
        else:
            bad.size = 4
        tf.addfile(bad, io.BytesIO(b"evil") if bad.isfile() else None)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device"])
def test_unpacking_refuses_members_leaving_the_folder(tmp_path: Path, kind: str) -> None:
    archive = tmp_path / f"{kind}.tar"
    _bad_tar(archive, kind)
    dest = tmp_path / "out"
    with pytest.raises(DataError, match="expected archive members inside") as err:
        ds_mod.safe_extract(archive, dest)
    assert "\n" not in str(err.value) and archive.name in str(err.value)
    assert not list(dest.iterdir())  # refused before anything was written
    assert not (tmp_path / "evil.txt").exists()
    zpath = tmp_path / "z.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(DataError, match="a path leaving the folder"):
        ds_mod.safe_extract(zpath, tmp_path / "zout")


def _fake_physionet(monkeypatch: pytest.MonkeyPatch, served: dict[str, bytes],
                    listed: dict[str, bytes]) -> list[str]:  # fmt: skip
    base = ds_mod.BASE_URL
    sums = "".join(f"{hashlib.sha256(b).hexdigest()}  {p}\n" for p, b in listed.items())
    urls = {base + "SHA256SUMS.txt": sums.encode(), **{base + p: b for p, b in served.items()}}
    asked: list[str] = []

    def urlopen(url: str, timeout: float = 0) -> io.BytesIO:
        asked.append(url)
        if url not in urls:
            raise urllib.error.URLError(f"404 {url}")
        return io.BytesIO(urls[url])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


def _zip_of_layout(tmp_path: Path) -> tuple[bytes, bytes]:
    root = _layout(tmp_path) / "cinc2017"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted((root / "training2017").iterdir()):
            if f.name != "REFERENCE-v3.csv":  # the zip holds an earlier label file
                zf.write(f, f"training2017/{f.name}")
    return buf.getvalue(), (root / "training2017" / "REFERENCE-v3.csv").read_bytes()


def test_fetch_from_physionet_checks_every_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zbytes, labels = _zip_of_layout(tmp_path)
    files = {"training2017.zip": zbytes, "REFERENCE-v3.csv": labels}
    asked = _fake_physionet(monkeypatch, files, files)
    done = registry.fetch("cinc2017", tmp_path / "data")
    assert done == ["SHA256SUMS.txt", "training2017.zip", "REFERENCE-v3.csv"]
    assert asked[0] == ds_mod.BASE_URL + "SHA256SUMS.txt"
    ds = build_task("cinc2017_rhythm", tmp_path / "data", {})
    assert len(ds) == 5 and ds.class_counts() == {"N": 2, "A": 1, "O": 1, "~": 1}
    # a download that disagrees with the list is deleted, one line
    _fake_physionet(monkeypatch, {**files, "REFERENCE-v3.csv": b"tampered"}, files)
    (tmp_path / "data" / "cinc2017" / "REFERENCE-v3.csv").unlink()
    with pytest.raises(DataError, match=r"expected sha256 .* for REFERENCE-v3\.csv") as err:
        registry.fetch("cinc2017", tmp_path / "data")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "data" / "cinc2017" / "REFERENCE-v3.csv").exists()

    def offline(*a: object, **k: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match=r"network access to https://physionet\.org.*--from"):
        registry.fetch("cinc2017", tmp_path / "other")


def test_header_quirks_and_bad_records(tmp_path: Path) -> None:
    sig = (np.sin(np.arange(900) / 10) * 300).astype(np.int16)
    write_record(tmp_path, "A1", sig)
    hea = tmp_path / "A1.hea"
    # a first-sample value that differs from the data (565 headers of the release) is fine
    text = hea.read_bytes().replace(f" {int(sig[0])} 0 0 ECG".encode(), b" 1234 0 0 ECG")
    hea.write_bytes(text)
    x, fs = read_strip(hea)
    assert fs == 300 and len(x) == 900 and np.allclose(x * 1000, sig)
    # a sample count that disagrees with the .mat size
    hea.write_bytes(text.replace(b" 900 ", b" 1000 "))
    with pytest.raises(DataError, match=r"expected 2024 bytes in A1\.mat .*got 1824") as err:
        read_strip(hea)
    assert "\n" not in str(err.value) and "sample count" in str(err.value)
    # two leads where one is expected: one line naming --lead
    two = np.stack([sig, -sig], axis=1).astype("<i2")
    (tmp_path / "B1.mat").write_bytes(b"\0" * 24 + two.tobytes())
    (tmp_path / "B1.hea").write_text(
        "B1 2 300 900\nB1.mat 16+24 1000/mV 16 0 0 0 0 I\nB1.mat 16+24 1000/mV 16 0 0 0 0 II\n"
    )
    with pytest.raises(DataError, match=r"single-lead record, got 2 leads .*--lead") as err:
        read_strip(tmp_path / "B1.hea")
    assert "\n" not in str(err.value)
    x2, _ = read_strip(tmp_path / "B1.hea", lead="II")
    assert np.allclose(x2 * 1000, -sig)
    # an unknown label
    ref = tmp_path / "REFERENCE-v3.csv"
    ref.write_text("A1,N\nA2,X\n")
    with pytest.raises(DataError, match=r"got 'X' for 'A2' in .* line 2") as err:
        read_labels(ref)
    assert "\n" not in str(err.value)


def test_challenge_score_matches_the_definition() -> None:
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    p = rng.dirichlet(np.ones(4), 400)
    p[np.arange(400), y] += rng.uniform(0, 0.6, 400)
    p /= p.sum(1, keepdims=True)
    groups = np.array([f"A{i:05d}" for i in range(400)])
    r = challenge_report(y, p, ["N", "A", "O", "~"], groups=groups, n_bootstrap=200)
    f1 = f1_score(y, p.argmax(1), average=None)
    assert r is not None
    assert np.isclose(r["overall"]["f1_nao"]["value"], f1[:3].mean())
    for i, c in enumerate("NAO~"):
        assert np.isclose(r["per_class"][c]["F1"]["value"], f1[i])
        assert np.isclose(r["per_class"][c]["AUROC"]["value"], roc_auc_score(y == i, p[:, i]))
    lo, hi = r["overall"]["f1_nao"]["ci"]
    assert lo < r["overall"]["f1_nao"]["value"] < hi
    assert np.array(r["confusion_matrix"]).sum() == 400 and r["n_records"] == 400
    assert r["overall"]["brier"]["value"] > 0 and "records" in r["ci_method"]
    assert challenge_report(y % 2, p[:, :2] / p[:, :2].sum(1, keepdims=True), ["a", "b"]) is None


def test_segment_network_full_size_and_masking() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    full = create_model("hannun_segments", n_inputs=1, n_classes=4)
    convs = [m for m in full.modules() if isinstance(m, torch.nn.Conv1d)]
    assert len(convs) == 33 and len(full.net.blocks) == 16  # Hannun 2019 supplement
    assert [b.conv1.out_channels for b in full.net.blocks][::4] == [32, 64, 128, 256]
    assert {c.kernel_size[0] for c in convs} == {16}
    assert [b.conv1.stride[0] for b in full.net.blocks] == [1, 2] * 8
    assert full.segment_samples == 256  # one label per 256 samples, 0.85 s at 300 Hz
    assert sum(isinstance(m, torch.nn.Dropout) for m in full.modules()) == 16
    full.eval()
    x = torch.randn(1, 1, 300 * 60)
    with FlopCounterMode(display=False) as fc:
        full(x, torch.tensor([[18000.0]]))
    assert 9e9 < fc.get_total_flops() < 1.1e10  # ~9.8 GFLOPs per 60 s strip
    small = create_model("hannun_segments", n_inputs=1, n_classes=4, base_filters=8,
                         n_blocks=10, kernel_size=8, train_crop=1500).eval()  # fmt: skip
    strip = torch.randn(1, 1, 2000)
    padded = torch.cat([strip, torch.zeros(1, 1, 1000)], dim=2)
    a = small(strip, torch.tensor([[2000.0]]))
    b = small(padded, torch.tensor([[2000.0]]))
    logits, mask = small.segments(padded, torch.tensor([[2000.0]]))
    assert int(mask.sum()) == -(-2000 // small.segment_samples) and logits.shape[2] == 94
    assert torch.allclose(a, b, atol=0.05 * float(a.abs().max()))  # the padding is masked out
    small.train()
    h = small.net.stem(small._prepare(padded, torch.tensor([[2000.0]]))[0])
    assert h.shape[-1] == 1500  # a random 30 s crop at 50 Hz in training


def test_train_and_predict_a_strip(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    write_example(data)
    argv = ["--data-dir", str(data), "train", "cinc2017_resnet_cpu", "--out",
            str(tmp_path / "runs"), "--set", "trainer.max_epochs=1", "--set", "split.method=random",
            "--set", "split.ratios=[0.4,0.2,0.4]", "--set", "eval.n_bootstrap=10",
            "--set", "model.params.train_crop=100"]  # fmt: skip
    assert main(argv) == 0
    (run,) = (tmp_path / "runs").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert "f1_nao" in metrics["test"]["cinc2017"]["overall"]
    assert "identifies no patient" in json.loads((run / "splits.json").read_text())["leakage_note"]
    rec = data / "cinc2017" / "training2017" / "A00005.hea"
    out = tmp_path / "p.csv"
    assert main(["predict", str(run), str(rec), "--out", str(out)]) == 0
    rows = out.read_text().splitlines()
    assert rows[0] == "segment,start_s,end_s,predicted,p_N,p_A,p_O,p_~"
    assert rows[1].startswith("strip,0.0,4.0,") and len(rows) == 2 + 200 // 32 + 1
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"  # strip + rhythm band
    # the report shows example test strips with their per-segment rhythm
    figures = json.loads((run / "figures.json").read_text())
    assert figures and all((run / f["png"]).read_bytes()[:4] == b"\x89PNG" for f in figures)
    assert all(f["caption"].split(":")[0] in {"A00001", "A00002", "A00003", "A00004",
                                              "A00005"} for f in figures)  # fmt: skip
    html = (run / "report.html").read_text()
    assert "Example test samples" in html and figures[0]["caption"] in html
    # a CSV strip, and one shorter than one output segment of the network
    csv_strip = tmp_path / "s.csv"
    csv_strip.write_text("mV\n" + "\n".join(str(v) for v in np.sin(np.arange(3000) / 9)))
    assert main(["predict", str(run), str(csv_strip), "--out", str(out)]) == 0
    short = tmp_path / "short.csv"
    short.write_text("\n".join(["0.1"] * 100))  # 1/3 s at 300 Hz: 17 samples at 50 Hz
    capsys.readouterr()
    assert main(["predict", str(run), str(short), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "at least 32 samples" in err[0] and "receptive field" in err[0]
    # a two-lead record: one line naming --lead
    sig = (np.sin(np.arange(900) / 10) * 300).astype("<i2")
    (tmp_path / "B1.mat").write_bytes(b"\0" * 24 + np.stack([sig, sig], 1).tobytes())
    (tmp_path / "B1.hea").write_text(
        "B1 2 300 900\nB1.mat 16+24 1000/mV 16 0 0 0 0 I\nB1.mat 16+24 1000/mV 16 0 0 0 0 II\n"
    )
    assert main(["predict", str(run), str(tmp_path / "B1.hea"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--lead" in err[0]
    assert main(["predict", str(run), str(tmp_path / "B1.hea"), "--lead", "II", "--out",
                 str(out)]) == 0  # fmt: skip
    # an ensemble of two seeds keeps the rhythm over time: each row the members' mean
    assert main([*argv, "--set", "trainer.seed=1"]) == 0
    (run2,) = (r for r in (tmp_path / "runs").iterdir() if r != run)
    outs = {}
    for name, args in (
        ("a", [str(run)]),
        ("b", [str(run2)]),
        ("ab", [str(run), "--ensemble", str(run2)]),
    ):
        outs[name] = tmp_path / f"{name}.csv"
        assert main(["predict", *args[:1], str(rec), "--out", str(outs[name]), *args[1:]]) == 0
    p = {k: np.loadtxt(v, delimiter=",", skiprows=1, usecols=(4, 5, 6, 7)) for k, v in outs.items()}
    assert p["ab"].shape == p["a"].shape == (2 + 200 // 32, 4)  # the strip and every segment
    assert np.allclose(p["ab"], (p["a"] + p["b"]) / 2, atol=1e-5)
    assert not np.allclose(p["a"], p["b"], atol=1e-3)  # the two seeds differ


@pytest.mark.realdata
def test_the_real_archive_installs_and_every_record_reads(data_dir: Path) -> None:
    archive = data_dir / "cinc2017" / "training2017.tar.xz"
    records = ds_mod.install_archive(archive)  # into the test's own cache, never beside it
    assert not (archive.parent / "training2017").exists()
    ds = build_task("cinc2017_rhythm", None, {"path": str(records), "sfreq_hz": 50})
    assert len(ds) == 7529 and ds.class_counts() == {"N": 4509, "A": 651, "O": 2150, "~": 219}
    assert len(set(ds.groups)) == 7529 and ds.meta["cohort"]["rows_dropped"] == {}
    # headers whose first-sample value differs from the data (SOURCE.md: 565 in the release;
    # 504 of the 7,529 records here) are read, not rejected
    differ = 0
    for hea in sorted(records.glob("*.hea")):
        first = int(hea.read_text().splitlines()[1].split()[5])
        raw = np.fromfile(hea.with_suffix(".mat"), dtype="<i2", count=1, offset=24)[0]
        differ += first != raw
    assert differ == 504


def _beats_strip(rr_s: list[float], fs: float = 300.0) -> np.ndarray:
    """A synthetic ECG in mV: a narrow R wave at each beat time (cumulative ``rr_s``)."""
    times = np.cumsum([0.5, *rr_s])
    t = np.arange(int((times[-1] + 0.5) * fs)) / fs
    return sum(np.exp(-((t - b) ** 2) / 2e-5) for b in times).astype(np.float32)


def test_strip_rr_features_see_irregular_rhythm_and_pauses() -> None:
    from medtorch.ecg.strip_features import STRIP_RR_FEATURES, strip_rr_features

    rng = np.random.default_rng(0)
    regular = dict(zip(STRIP_RR_FEATURES, strip_rr_features(_beats_strip([0.8] * 30), 300.0)))
    irregular = dict(zip(STRIP_RR_FEATURES,
                         strip_rr_features(_beats_strip(list(rng.uniform(0.4, 1.0, 40))), 300.0)))  # fmt: skip
    pauses = dict(zip(STRIP_RR_FEATURES,
                      strip_rr_features(_beats_strip([0.8] * 5 + [0.5, 1.1] * 6), 300.0)))  # fmt: skip
    assert regular["rr_defined"] == 1.0 and abs(regular["beats_per_s"] - 31 / 25.8) < 0.05
    assert regular["cv_rr"] < 0.01 and irregular["cv_rr"] > 0.15
    assert irregular["pnn50"] > 0.5 > regular["pnn50"]
    assert pauses["frac_short_long_pairs"] > 0.3 and regular["frac_short_long_pairs"] == 0.0
    flat = dict(zip(STRIP_RR_FEATURES, strip_rr_features(np.zeros(3000, np.float32), 300.0)))
    assert flat["rr_defined"] == 0.0 and flat["frac_seconds_without_beat"] == 1.0


def test_rr_features_are_cached_and_recomputed_when_a_record_changes(tmp_path: Path) -> None:
    from medtorch.ecg.strip_features import STRIP_RR_FEATURES, cached_strip_features

    folder = tmp_path / "recs"
    folder.mkdir()
    for i, rr in enumerate([0.8, 0.6]):
        write_record(folder, f"A{i}", (_beats_strip([rr] * 12) * 1000).astype(np.int16))
    heads = sorted(folder.glob("*.hea"))
    calls: list[str] = []

    def compute(header: str) -> np.ndarray:
        calls.append(header)
        x, fs = read_strip(Path(header))
        from medtorch.ecg.strip_features import strip_rr_features

        return strip_rr_features(x, fs)

    f1, hit1 = cached_strip_features(heads, tmp_path / "cache", workers=1, compute=compute)
    f2, hit2 = cached_strip_features(heads, tmp_path / "cache", workers=1, compute=compute)
    assert (hit1, hit2) == (False, True) and len(calls) == 2 and np.array_equal(f1, f2)
    assert f1.shape == (2, len(STRIP_RR_FEATURES)) and f1[1, 0] > f1[0, 0]  # 0.6 s: faster
    write_record(folder, "A1", (_beats_strip([0.5] * 12) * 1000).astype(np.int16))
    f3, hit3 = cached_strip_features(heads, tmp_path / "cache", workers=1, compute=compute)
    assert not hit3 and len(calls) == 4 and f3[1, 0] > f1[1, 0]


def test_rr_features_train_and_predict(tmp_path: Path) -> None:
    from medtorch.ecg.strip_features import STRIP_RR_FEATURES

    data = tmp_path / "data"
    write_example(data)
    argv = ["--data-dir", str(data), "train", "cinc2017_resnet_cpu", "--out",
            str(tmp_path / "runs"), "--set", "trainer.max_epochs=1", "--set", "split.method=random",
            "--set", "split.ratios=[0.4,0.2,0.4]", "--set", "eval.n_bootstrap=10",
            "--set", "model.params.train_crop=100", "--set", "task.params.rr_features=true"]  # fmt: skip
    assert main(argv) == 0
    (run,) = (tmp_path / "runs").iterdir()
    spec = json.loads((run / "model.json").read_text())
    assert spec["inputs"] == ["x", "length", "rr"]
    assert spec["hints"]["n_rr"] == len(STRIP_RR_FEATURES)
    out = tmp_path / "p.csv"
    rec = data / "cinc2017" / "training2017" / "A00005.hea"
    assert main(["predict", str(run), str(rec), "--out", str(out)]) == 0
    assert out.read_text().splitlines()[1].startswith("strip,0.0,4.0,")


def test_rr_head_shifts_strip_and_segments_alike() -> None:
    torch.manual_seed(0)
    model = create_model("hannun_segments", n_inputs=1, n_classes=4, base_filters=8,
                         n_blocks=4, kernel_size=7, n_rr=5).eval()  # fmt: skip
    x, n = torch.randn(3, 1, 256), torch.tensor([[256.0], [200.0], [100.0]])
    rr = torch.randn(3, 5)
    strip = model(x, n, rr)
    seg, mask = model.segments(x, n, rr)
    m = mask.to(seg.dtype)[:, None, :]
    assert torch.allclose(strip, (seg * m).sum(-1) / m.sum(-1), atol=1e-6)
    assert not torch.allclose(strip, model(x, n, rr + 1.0))  # the features matter
    with pytest.raises(Exception, match="rr_features"):
        model(x, n)
