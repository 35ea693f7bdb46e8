"""Plug-in discovery, the one mechanism behind the task, model and dataset registries:
import every module of a package (each registers what it declares), then the modules named
by an entry-point group, so another installed package can add its own."""

from __future__ import annotations

import importlib
import pkgutil
from importlib import metadata


def discover(package: str, group: str, skip: tuple[str, ...] = ("registry",)) -> None:
    """Import the modules of ``package`` (but ``skip``) and those of entry-point ``group``.

    >>> discover("medtorch.models", "medtorch.models")
    """
    pkg = importlib.import_module(package)
    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name not in skip:
            importlib.import_module(f"{package}.{mod.name}")
    for ep in metadata.entry_points(group=group):
        importlib.import_module(ep.value)
