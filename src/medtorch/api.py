"""The Python API: load a recipe and change it, train it, open a finished run.

The CLI is a thin layer over these functions (``medtorch train`` calls :func:`train`), so
a run trained from a notebook and one trained from a shell are the same run folder, and a
mistake raises the same one-line :class:`~medtorch.errors.MedtorchError` in both.

>>> import medtorch as mt
>>> cfg = mt.load_recipe("lab2_seizure_cnn", overrides={"trainer.max_epochs": 2})
>>> cfg.trainer.max_epochs, cfg.model.name
(2, 'lab_cnn')
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from medtorch.config import RunConfig, load_config
from medtorch.errors import ConfigError, fmt
from medtorch.run import Run, open_run

__all__ = ["Run", "leaf_keys", "load_recipe", "open_run", "train"]

Recipe = str | Path | Mapping[str, Any] | RunConfig


def leaf_keys(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    """Every settable key of the config, dotted (``trainer.max_epochs``, ``task.params``).

    >>> "trainer.augment.gain" in leaf_keys()
    True
    """
    out: list[str] = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.extend(leaf_keys(ann, prefix + name + "."))
        else:
            out.append(prefix + name)
    return out


def _keyword_key(key: str) -> str:
    """The dotted config key a keyword argument of :func:`load_recipe` names.

    ``trainer__max_epochs`` is ``trainer.max_epochs``; a bare name is a top-level key
    (``name``, ``description``) or the last part of exactly one key (``max_epochs``); a bare
    name that ends several keys (``seed``: split, trainer, eval) is a one-line error.
    """
    keys = leaf_keys()
    dotted = key.replace("__", ".")
    if "." in dotted or dotted in keys:
        return dotted  # validated with the others by the config models
    matches = [k for k in keys if k.rsplit(".", 1)[-1] == key]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        import difflib

        close = difflib.get_close_matches(key, [k.rsplit(".", 1)[-1] for k in keys], n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(fmt("a config key", key, "load_recipe(**kwargs)",
                              f"{hint}use overrides={{'section.key': value}} for any key"))  # fmt: skip
    spelled = ", ".join(m.replace(".", "__") for m in matches)
    raise ConfigError(fmt(f"a keyword naming one config key ({', '.join(matches)})", key,
                          "load_recipe(**kwargs)", f"write one of {spelled}"))  # fmt: skip


def _as_override(key: str, value: Any) -> str:
    # JSON is YAML, so the CLI's YAML typing of `--set key=value` gives the value back as is
    return f"{key}={json.dumps(value, default=str)}"


def load_recipe(
    name_or_path: Recipe,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    **kwargs: Any,
) -> RunConfig:
    """A validated recipe: a name from ``medtorch recipes``, a YAML file, a mapping, or a
    :class:`~medtorch.config.RunConfig` to change.

    ``overrides``: ``{"trainer.max_epochs": 3}`` or the CLI's ``["trainer.max_epochs=3"]``.
    Keyword arguments are overrides too: ``trainer__max_epochs=3``, or ``max_epochs=3``
    where the last part names exactly one key (``seed=1`` is an error: split, trainer and
    eval each have one). Bad keys and values raise the CLI's one-line ``ConfigError``.

    >>> load_recipe("lab2_seizure_cnn", max_epochs=1, split__seed=7).split.seed
    7
    >>> load_recipe("lab2_seizure_cnn", seed=1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    medtorch.errors.ConfigError: expected a keyword naming one config key (split.seed, trainer.seed, eval.seed), got 'seed' ...
    """
    items: list[str] = []
    if isinstance(overrides, Mapping):
        items += [_as_override(str(k), v) for k, v in overrides.items()]
    elif isinstance(overrides, str):
        items.append(overrides)
    elif overrides is not None:
        items += [str(o) for o in overrides]
    items += [_as_override(_keyword_key(k), v) for k, v in kwargs.items()]
    if isinstance(name_or_path, RunConfig):
        source: str | Path | dict[str, Any] = name_or_path.model_dump(mode="json")
    elif isinstance(name_or_path, Mapping):
        source = dict(name_or_path)
    else:
        source = name_or_path
    return load_config(source, items)


def train(
    recipe: Recipe | None = None,
    out: str | Path = "runs",
    data_dir: str | Path | None = None,
    *,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    resume: str | Path | None = None,
    bundled: bool = False,
) -> Run:
    """Train a recipe and write its run folder under ``out`` (``<out>/<name>-<time>/``);
    returns the finished :class:`Run`. ``medtorch train`` is this function.

    ``recipe``: anything :func:`load_recipe` takes; ``overrides``: as there.
    ``data_dir``: the data folder (else ``$MEDTORCH_DATA``, else the user cache folder).
    ``resume``: a run folder to continue exactly where it stopped; with ``recipe`` None its
    own ``config.yaml`` (plus ``overrides``) is the recipe. ``bundled``: read the data that ships inside
    the package (``medtorch demo``).

    >>> run = train("lab2_seizure_cnn", out="runs", overrides={"trainer.max_epochs": 1})  # doctest: +SKIP
    >>> run.status, run.report_path.name  # doctest: +SKIP
    ('finished', 'report.html')
    """
    from medtorch.pipeline import train_run
    from medtorch.train import distributed

    if resume is not None and recipe is None:
        src = Path(resume) / "config.yaml"
        if not src.is_file():
            raise ConfigError(
                f"expected config.yaml in the run folder, got {str(resume)!r} without it in "
                "--resume; pass a folder written by `medtorch train`"
            )
        cfg = load_recipe(src, overrides)
    elif recipe is None:
        raise ConfigError(
            "expected a recipe, got none in `medtorch train`; e.g. medtorch train lab2_seizure_cnn"
        )
    elif isinstance(recipe, RunConfig) and not overrides:
        cfg = recipe
    else:
        cfg = load_recipe(recipe, overrides)
    folder = train_run(cfg, Path(out), data_dir, resume_dir=Path(resume) if resume else None,
                       bundled=bundled)  # fmt: skip
    # under torchrun only rank 0 writes the folder; the others get its path unchecked
    return Run(folder, check=distributed.current().main)
