"""``medtorch runs [DIR]``: the run folders under DIR, with recipe, date, test metrics, status.

A run's status is read from its files, nothing else:

    finished      metrics.json holds test metrics
    interrupted   a checkpoint but no metrics.json: ``medtorch train --resume`` continues it
                  (``epoch E/N`` says how far it got)
    not started   config.yaml but no checkpoint: stopped or failed before its first epoch
                  ended; ``--resume`` starts it again from epoch 1
    unreadable    a file that should be JSON / YAML / a checkpoint cannot be read

Every file is read as data (JSON, ``yaml.safe_load``, checkpoints with ``weights_only``).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from medtorch.errors import ConfigError

KEY_METRICS = ("accuracy", "balanced_accuracy", "auroc")


def _is_run(folder: Path) -> bool:
    return (folder / "config.yaml").is_file()


def describe_run(run: Path) -> dict[str, Any]:
    """One row: name, recipe, date (UTC), status, epochs, test metrics."""
    row: dict[str, Any] = {"run": run.name, "path": str(run), "recipe": "?", "status": "?",
                           "epochs": "", **dict.fromkeys(KEY_METRICS)}  # fmt: skip
    cfg_file = run / "config.yaml"
    row["date"] = datetime.fromtimestamp(cfg_file.stat().st_mtime, timezone.utc).strftime(
        "%Y-%m-%d %H:%M"
    )
    try:
        cfg = yaml.safe_load(cfg_file.read_text()) or {}
        row["recipe"] = str(cfg.get("name", "?"))
        max_epochs = (cfg.get("trainer") or {}).get("max_epochs", "?")
    except (yaml.YAMLError, UnicodeDecodeError, AttributeError):
        row["status"] = "unreadable (config.yaml)"
        return row
    metrics_file = run / "metrics.json"
    last = run / "checkpoints" / "last.pt"
    if metrics_file.is_file():
        try:
            metrics = json.loads(metrics_file.read_text())
            overall = metrics["test"]["overall"]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
            row["status"] = "unreadable (metrics.json)"
            return row
        for k in KEY_METRICS:
            row[k] = (overall.get(k) or {}).get("value")
        row["status"] = "finished"
        row["epochs"] = f"best {metrics.get('best_epoch')}"
        return row
    if last.is_file():
        from medtorch.train.checkpoint import CheckpointError, load_checkpoint

        try:
            epoch = load_checkpoint(last).get("epoch")
        except CheckpointError:
            row["status"] = "interrupted (last.pt damaged: resume falls back)"
            return row
        row["status"], row["epochs"] = "interrupted", f"{epoch}/{max_epochs}"
        return row
    row["status"] = "not started"
    return row


def list_runs(root: str | Path) -> list[dict[str, Any]]:
    """Every run folder directly under ``root`` (or ``root`` itself if it is one), newest first."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(
            f"expected a folder of runs, got {str(root)!r} (no such folder) in `medtorch runs`; "
            "pass the --out folder of `medtorch train` (default runs)"
        )
    folders = [root] if _is_run(root) else [p for p in root.iterdir() if p.is_dir() and _is_run(p)]
    rows = [describe_run(p) for p in folders]
    return sorted(rows, key=lambda r: (r["date"], r["run"]), reverse=True)


def format_runs(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`list_runs` rows."""
    head = ("run", "recipe", "date (UTC)", "status", "epochs", *KEY_METRICS)
    table = [head]
    for r in rows:
        vals = [f"{r[k]:.3f}" if isinstance(r[k], float) else "-" for k in KEY_METRICS]
        table.append((r["run"], r["recipe"], r["date"], r["status"], r["epochs"], *vals))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in table
    )
