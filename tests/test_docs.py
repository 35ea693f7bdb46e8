"""The documentation: the generated reference pages match the code they come from (every
config key, dataset, model and recipe), and the site builds with no warning."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location(
        "docs_reference", ROOT / "tools" / "docs_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _generator()


def _table_keys(page: str) -> list[str]:
    return re.findall(r"^\| `([\w.]+)` \|", page, flags=re.M)


def test_recipe_reference_lists_every_config_key() -> None:
    from medtorch.api import leaf_keys

    page = gen.recipe_reference()
    keys = _table_keys(page)
    assert sorted(keys) == sorted(leaf_keys()) and len(set(keys)) == len(keys)  # each key once
    assert len(keys) > 50
    rows = {r["key"]: r for r in gen.config_rows(__import__("medtorch.config").config.RunConfig)}
    assert rows["trainer.max_epochs"]["default"] == "`10`"
    assert rows["trainer.max_epochs"]["type"] == "int"
    assert rows["data.dataset"]["default"] == "required"
    assert rows["split.ratios"]["default"] == "`[0.64, 0.16, 0.2]`"
    assert (
        '"auto"' in rows["trainer.progress"]["type"] and "bool" in rows["trainer.progress"]["type"]
    )
    described = [k for k, r in rows.items() if r["meaning"]]
    assert len(described) >= len(rows) - 1, set(rows) - set(described)


def test_recipe_reference_follows_a_new_key() -> None:
    """The page is generated, so a key added to a config model appears in it."""
    from pydantic import Field

    from medtorch import config

    class NewEval(config.EvalConfig):
        brand_new: int = Field(3, description="a new setting")

    class NewRun(config.RunConfig):
        eval: NewEval = Field(default_factory=NewEval)

    run = NewRun
    rows = {r["key"]: r for r in gen.config_rows(run)}
    assert rows["eval.brand_new"] == {"key": "eval.brand_new", "type": "int",
                                      "default": "`3`", "meaning": "a new setting"}  # fmt: skip


def test_dataset_catalogue_lists_every_registered_dataset() -> None:
    from medtorch.data.registry import list_datasets

    page = gen.dataset_catalogue()
    for d in list_datasets():
        assert f"(`{d.name}`)" in page and d.licence in page and d.citations[0] in page
    assert "ships inside the package" in page
    assert "medtorch data fetch mitdb" in page


def test_model_zoo_lists_every_model_with_its_parameter_count() -> None:
    from medtorch.models import create_model, list_models
    from medtorch.models.registry import get_entry

    rows = {r["name"]: r for r in gen.model_rows()}
    assert sorted(rows) == list_models()
    ex = get_entry("lab_cnn").example
    net = create_model("lab_cnn", n_inputs=ex.n_inputs, n_classes=ex.n_classes, **ex.params)
    assert rows["lab_cnn"]["params"] == sum(p.numel() for p in net.parameters())
    assert all(r["description"] and r["params"] > 0 for r in rows.values())
    page = gen.model_zoo()
    assert all(f"| `{name}` |" in page for name in rows)


def test_recipe_list_and_api_page() -> None:
    from medtorch.recipes import list_recipes

    page = gen.recipe_list()
    assert _table_keys(page) == list_recipes()
    api = gen.api_reference()
    for name in ("mt.load_recipe", "mt.train", "mt.open_run", "mt.Run.plot", "mt.Run.status",
                 "mt.datasets.load", "mt.splits.make", "mt.models.create", "mt.metrics.evaluate"):  # fmt: skip
        assert f"`{name}`" in api, name
    assert "```pycon" in api and "# doctest:" not in api


def test_every_page_in_the_nav_exists_or_is_generated() -> None:
    import yaml

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    pages: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, str):
            pages.append(node)
        elif isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(nav)
    for p in pages:
        assert (ROOT / "docs" / p).is_file() or p in gen.PAGES or p in gen.LAB_PAGES, p
    assert set(gen.PAGES) <= set(pages) and set(gen.LAB_PAGES) <= set(pages)
    assert len(gen.LAB_PAGES) == 6  # every lab is rendered as a page


@pytest.mark.slow
def test_site_builds_with_no_warning(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the docs extra (pip install '.[docs]')")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_MKDOCS_2_WARNING": "1",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    recipe = (tmp_path / "site" / "reference" / "recipe" / "index.html").read_text()
    assert "trainer.max_epochs" in recipe and "eval.n_bootstrap" in recipe
    assert (tmp_path / "site" / "reference" / "api" / "index.html").is_file()


def _headerless_table_rows(text: str) -> list[int]:
    """Line numbers of table rows that start a table with no header separator under them
    (a blank line inside a table makes its later rows a paragraph of pipes)."""
    lines = text.splitlines()
    bad = []
    for i, line in enumerate(lines):
        starts = line.startswith("|") and (i == 0 or not lines[i - 1].startswith("|"))
        sep = i + 1 < len(lines) and set(lines[i + 1].replace(" ", "")) <= set("|-:")
        if starts and not sep:
            bad.append(i + 1)
    return bad


def test_markdown_tables_have_headers() -> None:
    assert _headerless_table_rows("| a |\n|---|\n| 1 |\n\n| 2 |\n") == [5]
    pages = [ROOT / "README.md", ROOT / "benchmarks" / "RESULTS.md", *(ROOT / "docs").rglob("*.md")]
    bad = {p.name: rows for p in pages if (rows := _headerless_table_rows(p.read_text()))}
    assert not bad, bad
