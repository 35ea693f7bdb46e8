"""The recipes that ship with medtorch, found by name: ``lab2_seizure_cnn`` -> this
package's ``lab2_seizure_cnn.yaml``.

A ``recipes/`` folder in the current directory is searched first, so a project's own
recipes (or a changed copy of a shipped one) win over the shipped ones.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_RECIPES = Path(__file__).resolve().parent


def recipe_dirs() -> list[Path]:
    """The folders searched for recipes, in order: ``./recipes``, then the shipped ones."""
    dirs = [Path.cwd() / "recipes", PACKAGE_RECIPES]
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


def recipe_path(name: str) -> Path | None:
    """The file of recipe ``name`` (a name, or a file name whose stem is one), or None.

    >>> recipe_path("lab2_seizure_cnn").name
    'lab2_seizure_cnn.yaml'
    """
    stem = Path(name).stem if name.endswith((".yaml", ".yml")) else name
    for d in recipe_dirs():
        for ext in (".yaml", ".yml"):
            p = d / f"{stem}{ext}"
            if p.is_file():
                return p
    return None


def list_recipes() -> list[str]:
    """Sorted recipe names (``medtorch recipes``).

    >>> "lab2_seizure_cnn" in list_recipes()
    True
    """
    names = {p.stem for d in recipe_dirs() for p in d.glob("*.y*ml")}
    return sorted(names)
