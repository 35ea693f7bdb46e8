"""benchmarks/: every path the documents name exists, every script is listed, none imports another."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
DOCS = [BENCH / "README.md", BENCH / "RESULTS.md", ROOT / "README.md", ROOT / "Makefile",
        *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "src" / "medtorch" / "recipes").glob("*.yaml"))]  # fmt: skip
# a path under benchmarks/ (no shell patterns such as * or $d), or one under results/archive/
PATH = re.compile(r"(?<![\w/.-])((?:benchmarks/|archive/)[\w./-]*[\w])(?![\w*$/{-])")
SCRIPTS = sorted(p for p in BENCH.rglob("*.py") if "results" not in p.relative_to(BENCH).parts)
# named by RESULTS.md as the output of a command, but not in the repository: why
NOT_WRITTEN = {
    "benchmarks/results/external/incartdb.json": "RESULTS 2.1, external check: not run yet",
    "benchmarks/results/external/svdb.json": "RESULTS 2.1, external check: read by an "
    "independent check, its JSON not committed",
}


def named_paths() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for m in PATH.finditer(doc.read_text(encoding="utf-8")):
            out.append((doc.relative_to(ROOT).as_posix(), m.group(1).rstrip(".")))
    return sorted(set(out))


def resolve(path: str) -> Path:
    return BENCH / "results" / path if path.startswith("archive/") else ROOT / path


def test_documents_name_paths() -> None:
    names = {p for _, p in named_paths()}
    # the parser sees the documents' script and result paths (guards against a regex that
    # silently matches nothing)
    assert "benchmarks/RESULTS.md" in names
    assert "benchmarks/results/ecg_ds1_ds2_resnet.json" in names
    assert any(p.startswith("benchmarks/speed/") for p in names)
    assert any(p.startswith("archive/") for p in names)


@pytest.mark.parametrize(("doc", "path"), named_paths())
def test_every_named_benchmark_path_exists(doc: str, path: str) -> None:
    assert resolve(path).exists() or path in NOT_WRITTEN, (
        f"{doc} names {path}, which does not exist"
    )


def test_files_not_written_are_still_named_and_still_absent() -> None:
    names = {p for _, p in named_paths()}
    for path in NOT_WRITTEN:  # once written (or no longer named), take it off the list
        assert path in names and not resolve(path).exists(), path


def test_every_script_is_listed_in_the_readme() -> None:
    readme = (BENCH / "README.md").read_text(encoding="utf-8")
    missing = [p.relative_to(ROOT).as_posix() for p in SCRIPTS
               if p.relative_to(ROOT).as_posix() not in readme]  # fmt: skip
    assert SCRIPTS and not missing


def test_scripts_import_the_package_not_each_other() -> None:
    local = {p.stem for p in SCRIPTS}
    found = []
    for p in SCRIPTS:
        text = p.read_text(encoding="utf-8")
        if "sys.path" in text:
            found.append(f"{p.name}: sys.path")
        for node in ast.walk(ast.parse(text)):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
                if node.module.startswith("medtorch"):
                    found += [f"{p.name}: {node.module}.{a.name}" for a in node.names
                              if a.name.startswith("_")]  # fmt: skip
            found += [f"{p.name}: import {m}" for m in mods if m.split(".")[0] in local]
    assert SCRIPTS and not found


def test_result_files_are_named_by_what_they_hold() -> None:
    results = [p.name for p in (BENCH / "results").rglob("*.json")]
    dated = [n for n in results if re.search(r"_(session|round)\d", n)]
    assert results and not dated


# a folder of one machine: an absolute path to a home, work or scratch folder
_MACHINE_PATH = re.compile(r"(?<![\w.$])/(?:work|home|Users|tmp|root|mnt|scratch)/")


def test_result_files_name_no_folder_of_one_machine() -> None:
    """Results files write data as $MEDTORCH_DATA/... and runs by their last parts
    (``medtorch.data.paths.portable_path``), never one machine's absolute folders."""
    results = sorted((BENCH / "results").rglob("*.json"))
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in results
             for m in [_MACHINE_PATH.search(p.read_text())] if m]  # fmt: skip
    assert results and not found, found


def test_portable_path_writes_data_and_runs_without_the_machine(tmp_path: Path) -> None:
    from medtorch.data.paths import portable_command, portable_path

    data = tmp_path / "data"
    run = tmp_path / "elsewhere" / "runs_ecg" / "g8_s0"
    run.mkdir(parents=True)
    (data / "mitdb").mkdir(parents=True)
    assert portable_path(data / "mitdb" / "100", data) == "$MEDTORCH_DATA/mitdb/100"
    assert portable_path(run, data) == ".../runs_ecg/g8_s0"
    assert portable_path(Path.cwd() / "runs" / "x", data) == "runs/x"
    cmd = portable_command(
        ["medtorch", "predict", str(run), str(data / "mitdb"), "--out", "p.csv"], data
    )
    assert cmd == "medtorch predict .../runs_ecg/g8_s0 $MEDTORCH_DATA/mitdb --out p.csv"
    assert str(tmp_path) not in cmd
