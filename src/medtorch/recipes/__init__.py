"""Find recipes by name: ``lab2_seizure_cnn`` -> ``recipes/lab2_seizure_cnn.yaml``."""

from __future__ import annotations

from pathlib import Path

_REPO_RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def recipe_dirs() -> list[Path]:
    dirs = [Path.cwd() / "recipes", _REPO_RECIPES]
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


def recipe_path(name: str) -> Path | None:
    stem = Path(name).stem if name.endswith((".yaml", ".yml")) else name
    for d in recipe_dirs():
        for ext in (".yaml", ".yml"):
            p = d / f"{stem}{ext}"
            if p.is_file():
                return p
    return None


def list_recipes() -> list[str]:
    names = {p.stem for d in recipe_dirs() for p in d.glob("*.y*ml")}
    return sorted(names)
